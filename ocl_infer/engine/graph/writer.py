"""Write a Graph back out as NNEF: graph.nnef text plus one `.dat` per variable."""

from pathlib import Path
from typing import Any

import numpy as np

from ocl_infer.engine.graph.custom_ops import CUSTOM_FRAGMENTS
from ocl_infer.engine.graph.dat import write_dat
from ocl_infer.engine.graph.model import Graph
from ocl_infer.errors import ModelError

_LIST_OUTPUT_OPS = {"split", "unstack"}
# what a written graph declares for the non-standard ops it uses (erf: nnef-tools' fragment, run as a kernel)
_DECLARATIONS = {**CUSTOM_FRAGMENTS, "erf": "\nfragment erf( x: tensor<scalar> ) -> ( y: tensor<scalar> );\n"}


def _value(v: Any, nested: bool = False) -> str:
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(v)
        if not np.isfinite(f):
            raise ModelError(f"cannot write non-finite attribute value {f} to NNEF")
        text = repr(f)
        return text if ("." in text or "e" in text) else text + ".0"
    if isinstance(v, str):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x, True) for x in v) + "]"
    if isinstance(v, tuple):
        inner = ", ".join(_value(x, True) for x in v)
        return f"({inner})" if nested else f"[{inner}]"
    raise ModelError(f"cannot write attribute value {v!r} to NNEF")


def _arg(v: Any) -> str:
    """Input arguments: identifiers bare, literals formatted, lists as lists."""
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_arg(x) for x in v) + "]"
    if isinstance(v, str):
        return v
    return _value(v)


def save_graph(graph: Graph, path: str | Path) -> Path:
    """Write `graph` into folder `path` (created; must not exist or be empty)."""
    out = Path(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"{out}: exists and is not an empty folder; not overwriting")
    out.mkdir(parents=True, exist_ok=True)
    custom = sorted({op.kind for op in graph.ops} & set(_DECLARATIONS))
    lines = ["version 1.0;", ""]
    if custom:
        lines += ["extension KHR_enable_fragment_definitions;", "extension KHR_enable_operator_expressions;",
                  *(_DECLARATIONS[k].strip() for k in custom), ""]  # expressions: layer_normalization's body
    lines += [f"graph {graph.name}( {', '.join(graph.inputs)} ) -> ( {', '.join(graph.outputs)} )", "{"]
    for name in graph.inputs:
        shape = ", ".join(str(d) for d in graph.tensors[name].shape)
        lines.append(f"    {name} = external<scalar>(shape = [{shape}]);")
    used = {n for op in graph.ops for n in op.inputs} | set(graph.outputs)
    for name, t in graph.tensors.items():
        if t.data is None or ":" in name or name not in used:
            continue
        shape = ", ".join(str(d) for d in t.shape)
        lines.append(f"    {name} = variable<{t.dtype}>(shape = [{shape}], label = '{name}');")
        write_dat(out / f"{name}.dat", t.data, t.dtype)
    for op in graph.ops:
        params = [_arg(v) for _, v in op.args]
        params += [f"{k} = {_value(v)}" for k, v in op.attrs.items()]
        lhs = f"[{', '.join(op.outputs)}]" if op.kind in _LIST_OUTPUT_OPS else ", ".join(op.outputs)
        if op.kind not in _LIST_OUTPUT_OPS and len(op.outputs) > 1:
            lhs = f"({lhs})"
        generic = f"<{op.dtype}>" if op.dtype else ""  # the type of a generic fragment (cast<scalar>, mod<integer>)
        lines.append(f"    {lhs} = {op.kind}{generic}({', '.join(params)});")
    lines.append("}")
    (out / "graph.nnef").write_text("\n".join(lines) + "\n")
    return out
