"""ROS 2 parameter files (`/**: ros__parameters: ...`) read and checked without ROS, before any node starts.

A node's parameters are the merge, in file order, of every section whose key matches it: '/**', '/**/NAME',
'NAME', '/NAME' or '/NS/NAME'. `ocl-infer launch` uses this to validate a file with the messages NodeOptions
gives, and to know which nodes the file configures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ocl_infer.errors import ConfigError


def load_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """{section key: parameters} of a ROS 2 params file; ConfigError naming the file when malformed."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"params file {path}: cannot read it ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"params file {path}: not valid YAML: {err}") from err
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"params file {path}: expected '<node>: ros__parameters: {{...}}' sections")
    out: dict[str, dict[str, Any]] = {}
    for key, section in data.items():
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ConfigError(f"params file {path}: section {key!r} has no 'ros__parameters'")
        params = section["ros__parameters"] or {}
        if not isinstance(params, dict):
            raise ConfigError(f"params file {path}: {key}.ros__parameters is not a mapping")
        out[str(key)] = params
    return out


def section_matches(key: str, node_name: str, namespace: str = "/") -> bool:
    fq = f"{namespace.rstrip('/')}/{node_name}"
    return key in {"/**", "/**/" + node_name, node_name, "/" + node_name, fq}


def parameters_for(sections: dict[str, dict[str, Any]], node_name: str, namespace: str = "/") -> dict[str, Any]:
    """The parameters a node named `node_name` in `namespace` gets from the file (later sections win)."""
    merged: dict[str, Any] = {}
    for key, params in sections.items():
        if section_matches(key, node_name, namespace):
            merged.update(params)
    return merged


def configures(sections: dict[str, dict[str, Any]], node_name: str) -> bool:
    """Whether a section names this node explicitly (not only through '/**')."""
    return any(key == node_name or key.endswith("/" + node_name) for key in sections)
