"""Engine(batch=N): a model exported for one frame runs N frames at once (the inputs' first dimension changed at
load, plans and kernels for N), against onnxruntime running the same network with batch N."""

import numpy as np
import pytest
from onnx import helper
from onnx_models import convert, make_model, rel_error, run_onnx

from ocl_infer.engine import Engine
from ocl_infer.errors import OclInferError

rng = np.random.default_rng(3)


def network(batch: int) -> tuple[object, dict[str, np.ndarray]]:
    """conv + leaky + 2x2 pool, a 1x1 conv, nearest upsample, concat: YOLOv3-tiny's ops."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c1"], ["a1"], alpha=0.1),
             helper.make_node("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[1, 1]),
             helper.make_node("Resize", ["c2", "", "scales"], ["u"], mode="nearest"),
             helper.make_node("Concat", ["u", "a1"], ["y"], axis=1)]
    inits = {"w1": WEIGHTS["w1"], "b1": WEIGHTS["b1"], "w2": WEIGHTS["w2"], "b2": WEIGHTS["b2"],
             "scales": np.array([1, 1, 2, 2], np.float32)}
    return make_model(nodes, {"x": (batch, 5, 12, 14)}, ["y"], inits, 13), inits


WEIGHTS = {name: rng.standard_normal(shape).astype(np.float32)
           for name, shape in (("w1", (20, 5, 3, 3)), ("b1", (20,)), ("w2", (8, 20, 1, 1)), ("b2", (8,)))}


@pytest.mark.parametrize("kernels", ["cpu", "gpu"])
def test_batch_n_matches_onnxruntime_and_each_frame_alone(tmp_path, kernels):
    one, _ = network(1)
    path = convert(one, tmp_path / "one.nnef")
    x = rng.standard_normal((3, 5, 12, 14)).astype(np.float32)
    want = run_onnx(network(3)[0], {"x": x})["y"]
    with Engine(path, batch=3, kernels=kernels, poison=True) as engine:
        assert engine.inputs["x"].shape == (3, 5, 12, 14) and engine.outputs["y"].shape == (3, 28, 12, 14)
        got = engine.run({"x": x})["y"]
    assert rel_error(got, want) <= 1e-4
    with Engine(path, kernels=kernels) as single:  # frame i of the batch is frame i run alone
        for i in range(3):
            alone = single.run({"x": x[i : i + 1]})["y"]
            assert rel_error(got[i : i + 1], alone) <= 1e-5


def test_bad_batch_is_refused_naming_the_model(tmp_path):
    path = convert(network(1)[0], tmp_path / "one.nnef")
    for bad in (0, -2, 1.5):
        with pytest.raises(OclInferError, match="batch must be a positive integer"):
            Engine(path, batch=bad)
