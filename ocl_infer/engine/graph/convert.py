"""ONNX / TFLite -> NNEF with nnef-tools, in-process: constants folded, input/output names kept."""

import argparse
import contextlib
import io
import shutil
from pathlib import Path

from ocl_infer.errors import ModelError

FORMATS = {".onnx": "onnx", ".tflite": "tflite"}


def convert_model(src: Path, out: Path, input_shapes: dict[str, tuple[int, ...]] | None = None,
                  compress: bool = False, fold_constants: bool = True) -> Path:
    """Convert `src` into NNEF at `out` (a folder, or a .tgz with `compress`). Returns the written path."""
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
    for p in {target, written}:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    args = argparse.Namespace(
        input_model=str(src), output_model=str(target), input_format=fmt, output_format="nnef",
        input_shapes=repr(input_shapes) if input_shapes else None, io_transpose=None,
        fold_constants=fold_constants and fmt == "onnx", optimize=False, dequantize=False, custom_converters=None,
        custom_shapes=None, custom_fragments=None, custom_optimizers=None, mirror_unsupported=False,
        generate_custom_fragments=False, keep_io_names=True, decompose=None, input_names=None, output_names=None,
        static_only=False, tensor_mapping=None, annotate_shapes=False, compress=1 if compress else None)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            rc = nnef_convert.main(args)
    except Exception as err:  # nnef-tools raises plain exceptions for unsupported ops/attributes
        raise ModelError(f"{src}: conversion to NNEF failed: {type(err).__name__}: {err}") from err
    if rc != 0:
        raise ModelError(f"{src}: conversion to NNEF failed: {log.getvalue().strip() or f'exit code {rc}'}")
    if written.exists():
        return written
    raise ModelError(f"{src}: converter reported success but wrote nothing at {target}")
