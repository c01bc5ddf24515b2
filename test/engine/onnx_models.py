"""Build small ONNX models with onnx.helper, convert them to NNEF in-process with nnef-tools, and run
onnxruntime on them: the independent reference for every engine test."""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def make_model(nodes: Sequence[onnx.NodeProto], inputs: dict[str, tuple[int, ...]],
               outputs: Sequence[str], initializers: dict[str, np.ndarray] | None = None,
               opset: int = OPSET) -> onnx.ModelProto:
    """A float32 ONNX model; output shapes come from running onnxruntime once (the converter needs them)."""
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()]
    graph = helper.make_graph(
        list(nodes), "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    feeds = {n: np.zeros(s, np.float32) for n, s in inputs.items()}
    shapes = [r.shape for r in run_onnx(model, feeds).values()]
    del model.graph.output[:]
    model.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                              for n, s in zip(outputs, shapes, strict=True))
    return model


def run_onnx(model: onnx.ModelProto | Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    src = str(model) if isinstance(model, Path) else model.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds), strict=True))


def convert(model: onnx.ModelProto | Path, out: Path, compress: bool = False) -> Path:
    """ONNX -> NNEF folder (or .tgz with `compress`) with nnef-tools, in-process (seconds faster than a CLI)."""
    from ocl_infer.engine.graph.convert import convert_model

    src = model
    if isinstance(model, onnx.ModelProto):
        src = out.with_suffix(".onnx")
        onnx.save(model, src)
    return convert_model(Path(src), out, compress=compress, force=True)  # tests reuse their output paths


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """Max error relative to the reference's largest magnitude; NaN anywhere gives inf."""
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != {want.shape}")
    if not np.all(np.isfinite(got)):
        return float("inf")
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-6)
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale if want.size else 0.0


def normal_floats(rng: np.random.Generator) -> Callable[..., np.ndarray]:
    """The op tests' `rand(*shape, scale=1.0, positive=False)`: float32 standard-normal draws from `rng` (each test
    module keeps its own seed); `positive`: |x| + 0.1, for inputs that must stay away from zero."""

    def rand(*shape: int, scale: float = 1.0, positive: bool = False) -> np.ndarray:
        a = (scale * rng.standard_normal(shape)).astype(np.float32)
        return np.abs(a) + 0.1 if positive else a

    return rand
