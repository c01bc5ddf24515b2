"""Engine test helpers: build an ONNX model, convert it to NNEF, run both and compare."""

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from onnx_models import convert, make_model, rel_error, run_onnx

TOLERANCE = 1e-4


@pytest.fixture(params=["cpu", "gpu"])
def check_against_onnx(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., dict[str, float]]:
    """Build `nodes` as ONNX, convert to NNEF, run engine (poisoned buffers) and onnxruntime, compare. Runs once
    per kernel family, each forced onto whatever device the tests see (PoCL here, Oclgrind, a real GPU)."""

    def check(nodes: Sequence[onnx.NodeProto], inputs: dict[str, np.ndarray], outputs: Sequence[str],
              initializers: dict[str, np.ndarray] | None = None, opset: int = 13,
              tol: float = TOLERANCE) -> dict[str, float]:
        from ocl_infer.engine import Engine

        model = make_model(nodes, {k: v.shape for k, v in inputs.items()}, outputs, initializers, opset)
        nnef_path = convert(model, tmp_path / "model.nnef")
        want = run_onnx(model, inputs)
        with Engine(nnef_path, poison=True, kernels=request.param) as engine:
            got = engine.run(inputs)
        errors = {name: rel_error(got[name], want[name]) for name in outputs}
        bad = {k: v for k, v in errors.items() if not v <= tol}
        assert not bad, f"relative error above {tol} (inf = NaN/inf in output): {bad}"
        return errors

    return check
