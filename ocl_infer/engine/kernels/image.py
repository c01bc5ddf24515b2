"""Image family: a raw uint8 frame -> the network's float32 NCHW input on the device, in one pass.

`ImageToTensor` describes the transform (a frozen config); `ImageFeed` pairs it with one frame. A tuple of
them, one per frame of the input's batch dimension, is what the dispatcher carries in place of a float32 array,
so failover re-runs the frames from their uint8 pixels; the runtime uploads each frame into its own buffer (3x
fewer bytes than float32) and enqueues one `ImageKernel` launch per frame, each writing its frame's slice of the
input, before the plan on the same queue.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Launch, new_kernel, read_source
from ocl_infer.errors import ConfigError, ModelError

# colour orders a source may have, and the byte of each colour inside one pixel
SOURCE_ORDERS = {"BGR": "BGR", "RGB": "RGB", "BGRA": "BGRA", "RGBA": "RGBA"}
TARGET_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class ImageToTensor:
    """uint8 H×W×C frame (`source` order) -> one 3×H×W image of the N×3×H×W float32 input `input` (`target`
    order): bilinear resize
    (cv2 INTER_LINEAR sampling) into `box` = (dx, dy, new_w, new_h) of the input, value = pixel × scale − mean
    (mean per target channel), `pad` everywhere outside the box. `quantize`: resample the way cv2.resize does on
    uint8 (fixed-point weights, result rounded to uint8) for a tensor equal to a host cv2 path; else float."""

    input: str
    box: tuple[int, int, int, int]
    source: str = "BGR"
    target: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pad: float = 0.0
    quantize: bool = False  # round resampled pixels to uint8 as cv2.resize does (11-bit fixed-point weights)

    def __post_init__(self) -> None:
        if self.source not in SOURCE_ORDERS:
            raise ConfigError(f"ImageToTensor.source={self.source!r} must be one of {sorted(SOURCE_ORDERS)}")
        if self.target not in TARGET_ORDERS:
            raise ConfigError(f"ImageToTensor.target={self.target!r} must be one of {list(TARGET_ORDERS)}")
        try:
            if len(self.box) != 4 or any(int(b) != b for b in self.box):
                raise ValueError
            if not all(np.isfinite(np.asarray([self.scale, self.pad, *self.mean], np.float64))):
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"ImageToTensor(box={self.box!r}, scale={self.scale!r}, mean={self.mean!r}, "
                              f"pad={self.pad!r}): box must be 4 integers (dx, dy, new_w, new_h), the rest finite "
                              "numbers") from None
        if self.box[0] < 0 or self.box[1] < 0 or self.box[2] < 1 or self.box[3] < 1:
            raise ConfigError(f"ImageToTensor.box={self.box!r}: offsets must be >= 0 and sizes >= 1")
        if len(self.mean) != 3:
            raise ConfigError(f"ImageToTensor.mean={self.mean!r} must have 3 values (one per target channel)")
        # plain tuples and numbers: the transform keys the runtime's bound launches (hashable, stable)
        object.__setattr__(self, "box", tuple(int(b) for b in self.box))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "pad", float(self.pad))

    @property
    def channels(self) -> int:
        return len(self.source)

    def pick(self) -> tuple[int, int, int]:
        """The byte inside a source pixel that gives each target channel: (0, 1, 2) or (2, 1, 0)."""
        return tuple(self.source.index(c) for c in self.target)  # type: ignore[return-value]


@dataclass(frozen=True)
class ImageFeed:
    """One frame for an image input: `pixels` is the byte span the device reads (rows `row_stride` apart)."""

    transform: ImageToTensor
    pixels: np.ndarray  # 1-D uint8, (height - 1) * row_stride + width * channels bytes
    width: int
    height: int
    row_stride: int


ImageFeeds = tuple[ImageFeed, ...]  # one per frame of the input's batch dimension, in batch order


def image_feed(image: object, transform: ImageToTensor, input_shape: tuple[int, ...],
               what: str = "image") -> ImageFeed:
    """Check a H×W×C uint8 frame against `transform` and the input's N×3×H×W shape (the caller checks that N
    frames come). Row padding (a view whose row stride exceeds W×C) is kept, not copied; any other layout is made
    contiguous first."""
    t = transform
    if len(input_shape) != 4 or input_shape[0] < 1 or input_shape[1] != 3:
        raise ModelError(f"input '{t.input}' has shape {list(input_shape)}; image input needs N×3×H×W")
    net_h, net_w = input_shape[2], input_shape[3]
    dx, dy, new_w, new_h = t.box
    if dx + new_w > net_w or dy + new_h > net_h:
        raise ConfigError(f"ImageToTensor.box={t.box} does not fit input '{t.input}' of {net_w}×{net_h}")
    if not isinstance(image, np.ndarray):
        raise ModelError(f"{what}: expected a numpy array (H×W×{t.channels} uint8), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ModelError(f"{what}: dtype {image.dtype} is not uint8")
    if image.ndim != 3 or image.shape[2] != t.channels:
        raise ModelError(f"{what}: shape {image.shape} is not H×W×{t.channels} ({t.source})")
    h, w, c = image.shape
    if h == 0 or w == 0:
        raise ModelError(f"{what}: empty frame of shape {image.shape}")
    if h * max(image.strides[0], w * c) >= 2**31:
        raise ModelError(f"{what}: frame of shape {image.shape} is too large (2 GiB limit)")
    s_row, s_px, s_ch = image.strides
    if not (s_ch == 1 and s_px == c and s_row >= w * c):
        image = np.ascontiguousarray(image)
        s_row = w * c
    span = (h - 1) * s_row + w * c
    pixels = np.lib.stride_tricks.as_strided(image, shape=(span,), strides=(1,), writeable=False)
    return ImageFeed(t, pixels, w, h, s_row)


def resize_taps(dst: int, src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cv2.resize INTER_LINEAR's taps for one axis, with its float32 arithmetic: (first tap, second tap, float32
    weight of the second tap) per output index. Half-pixel centres; past either edge both taps are the edge."""
    ratio = 1.0 / (dst / src)  # as cv2: scale = 1 / (dst / src), in double
    f = ((np.arange(dst) + 0.5) * ratio - 0.5).astype(np.float32)
    i0 = np.floor(f).astype(np.int64)
    alpha = (f - i0.astype(np.float32)).astype(np.float32)
    low, high = i0 < 0, i0 >= src - 1
    alpha[low | high] = 0.0
    i0 = np.clip(i0, 0, src - 1)
    return i0, np.minimum(i0 + 1, src - 1), alpha


