"""ONNX / TFLite -> NNEF with nnef-tools, in-process: constants folded, input/output names kept.

The output is written beside the target and moved into place only when complete (ocl_infer.fsutil): a failed
conversion, or a converted model that fails the caller's check, leaves the disk as it was."""

import argparse
import contextlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ocl_infer.engine.graph.loader import ARCHIVE_SUFFIXES
from ocl_infer.errors import ConfigError, ModelError, OclInferError
from ocl_infer.fsutil import staged_output

FORMATS = {".onnx": "onnx", ".tflite": "tflite"}
CUSTOM_CONVERTERS = "ocl_infer.engine.graph.onnx_custom"  # imported by nnef-tools, by name
NNEF_MODEL = "an NNEF model (a folder holding graph.nnef, or an archive of one)"


def is_nnef_model(path: Path) -> bool:
    """A folder holding graph.nnef, or an archive with a graph.nnef member: what `--force` may replace."""
    if path.is_dir():
        return (path / "graph.nnef").is_file()
    if not (path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)):
        return False
    try:
        with tarfile.open(path) as tar:
            return any(Path(name).name == "graph.nnef" for name in tar.getnames())
    except (tarfile.TarError, OSError, EOFError):
        return False


def convert_model(src: Path, out: Path, input_shapes: dict[str, tuple[int, ...]] | None = None,
                  compress: bool = False, fold_constants: bool = True, force: bool = False,
                  check: Callable[[Path], object] | None = None) -> Path:
    """Convert `src` into NNEF at `out` (a folder, or a .tgz with `compress`). Returns the written path.

    `check` (e.g. the engine's loader) gets the converted model before it is moved into place; an error it
    raises leaves nothing written. An existing output is refused (ConfigError) unless `force`, which replaces
    only an NNEF model."""
    import nnef_tools.convert as nnef_convert

    src = Path(src)
    fmt = FORMATS.get(src.suffix.lower())
    if fmt is None:
        raise ModelError(f"{src}: cannot convert; expected one of {sorted(FORMATS)}")
    if not src.is_file():
        raise ModelError(f"{src}: model file not found")
    out = Path(out)
    # nnef-tools appends ".tgz" to the path it is given when compressing
    target = out.with_name(out.name[: -len(".tgz")]) if compress and out.name.endswith(".tgz") else out
    written = target.with_name(target.name + ".tgz") if compress else target
    with staged_output(written, force=force, replaceable=is_nnef_model, kind=NNEF_MODEL, error=ConfigError) as staged:
        # nnef-tools refuses ±inf (and NNEF text cannot write it): convert a copy with float32's largest values
        finite = staged.parent / "finite.onnx"
        model = finite if fmt == "onnx" and _finite_copy(src, finite) else src
        args = argparse.Namespace(
            input_model=str(model), output_model=str(staged.with_name(target.name)), input_format=fmt,
            output_format="nnef", input_shapes=repr(input_shapes) if input_shapes else None, io_transpose=None,
            fold_constants=fold_constants and fmt == "onnx", optimize=False, dequantize=False,
            # ONNX ops nnef-tools lacks (TopK, GatherElements, Mod, integer arithmetic) become our custom fragments
            custom_converters=[CUSTOM_CONVERTERS] if fmt == "onnx" else None, custom_shapes=None,
            custom_fragments=[CUSTOM_CONVERTERS] if fmt == "onnx" else None, custom_optimizers=None,
            mirror_unsupported=False, generate_custom_fragments=False, keep_io_names=True, decompose=None,
            input_names=None, output_names=None, static_only=False, tensor_mapping=None, annotate_shapes=False,
            compress=1 if compress else None)
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log):
                rc = nnef_convert.main(args)
        except Exception as err:  # nnef-tools raises plain exceptions for unsupported ops/attributes
            raise ModelError(f"{src}: conversion to NNEF failed: {type(err).__name__}: {err}") from err
        if rc != 0:
            raise ModelError(f"{src}: conversion to NNEF failed: {log.getvalue().strip() or f'exit code {rc}'}")
        if not staged.exists():
            raise ModelError(f"{src}: converter reported success but wrote nothing at {target}")
        if check is not None:
            try:
                check(staged)
            except OclInferError as err:  # name the path the user gave, not the temporary one
                raise ModelError(f"{written}: not written, the converted model fails the check: "
                                 f"{str(err).replace(str(staged), str(written))}") from err
    return written


def _finite_copy(src: Path, dest: Path) -> bool:
    """Write `src` to `dest` with every ±inf in its initializers and node attributes (Constant values, Clip
    bounds) replaced by ±float32 max, and return True; return False (nothing written) when it holds none.

    Graphs use inf as "no bound" and as a mask value (RT-DETR's invalid anchors, attention masks): with the
    largest finite value, sigmoid, softmax, min/max and clip give the same results; only inf - inf or inf * 0
    (NaN in onnxruntime) come out finite here. NaN constants are left for nnef-tools to refuse."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(src))
    except Exception as err:  # onnx raises DecodeError and others for a corrupt file
        raise ModelError(f"{src}: conversion to NNEF failed: not a readable ONNX model "
                         f"({type(err).__name__}: {err})") from err
    big = float(np.finfo(np.float32).max)
    changed = False

    def finite(t: onnx.TensorProto) -> None:
        nonlocal changed
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f" and np.isinf(a).any():
            top = np.finfo(a.dtype).max  # float16's own, or it would become inf again
            t.CopyFrom(numpy_helper.from_array(np.clip(a, -top, top).astype(a.dtype), t.name))
            changed = True

    for t in model.graph.initializer:
        finite(t)
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                finite(attr.t)
            elif attr.type == onnx.AttributeProto.FLOAT and np.isinf(attr.f):
                attr.f = float(np.clip(attr.f, -big, big))
                changed = True
    if changed:
        onnx.save(model, str(dest))
    return changed
