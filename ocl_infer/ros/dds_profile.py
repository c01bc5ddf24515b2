"""The shared-memory Fast DDS profile (config/fastdds_shm.xml) for every process this package starts.

Why: with Fast DDS's default transports a 768x576 bgr8 frame (1.3 MB) does not fit the default 512 KB
shared-memory segment, so it goes over UDP in ~20 fragments, and on loopback most frames lose one: 0-2 of 100
frames answered at 10 Hz (docs/ros.md, "DDS set-up"). The profile gives each participant a 32 MB segment. The
sender's segment is what counts, so the camera's process needs it as much as the node's.

Fast DDS reads FASTDDS_DEFAULT_PROFILES_FILE when the first participant is created, i.e. when rclpy initialises
the RMW: entry points call `use_shm_profile()` before `rclpy.init`, launch files pass `launch_env()` to the
nodes they start. A user's own choice always wins: an existing FASTDDS_DEFAULT_PROFILES_FILE (even empty), the
old FASTRTPS_DEFAULT_PROFILES_FILE, RMW_FASTRTPS_USE_QOS_FROM_XML, FASTDDS_BUILTIN_TRANSPORTS, a
DEFAULT_FASTDDS_PROFILES.xml in the working directory (Fast DDS loads it by itself), or an RMW other than Fast
DDS. No rclpy here: importing this module changes nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

PROFILE_VAR = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE_NAME = "fastdds_shm.xml"
# Variables by which a user has already chosen how Fast DDS is configured.
USER_CHOICE_VARS = (PROFILE_VAR, "FASTRTPS_DEFAULT_PROFILES_FILE", "RMW_FASTRTPS_USE_QOS_FROM_XML",
                    "FASTDDS_BUILTIN_TRANSPORTS")
CWD_PROFILE = "DEFAULT_FASTDDS_PROFILES.xml"


def shm_profile_path() -> Path | None:
    """config/fastdds_shm.xml of the source checkout, else of the installed share folder (colcon or pip)."""
    from ocl_infer.paths import repo_root

    root = repo_root()
    candidates = [root / "config" / PROFILE_NAME] if root is not None else []
    # Installed: <prefix>/lib/pythonX.Y/site-packages/ocl_infer -> <prefix>/share/ocl_infer/config
    package = Path(__file__).resolve().parent.parent
    candidates += [prefix / "share" / "ocl_infer" / "config" / PROFILE_NAME
                   for prefix in (*package.parents, Path(sys.prefix))]
    return next((c for c in candidates if c.is_file()), None)


def user_choice(environ: Mapping[str, str], cwd: Path | None = None) -> str | None:
    """Why the profile must not be set here (the user's own configuration), or None when nothing was chosen."""
    for name in USER_CHOICE_VARS:
        if name in environ:
            return f"{name} is set"
    rmw = environ.get("RMW_IMPLEMENTATION", "")
    if rmw and "fastrtps" not in rmw:
        return f"RMW_IMPLEMENTATION is {rmw}"
    if (Path.cwd() if cwd is None else cwd).joinpath(CWD_PROFILE).is_file():
        return f"{CWD_PROFILE} in the working directory"
    return None


def use_shm_profile(environ: MutableMapping[str, str] | None = None, profile: Path | None = None) -> str | None:
    """Point FASTDDS_DEFAULT_PROFILES_FILE at the shared-memory profile unless the user configured Fast DDS.

    Call before rclpy.init in the process (children inherit it). Returns the profile set, or None."""
    env = os.environ if environ is None else environ
    path = profile if profile is not None else shm_profile_path()
    if path is None or user_choice(env) is not None:
        return None
    env[PROFILE_VAR] = str(path)
    return str(path)


def launch_env(profile: str | Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`additional_env` for a launch file's nodes: the profile, or nothing when the user configured Fast DDS
    (the nodes then inherit the launching shell's environment as usual)."""
    env = os.environ if environ is None else environ
    if user_choice(env) is not None or not Path(profile).is_file():
        return {}
    return {PROFILE_VAR: str(profile)}


def active_profile(environ: Mapping[str, str] | None = None) -> str:
    """What configures this process's Fast DDS, for diagnostics: a profiles file, or 'default'."""
    env = os.environ if environ is None else environ
    if env.get(PROFILE_VAR):
        return env[PROFILE_VAR]
    if Path.cwd().joinpath(CWD_PROFILE).is_file():
        return str(Path.cwd() / CWD_PROFILE)
    return "default"
