"""The image_to_nchw kernel (uint8 frame -> letterboxed float32 NCHW on the device) against a float64 numpy
bilinear reference with cv2.resize INTER_LINEAR's sampling (half-pixel centres, edge clamp), and against the
host path's cv2 uint8 resize; then Engine.submit_image end to end on a small converted model.

Tolerances, in grey levels (0..255, before scale): kernel vs float64 reference 0.05 (float32 source coordinates:
on a 1280-wide frame (u + 0.5) * ratio is off by up to ~1e-4 px); kernel vs cv2 uint8 1.0 (cv2 rounds its result
to uint8 and uses 11-bit fixed-point weights). Pixels outside the letterbox must equal the pad value exactly."""

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pyopencl as cl
import pytest
from onnx import helper
from onnx_models import convert, make_model

from ocl_infer.engine import Engine, ImageToTensor
from ocl_infer.engine.kernels.image import ImageKernel, image_feed
from ocl_infer.engine.runtime import ProgramCache
from ocl_infer.errors import ConfigError, ModelError

REF_TOL = 0.05  # grey levels, kernel vs float64 reference
CV2_TOL = 1.0  # grey levels, kernel vs cv2.resize on uint8


@pytest.fixture(scope="module")
def cl_env() -> Iterator[tuple[cl.Context, cl.CommandQueue, ProgramCache]]:
    ctx = cl.Context([cl.get_platforms()[0].get_devices()[0]])
    yield ctx, cl.CommandQueue(ctx), ProgramCache(ctx, ctx.devices[0], disk=False)


def run_kernel(env: tuple[cl.Context, cl.CommandQueue, ProgramCache], image: np.ndarray, t: ImageToTensor,
               shape: tuple[int, int, int, int]) -> np.ndarray:
    ctx, q, programs = env
    wrapper = ImageKernel(t)
    prg = programs.get(wrapper.source(), wrapper.build_options(), "image_to_nchw")
    feed = image_feed(image, t, shape)
    mf = cl.mem_flags
    src = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=np.ascontiguousarray(feed.pixels))
    out = np.full(shape, np.nan, np.float32)  # NaN: an element the kernel skips cannot pass
    dst = cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=out)
    (launch,) = wrapper.launches(prg, feed, src, dst, shape)
    cl.enqueue_nd_range_kernel(q, launch.kernel, launch.global_size, launch.local_size)
    cl.enqueue_copy(q, out, dst)
    return out


