"""Image family: a raw uint8 frame -> the network's float32 NCHW input on the device, in one pass.

`ImageToTensor` describes the transform (a frozen config); `ImageFeed` pairs it with one frame and is what the
dispatcher carries in place of a float32 array, so failover re-runs the frame from its uint8 pixels; the
runtime uploads them (3x fewer bytes than float32) and enqueues `ImageKernel` before the plan on the same queue.
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
    """uint8 H×W×C frame (`source` order) -> 1×3×H×W float32 input `input` (`target` order): bilinear resize
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
        if len(self.box) != 4 or any(int(b) != b for b in self.box):
            raise ConfigError(f"ImageToTensor.box={self.box!r} must be 4 integers (dx, dy, new_w, new_h)")
        if self.box[0] < 0 or self.box[1] < 0 or self.box[2] < 1 or self.box[3] < 1:
            raise ConfigError(f"ImageToTensor.box={self.box!r}: offsets must be >= 0 and sizes >= 1")
        if len(self.mean) != 3:
            raise ConfigError(f"ImageToTensor.mean={self.mean!r} must have 3 values (one per target channel)")
        if not all(np.isfinite([self.scale, self.pad, *self.mean])):
            raise ConfigError(f"ImageToTensor scale/mean/pad must be finite, got {self.scale}, {self.mean}, "
                              f"{self.pad}")

    @property
    def channels(self) -> int:
        return len(self.source)

    def pick(self) -> tuple[int, int, int]:
        """The byte inside a source pixel that gives each target channel."""
        return tuple(self.source.index(c) for c in self.target)  # type: ignore[return-value]


@dataclass(frozen=True)
class ImageFeed:
    """One frame for an image input: `pixels` is the byte span the device reads (rows `row_stride` apart)."""

    transform: ImageToTensor
    pixels: np.ndarray  # 1-D uint8, (height - 1) * row_stride + width * channels bytes
    width: int
    height: int
    row_stride: int


def image_feed(image: object, transform: ImageToTensor, input_shape: tuple[int, ...],
               what: str = "image") -> ImageFeed:
    """Check a H×W×C uint8 frame against `transform` and the input's 1×3×H×W shape. Row padding (a view whose
    row stride exceeds W×C) is kept, not copied; any other layout is made contiguous first."""
    t = transform
    if len(input_shape) != 4 or input_shape[0] != 1 or input_shape[1] != 3:
        raise ModelError(f"input '{t.input}' has shape {list(input_shape)}; image input needs 1×3×H×W")
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


class ImageKernel:
    """The `image_to_nchw` launch for one frame geometry, bound to a source and a destination buffer."""

    variant = "image_to_nchw"
    cl_file = "image.cl"

    def source(self) -> str:
        return read_source(self.cl_file)

    def build_options(self) -> str:
        return ""

    def launches(self, program: Any, feed: ImageFeed, src: Any, dst: Any,
                 input_shape: tuple[int, ...]) -> list[Launch]:
        import pyopencl.cltypes as clt

        t = feed.transform
        net_h, net_w = int(input_shape[2]), int(input_shape[3])
        dx, dy, new_w, new_h = (int(b) for b in t.box)
        k = new_kernel(program, self.variant)
        k.set_args(src, np.int32(feed.row_stride), np.int32(feed.width), np.int32(feed.height),
                   clt.make_int4(*t.pick(), t.channels), dst, np.int32(net_w), np.int32(net_h),
                   clt.make_int4(dx, dy, new_w, new_h),
                   clt.make_float2(feed.width / new_w, feed.height / new_h),
                   np.float32(t.scale), clt.make_float4(*t.mean, 0.0), np.float32(t.pad), np.int32(t.quantize))
        return [Launch(k, (net_w, net_h), None)]


def split_feeds(feeds: Mapping[str, object]) -> tuple[dict[str, np.ndarray], dict[str, ImageFeed]]:
    """Float inputs and image inputs of one frame."""
    images = {n: v for n, v in feeds.items() if isinstance(v, ImageFeed)}
    arrays = {n: v for n, v in feeds.items() if not isinstance(v, ImageFeed)}
    return arrays, images  # type: ignore[return-value]
