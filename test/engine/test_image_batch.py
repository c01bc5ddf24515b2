"""Engine.submit_images: a batch of raw uint8 frames of different sizes (one letterbox each), every frame uploaded
into its own buffer and letterboxed by the image kernel into its slice of the N×3×H×W input. Per frame the result
must equal that frame sent alone through submit_image (the same kernel, so bit-equal), and the host's cv2
letterbox within the image kernel tests' tolerance; a wrong number of frames is a ModelError."""

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from onnx import helper
from onnx_models import convert, make_model
from test_image_kernel import CV2_TOL, reference_tensor

from ocl_infer.engine import Engine, ImageToTensor
from ocl_infer.errors import ModelError

SHAPE = (1, 3, 37, 53)
BATCH = 3


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Engine]]:
    """y = -x (the input tensor, observable) as a batch-1 and a batch-3 engine."""
    tmp = tmp_path_factory.mktemp("image_batch")
    path = convert(make_model([helper.make_node("Neg", ["x"], ["y"])], {"x": SHAPE}, ["y"]), tmp / "neg.nnef")
    with Engine(path) as single, Engine(path, batch=BATCH, poison=True) as batched:
        yield single, batched


def frames() -> list[tuple[np.ndarray, ImageToTensor]]:
    """Three cameras: different sizes, pixel formats, letterboxes, resampling; one row-padded view."""
    rng = np.random.default_rng(11)
    wide = rng.integers(0, 256, (64, 120, 3), np.uint8)
    return [
        (rng.integers(0, 256, (576, 768, 3), np.uint8),
         ImageToTensor("x", (0, 6, 53, 25), "BGR", "RGB", scale=1 / 255, pad=0.5, quantize=True)),
        (rng.integers(0, 256, (20, 31, 4), np.uint8),
         ImageToTensor("x", (3, 1, 48, 30), "BGRA", "RGB", scale=1 / 255, mean=(0.5, 0.25, 0.0), pad=0.75)),
        (wide[5:50, 7:100],  # row stride 360 bytes for 93×3 bytes of pixels
         ImageToTensor("x", (1, 0, 51, 37), "RGB", "RGB", scale=1.0, pad=-1.0, quantize=True)),
    ]


def host_letterbox(image: np.ndarray, t: ImageToTensor) -> np.ndarray:
    """The host path: cv2.resize on uint8, then placement, colour order, scale and pad (1×3×H×W float64)."""
    resized = cv2.resize(np.ascontiguousarray(image), (t.box[2], t.box[3]), interpolation=cv2.INTER_LINEAR)
    return reference_tensor(resized.astype(np.float64), t, SHAPE)


def test_batch_equals_each_frame_alone_and_the_host_letterbox(engines: tuple[Engine, Engine]) -> None:
    single, batched = engines
    cams = frames()
    alone = [-single.run_image(image, t)["y"] for image, t in cams]
    # NaN in the input first: a slice no kernel writes keeps it (the input buffer is not poisoned by the engine)
    batched.run({"x": np.full((BATCH, *SHAPE[1:]), np.nan, np.float32)})
    for order in ([0, 1, 2], [2, 0, 1], [0, 1, 2]):  # frames change slots: each slot rebinds to its geometry
        got = -batched.run_images([cams[i][0] for i in order], [cams[i][1] for i in order])["y"]
        assert got.shape == (BATCH, *SHAPE[1:])
        for n, i in enumerate(order):
            image, t = cams[i]
            assert np.array_equal(got[n : n + 1], alone[i]), f"slot {n} (camera {i}) differs from it alone"
            err = np.abs(got[n : n + 1] - host_letterbox(image, t)).max() / t.scale
            assert err <= CV2_TOL, f"slot {n} (camera {i}) vs host cv2 letterbox: {err:.3f} grey levels"
    # the same frame in every slot (the node's warm-up does this)
    got = -batched.run_images([cams[1][0]] * BATCH, [cams[1][1]] * BATCH)["y"]
    assert all(np.array_equal(got[n : n + 1], alone[1]) for n in range(BATCH))


def test_wrong_count_or_inputs_are_model_errors(engines: tuple[Engine, Engine]) -> None:
    single, batched = engines
    (image, t), *_ = frames()
    with pytest.raises(ModelError, match=r"input 'x' of shape \[3, 3, 37, 53\] takes a batch of 3 image\(s\), got 2"):
        batched.submit_images([image, image], [t, t])
    with pytest.raises(ModelError, match=r"takes a batch of 3 image\(s\), got 1"):
        batched.submit_image(image, t)
    with pytest.raises(ModelError, match=r"takes a batch of 1 image\(s\), got 2"):
        single.submit_images([image, image], [t, t])
    with pytest.raises(ModelError, match="3 images but 1 transforms"):
        batched.submit_images([image] * 3, [t])
    with pytest.raises(ModelError, match=r"one image input, got \['x', 'z'\]"):
        batched.submit_images([image] * 3, [t, t, ImageToTensor("z", t.box)])
    with pytest.raises(ModelError, match="image input 'z' is not a model input"):
        batched.submit_images([image] * 3, [ImageToTensor("z", t.box)] * 3)
    with pytest.raises(ModelError, match=r"image 1 for input 'x'.*uint8"):
        batched.submit_images([image, image.astype(np.float32), image], [t] * 3)
    with pytest.raises(ModelError, match="must name one image input, got none"):
        batched.submit_images([], [])