def bilinear_reference(image: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """float64 resize, cv2 INTER_LINEAR convention: src = (dst + 0.5) * src/dst - 0.5, clamped to the edges."""
    h, w = image.shape[:2]

    def taps(n: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = np.maximum((np.arange(n) + 0.5) * (size / n) - 0.5, 0.0)
        i0 = np.minimum(np.floor(f).astype(np.int64), size - 1)
        return i0, np.minimum(i0 + 1, size - 1), f - i0

    x0, x1, ax = taps(new_w, w)
    y0, y1, ay = taps(new_h, h)
    im = image.astype(np.float64)
    ax3 = ax[None, :, None]
    top = im[y0][:, x0] * (1 - ax3) + im[y0][:, x1] * ax3
    bottom = im[y1][:, x0] * (1 - ax3) + im[y1][:, x1] * ax3
    return top * (1 - ay)[:, None, None] + bottom * ay[:, None, None]


def reference_tensor(resized: np.ndarray, t: ImageToTensor, shape: tuple[int, ...]) -> np.ndarray:
    """H×W×C resized pixels (source order) -> the full float64 input tensor the transform describes."""
    dx, dy, new_w, new_h = t.box
    chw = resized[..., list(t.pick())].transpose(2, 0, 1) * t.scale - np.asarray(t.mean)[:, None, None]
    out = np.full(shape, t.pad, np.float64)
    out[0, :, dy:dy + new_h, dx:dx + new_w] = chw
    return out


def inside(t: ImageToTensor, shape: tuple[int, ...]) -> np.ndarray:
    dx, dy, new_w, new_h = t.box
    mask = np.zeros(shape, bool)
    mask[0, :, dy:dy + new_h, dx:dx + new_w] = True
    return mask


CASES = [  # (src h, src w, source order, target order, box, net h, net w)
    (576, 768, "BGR", "RGB", (0, 52, 416, 312), 416, 416),  # vtest letterbox, downscale
    (720, 1280, "BGR", "RGB", (0, 91, 416, 234), 416, 416),  # 720p letterbox
    (31, 17, "BGR", "BGR", (5, 2, 60, 101), 107, 71),  # odd sizes, upscale
    (480, 640, "RGB", "RGB", (0, 0, 416, 416), 416, 416),  # no letterbox: both axes scaled differently
    (1, 1, "BGRA", "RGB", (3, 4, 9, 7), 13, 12),  # one pixel
    (57, 93, "RGBA", "BGR", (1, 1, 93, 57), 59, 95),  # same size: no resize, just placement
    (200, 400, "BGR", "RGB", (0, 0, 200, 100), 101, 203),  # exactly 2x down (cv2 switches to INTER_AREA)
]


@pytest.mark.parametrize(("h", "w", "source", "target", "box", "net_h", "net_w"), CASES)
def test_kernel_matches_float64_reference_and_cv2(cl_env, h: int, w: int, source: str, target: str,
                                                  box: tuple[int, int, int, int], net_h: int, net_w: int) -> None:
    rng = np.random.default_rng(h * w)
    image = rng.integers(0, 256, (h, w, len(source)), np.uint8)
    t = ImageToTensor("x", box, source, target, scale=1 / 255, mean=(0.1, 0.0, -0.2), pad=0.5)
    shape = (1, 3, net_h, net_w)
    got = run_kernel(cl_env, image, t, shape)
    mask = inside(t, shape)
    assert np.all(got[~mask] == np.float32(0.5)), "pad region must be the pad value exactly"
    want = reference_tensor(bilinear_reference(image, box[2], box[3]), t, shape)
    ref_err = np.abs(got - want).max() * 255
    assert ref_err <= REF_TOL, f"kernel vs float64 reference: {ref_err:.4f} grey levels"
    host = cv2.resize(image, (box[2], box[3]), interpolation=cv2.INTER_LINEAR) if (box[2], box[3]) != (w, h) \
        else image
    cv2_err = np.abs(got - reference_tensor(host.astype(np.float64), t, shape)).max() * 255
    assert cv2_err <= CV2_TOL, f"kernel vs cv2 uint8 resize: {cv2_err:.3f} grey levels"


def test_reference_sampling_is_cv2s() -> None:
    """The reference's convention is cv2's: on float input (no uint8 rounding) cv2 agrees to float32 precision."""
    rng = np.random.default_rng(1)
    for (h, w), (nw, nh) in [((576, 768), (416, 312)), ((31, 17), (60, 101)), ((5, 9), (2, 3))]:
        image = rng.integers(0, 256, (h, w, 3), np.uint8)
        cv = cv2.resize(image.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR)
        assert np.abs(cv - bilinear_reference(image, nw, nh)).max() < 1e-3


def test_row_padding_and_views(cl_env) -> None:
    """A view with row stride > W×C is read in place; a colour-reversed (negative stride) view is copied first."""
    rng = np.random.default_rng(7)
    big = rng.integers(0, 256, (60, 101, 3), np.uint8)
    padded = big[3:50, 5:77]  # row stride 303 bytes for 72×3 bytes of pixels, start offset inside big
    t = ImageToTensor("x", (2, 0, 45, 33), "BGR", "RGB", scale=1.0, pad=-1.0)
    feed = image_feed(padded, t, (1, 3, 33, 50))
    assert feed.row_stride == 303 and feed.pixels.base is not None and feed.pixels.nbytes == 46 * 303 + 72 * 3
    shape = (1, 3, 33, 50)
    got = run_kernel(cl_env, padded, t, shape)
    assert np.array_equal(got, run_kernel(cl_env, np.ascontiguousarray(padded), t, shape))
    reversed_view = padded[..., ::-1]  # RGB data seen as BGR -> target RGB = the padded image's BGR bytes
    t_rgb = ImageToTensor("x", (2, 0, 45, 33), "BGR", "BGR", scale=1.0, pad=-1.0)
    assert np.array_equal(run_kernel(cl_env, reversed_view, t_rgb, shape), got)


def test_transform_and_image_errors() -> None:
    with pytest.raises(ConfigError, match="source"):
        ImageToTensor("x", (0, 0, 4, 4), source="YUV")
    with pytest.raises(ConfigError, match="target"):
        ImageToTensor("x", (0, 0, 4, 4), target="BGRA")
    with pytest.raises(ConfigError, match="box"):
        ImageToTensor("x", (0, 0, 0, 4))
    for bad in ({"box": (0, 0, "a", 4)}, {"box": (0, 0, 1.5, 4)}, {"box": (0, 0, 4, 4), "scale": float("nan")},
                {"box": (0, 0, 4, 4), "mean": ("a", 0, 0)}):
        with pytest.raises(ConfigError, match="box must be 4 integers"):
            ImageToTensor("x", **bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="mean"):
        ImageToTensor("x", (0, 0, 4, 4), mean=(1.0, 2.0))
    loose = ImageToTensor("x", [0, 0, np.int64(4), 4], mean=[1, 2, 3])  # type: ignore[arg-type]
    assert loose.box == (0, 0, 4, 4) and loose.mean == (1.0, 2.0, 3.0) and hash(loose)
    t = ImageToTensor("x", (0, 0, 8, 8))
    with pytest.raises(ConfigError, match="does not fit input 'x'"):
        image_feed(np.zeros((4, 4, 3), np.uint8), t, (1, 3, 8, 7))
    with pytest.raises(ModelError, match="H×W×3"):
        image_feed(np.zeros((4, 4, 4), np.uint8), t, (1, 3, 8, 8))
    with pytest.raises(ModelError, match="uint8"):
        image_feed(np.zeros((4, 4, 3), np.float32), t, (1, 3, 8, 8))
    with pytest.raises(ModelError, match="N×3×H×W"):
        image_feed(np.zeros((4, 4, 3), np.uint8), t, (1, 8, 8))


@pytest.fixture(scope="module")
def neg_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """y = -x on a 1×3×37×53 input: the engine's input tensor, observable (and nothing folds it away)."""
    tmp = tmp_path_factory.mktemp("image")
    return convert(make_model([helper.make_node("Neg", ["x"], ["y"])], {"x": (1, 3, 37, 53)}, ["y"]),
                   tmp / "neg.nnef")


def test_engine_submit_image_end_to_end(neg_model: Path) -> None:
    """submit_image through the dispatcher, poisoned buffers, geometry changing from frame to frame (the upload
    buffer grows, bound launches are rebound), float submit still works beside it."""
    rng = np.random.default_rng(3)
    shape = (1, 3, 37, 53)
    frames = [(rng.integers(0, 256, (h, w, c), np.uint8), box, src)
              for h, w, c, box, src in [(20, 30, 3, (1, 2, 50, 33), "BGR"), (300, 200, 4, (10, 0, 24, 37), "BGRA"),
                                        (20, 30, 3, (1, 2, 50, 33), "BGR"), (37, 53, 3, (0, 0, 53, 37), "RGB")]]
    with Engine(neg_model, poison=True) as engine:
        engine.warm_image(ImageToTensor("x", (0, 0, 53, 37), "BGRA"))  # compiles, runs no frame
        assert [rt.frames for rt in engine.runtimes] == [0] and engine.stats()[0].frames == 0
        futures = []
        for image, box, src in frames:
            t = ImageToTensor("x", box, src, "RGB", scale=1 / 255, mean=(0.5, 0.25, 0.0), pad=0.75)
            futures.append((engine.submit_image(image, t), image, t))
        for fut, image, t in futures:
            want = reference_tensor(bilinear_reference(image, t.box[2], t.box[3]), t, shape)
            got = -fut.result(timeout=60)["y"]
            assert np.abs(got - want).max() * 255 <= REF_TOL
        x = rng.random(shape, dtype=np.float32)
        assert np.array_equal(engine.run({"x": x})["y"], -x)
        with pytest.raises(ModelError, match="image input 'z' is not a model input"):
            engine.submit_image(frames[0][0], ImageToTensor("z", (0, 0, 5, 5)))
        with pytest.raises(ModelError, match=r"unknown \['w'\]"):
            engine.submit_image(frames[0][0], ImageToTensor("x", (0, 0, 5, 5)), {"w": x})


@pytest.mark.parametrize(("h", "w", "new_w", "new_h", "max_differing"), [
    (576, 768, 416, 312, 0.0),  # vtest/dog letterbox: bit-equal to cv2
    (720, 1280, 416, 234, 0.0),
    (480, 640, 416, 416, 0.0),  # no letterbox: different ratios per axis
    (31, 17, 60, 101, 0.01),  # cv2's scalar tail (row ends its SIMD loop does not cover) rounds differently
    (200, 400, 200, 100, 0.0),
])
def test_quantize_reproduces_cv2_uint8_resize(cl_env, h: int, w: int, new_w: int, new_h: int,
                                              max_differing: float) -> None:
    """quantize=True: cv2's taps, 11-bit fixed-point weights and rounding; bit-equal to cv2.resize on uint8
    where cv2 runs its SIMD loop, at most 1 grey level apart on the few pixels of its scalar row tail."""
    rng = np.random.default_rng(w)
    image = rng.integers(0, 256, (h, w, 3), np.uint8)
    t = ImageToTensor("x", (0, 0, new_w, new_h), "BGR", "BGR", scale=1.0, pad=0.0, quantize=True)
    got = run_kernel(cl_env, image, t, (1, 3, new_h, new_w))[0].transpose(1, 2, 0)
    want = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    diff = np.abs(got - want)
    assert diff.max() <= 1.0 and (diff > 0).mean() <= max_differing, (diff.max(), (diff > 0).mean())
    assert np.array_equal(got, np.round(got)), "quantized pixels are whole grey levels"