def axis_table(dst: int, src: int, step: int, quantize: bool) -> np.ndarray:
    """dst × int4: byte offsets of both taps (index × step) and their weights (11-bit fixed point as cv2 rounds
    them, or the float32 bits of the second tap's weight in .w)."""
    i0, i1, alpha = resize_taps(dst, src)
    table = np.empty((dst, 4), np.int32)
    table[:, 0], table[:, 1] = i0 * step, i1 * step
    if quantize:
        table[:, 2] = np.rint((np.float32(1.0) - alpha) * np.float32(2048))
        table[:, 3] = np.rint(alpha * np.float32(2048))
    else:
        table[:, 2] = 0
        table[:, 3] = alpha.view(np.int32)
    return table


class ImageKernel:
    """The `image_to_nchw` launch for one transform and frame geometry. Pixel size, channel swap and quantize are
    build options (one small program per combination, compiled once); tap tables are made here once per
    geometry and owned by the wrapper (`release` frees them)."""

    variant = "image_to_nchw"
    cl_file = "image.cl"

    def __init__(self, transform: ImageToTensor) -> None:
        self.transform = transform
        self.buffers: list[Any] = []

    def source(self) -> str:
        return read_source(self.cl_file)

    def build_options(self) -> str:
        t = self.transform
        return f"-D BPP={t.channels} -D SWAP={int(t.pick()[0] == 2)} -D QUANTIZE={int(t.quantize)}"

    def tables(self, feed: ImageFeed) -> tuple[np.ndarray, np.ndarray]:
        """(new_w × int4 column table, new_h × int4 row table) for this frame's size and row stride."""
        t = self.transform
        _, _, new_w, new_h = t.box
        return (axis_table(new_w, feed.width, t.channels, t.quantize),
                axis_table(new_h, feed.height, feed.row_stride, t.quantize))

    def launches(self, program: Any, feed: ImageFeed, src: Any, dst: Any, input_shape: tuple[int, ...],
                 index: int = 0) -> list[Launch]:
        """The launch writing `feed` into image `index` of `dst` (N×3×H×W `input_shape`)."""
        import pyopencl as cl
        import pyopencl.cltypes as clt

        t = feed.transform
        if not 0 <= index < int(input_shape[0]):
            raise ModelError(f"input '{t.input}' of shape {list(input_shape)} has no image {index}")
        net_h, net_w = int(input_shape[2]), int(input_shape[3])
        dx, dy, new_w, new_h = (int(b) for b in t.box)
        flags = cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR
        xt, yt = (cl.Buffer(program.context, flags, hostbuf=a) for a in self.tables(feed))
        self.buffers = [xt, yt]  # the kernel does not keep them alive
        k = new_kernel(program, self.variant)
        offset = index * 3 * net_h * net_w  # elements: image `index`'s slice of the batch
        k.set_args(src, xt, yt, dst, np.int32(offset), np.int32(net_w), np.int32(net_h),
                   clt.make_int4(dx, dy, new_w, new_h),
                   np.float32(t.scale), clt.make_float4(*t.mean, 0.0), np.float32(t.pad))
        return [Launch(k, (net_w, net_h), None)]

    def release(self) -> None:
        for buf in self.buffers:
            buf.release()
        self.buffers = []


def is_image(value: object) -> bool:
    """An image input's value: one ImageFeed, or a tuple of them (one per frame of a batch)."""
    return isinstance(value, ImageFeed) or (isinstance(value, tuple) and bool(value)
                                            and all(isinstance(v, ImageFeed) for v in value))


def split_feeds(feeds: Mapping[str, object]) -> tuple[dict[str, np.ndarray], dict[str, ImageFeeds]]:
    """Float inputs and image inputs of one run; an image input's frames always as a tuple, in batch order."""
    images = {n: (v,) if isinstance(v, ImageFeed) else v for n, v in feeds.items() if is_image(v)}
    arrays = {n: v for n, v in feeds.items() if not is_image(v)}
    return arrays, images  # type: ignore[return-value]
