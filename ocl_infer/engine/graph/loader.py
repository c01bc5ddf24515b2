"""Load an NNEF model (folder, graph.nnef file or archive) into our immutable Graph, validating everything."""

import contextlib
import math
import os
import re
import select
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from ocl_infer.engine.graph.archive import extract_archive
from ocl_infer.engine.graph.custom_ops import CUSTOM_SHAPES
from ocl_infer.engine.graph.dat import read_dat
from ocl_infer.engine.graph.model import Graph, Op, Tensor, freeze
from ocl_infer.engine.graph.ops import LOWERED_OPS, SUPPORTED_OPS
from ocl_infer.errors import ModelError

ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar")
# Limits checked before the C++ parser or numpy sees the text: deep nesting overflows the parser's stack (a
# crash, not an error), integers past int32 wrap silently, and kernels index tensors with 32-bit ints.
MAX_GRAPH_BYTES = 64 * 2**20
MAX_NESTING = 256
MAX_TENSOR_ELEMENTS = 2**31 - 1
PARSE_TIMEOUT_S = 60.0
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_INTEGER = re.compile(r"(?<![\w.])\d+(?![\w.])")


def model_folder(model: str | Path) -> Path:
    """The folder holding graph.nnef for a folder, a graph.nnef path or an archive (extracted safely)."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "graph.nnef").is_file():
            raise ModelError(f"{path}: model folder has no graph.nnef")
        return path
    if path.is_file():
        if path.name.endswith(ARCHIVE_SUFFIXES):
            return extract_archive(path)
        if path.name == "graph.nnef":
            return path.parent
        raise ModelError(f"{path}: not an NNEF model (expected a folder with graph.nnef or a .tgz archive)")
    raise ModelError(f"{path}: model not found")


def load_graph(model: str | Path, batch: int | None = None) -> Graph:
    """Parse, infer shapes, read and validate every `.dat`, and convert to our Graph.

    `batch` replaces the first dimension of every input before shape inference, so a model exported for one
    frame runs N at once (plans, kernels and memory for N). Unsupported ops raise ModelError naming the op, the
    tensor it produces and the supported ops."""
    import nnef

    folder = model_folder(model)
    graph_file = folder / "graph.nnef"
    _check_text(graph_file)
    _check_parser_survives(folder, graph_file)
    try:
        ng = nnef.load_graph(str(folder), lowered=LOWERED_OPS, load_variables=False)
        _check_ops(ng, graph_file)  # before shape inference, which fails without naming the tensor
        if batch is not None:
            _set_batch(ng, batch, graph_file)
        nnef.infer_shapes(ng, custom_shapes=CUSTOM_SHAPES)
    except nnef.Error as err:
        raise ModelError(f"{graph_file}: {err}") from err
    except (ValueError, TypeError, KeyError, IndexError, AssertionError) as err:  # shape functions raise these
        raise ModelError(f"{graph_file}: invalid graph ({type(err).__name__}: {err})") from err

    tensors: dict[str, Tensor] = {}
    for name, t in ng.tensors.items():
        shape = tuple(int(d) for d in (t.shape or ()))
        _check_shape(shape, f"tensor '{name}'", graph_file)
        tensors[name] = Tensor(name=name, shape=shape, dtype=str(t.dtype))
    ops: list[Op] = []
    for nop in ng.operations:
        kind = nop.name
        outs = _flat_names(nop.outputs.values())
        if kind == "external":
            continue
        if kind == "variable":
            name = outs[0]
            label = str(nop.attribs["label"]).lstrip("/")
            dat = (folder / f"{label}.dat").resolve()
            if folder.resolve() not in dat.parents:
                raise ModelError(f"{graph_file}: variable {name} label {label!r} points outside the model folder")
            data = read_dat(dat, tensors[name].shape, f"variable {name!r}")
            tensors[name] = Tensor(name, tensors[name].shape, tensors[name].dtype, data)
            continue
        if kind == "constant":
            name = outs[0]
            shape = tuple(int(d) for d in nop.attribs["shape"])
            _check_shape(shape, f"constant '{name}'", graph_file)
            value = np.asarray(nop.attribs["value"], dtype=np.float32)
            if value.size not in (1, math.prod(shape)):
                raise ModelError(f"{graph_file}: constant '{name}' has {value.size} values for shape {list(shape)}; "
                                 f"expected 1 or {math.prod(shape)}")
            if not np.all(np.isfinite(value)):
                raise ModelError(f"{graph_file}: constant '{name}' holds NaN or infinite values")
            data = np.broadcast_to(value, shape) if value.size == 1 else value.reshape(shape)
            tensors[name] = Tensor(name, shape, tensors[name].dtype, np.ascontiguousarray(data, dtype=np.float32))
            continue
        inputs: list[str] = []
        args: list[tuple[str, Any]] = []
        for param, value in nop.inputs.items():
            args.append((param, _plain(value)))
            for i, v in enumerate(value if isinstance(value, list | tuple) else [value]):
                if isinstance(v, str):
                    inputs.append(str(v))
                else:  # a literal: becomes a rank-0 constant so kernels only ever see tensors
                    lit = f"{outs[0]}:{param}{i if isinstance(value, list | tuple) else ''}"
                    tensors[lit] = Tensor(lit, (), "scalar", np.asarray(float(v), dtype=np.float32))
                    inputs.append(lit)
        ops.append(Op(kind=kind, inputs=tuple(inputs), outputs=outs, attrs=freeze(dict(nop.attribs)),
                      args=tuple(args), dtype=str(nop.dtype) if nop.dtype else None))
    g = Graph(name=str(ng.name), inputs=tuple(str(n) for n in ng.inputs),
              outputs=tuple(str(n) for n in ng.outputs), tensors=tensors, ops=tuple(ops), source=str(folder))
    _check_types(g, graph_file)
    return g


def _set_batch(ng: Any, batch: int, graph_file: Path) -> None:
    """Every input's first dimension becomes `batch`; ops whose attributes fix the batch (a reshape to
    [1, ...], say) then fail shape inference with the op named."""
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ModelError(f"{graph_file}: batch must be a positive integer, got {batch!r}")
    for nop in ng.operations:
        if nop.name == "external":
            shape = [int(d) for d in nop.attribs.get("shape") or ()]
            if not shape:
                raise ModelError(f"{graph_file}: input '{_flat_names(nop.outputs.values())[0]}' has no batch "
                                 f"dimension (rank 0); it cannot be batched")
            nop.attribs["shape"] = [batch, *shape[1:]]


def _check_text(graph_file: Path) -> None:
    """Refuse what would crash or silently mislead the C++ parser: huge files, deep nesting, int32 overflow."""
    try:
        size = graph_file.stat().st_size
        if size > MAX_GRAPH_BYTES:
            raise ModelError(f"{graph_file}: {size} bytes; graph files over {MAX_GRAPH_BYTES} bytes are refused")
        text = _QUOTED.sub("''", graph_file.read_bytes().decode("utf-8", errors="replace"))
    except OSError as err:
        raise ModelError(f"{graph_file}: cannot read ({err})") from err
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    if deepest > MAX_NESTING:
        raise ModelError(f"{graph_file}: expressions nested {deepest} deep; at most {MAX_NESTING} are accepted")
    for m in _INTEGER.finditer(text):
        if int(m.group()) > 2**31 - 1:
            line = text.count("\n", 0, m.start()) + 1
            raise ModelError(f"{graph_file}: line {line}: integer {m.group()} does not fit 32 bits")


def _check_parser_survives(folder: Path, graph_file: Path) -> None:
    """Parse once in a forked child first: the C++ parser segfaults on some malformed text (e.g. a statement
    `x( = ...`, found by test/reliability's fuzz), which would take the whole process down with it."""
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:  # child: parse, report nothing but survival
        code = 0
        try:
            import nnef

            with contextlib.suppress(Exception):
                nnef.load_graph(str(folder), lowered=LOWERED_OPS, load_variables=False)
        except BaseException:
            code = 1
        os._exit(code)
    if not _wait_exit(pid, PARSE_TIMEOUT_S):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise ModelError(f"{graph_file}: the NNEF parser did not finish within {PARSE_TIMEOUT_S:g} s")
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise ModelError(f"{graph_file}: malformed graph: the NNEF parser crashed on it "
                         f"({signal.Signals(os.WTERMSIG(status)).name})")


def _wait_exit(pid: int, timeout_s: float) -> bool:
    """True once child `pid` has exited (not reaped), False after `timeout_s`."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel or not Linux): poll
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            time.sleep(0.002)
        return False
    try:
        return bool(select.select([fd], [], [], timeout_s)[0])
    finally:
        os.close(fd)


def _check_shape(shape: tuple[int, ...], what: str, graph_file: Path) -> None:
    if any(d < 0 for d in shape):
        raise ModelError(f"{graph_file}: {what} has a negative dimension {list(shape)}")
    if math.prod(shape) > MAX_TENSOR_ELEMENTS:
        raise ModelError(f"{graph_file}: {what} of shape {list(shape)} has {math.prod(shape)} elements; "
                         f"the engine's kernels index at most {MAX_TENSOR_ELEMENTS}")


def _check_ops(ng: Any, graph_file: Path) -> None:
    for nop in ng.operations:
        if nop.name not in SUPPORTED_OPS and nop.name not in ("external", "variable", "constant"):
            outs = _flat_names(nop.outputs.values())
            raise ModelError(
                f"{graph_file}: unsupported op '{nop.name}' producing tensor '{outs[0] if outs else '?'}'; "
                f"supported ops: {', '.join(sorted(SUPPORTED_OPS))}")


def _flat_names(values: Any) -> tuple[str, ...]:
    names: list[str] = []
    for v in values:
        names.extend(str(x) for x in (v if isinstance(v, list | tuple) else [v]))
    return tuple(names)


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _check_types(g: Graph, graph_file: Path) -> None:
    for name in g.inputs:
        t = g.tensors[name]
        if t.dtype != "scalar":
            raise ModelError(f"{graph_file}: input '{name}' has type {t.dtype}; only scalar (float) inputs run")
        if not t.shape or any(d <= 0 for d in t.shape):
            raise ModelError(f"{graph_file}: input '{name}' has no fixed shape ({list(t.shape)})")
    for op in g.ops:
        for name in op.outputs:
            # integer (indices) and logical tensors are held as float32 with exact integer values, logicals 0/1
            if g.tensors[name].dtype not in ("scalar", "integer", "logical"):
                raise ModelError(f"{graph_file}: op '{op.kind}' produces {g.tensors[name].dtype} tensor '{name}'; "
                                 "only scalar (float), integer and logical tensors are supported")
