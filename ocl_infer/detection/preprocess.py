"""Frame → network input: letterbox (aspect kept, Darknet's placement), colour order, scale, NCHW float32."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ocl_infer.detection.description import InputSpec
from ocl_infer.errors import ImageError


@dataclass(frozen=True)
class Letterbox:
    """Where the frame landed in the network input: resized to new_w×new_h at offset (dx, dy)."""

    src_w: int
    src_h: int
    net_w: int
    net_h: int
    new_w: int
    new_h: int
    dx: int
    dy: int


def check_image(image: object, what: str = "image") -> np.ndarray:
    """An H×W×3 uint8 BGR frame, else ImageError saying what is wrong."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{what}: expected a numpy array (H×W×3 uint8 BGR), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"{what}: dtype {image.dtype} is not uint8 (expected an H×W×3 BGR frame)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"{what}: shape {image.shape} is not H×W×3")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"{what}: empty frame of shape {image.shape}")
    return image


def letterbox_geometry(src_w: int, src_h: int, net_w: int, net_h: int, keep_aspect: bool = True) -> Letterbox:
    """Darknet's letterbox_image arithmetic (integer sizes, offsets (net − new) // 2)."""
    if not keep_aspect:
        return Letterbox(src_w, src_h, net_w, net_h, net_w, net_h, 0, 0)
    if net_w / src_w < net_h / src_h:
        new_w, new_h = net_w, max(1, (src_h * net_w) // src_w)
    else:
        new_w, new_h = max(1, (src_w * net_h) // src_h), net_h
    return Letterbox(src_w, src_h, net_w, net_h, new_w, new_h, (net_w - new_w) // 2, (net_h - new_h) // 2)


def preprocess(image_bgr: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, Letterbox]:
    """Return the 1×3×H×W float32 input tensor and the letterbox geometry for mapping boxes back."""
    import cv2

    img = check_image(image_bgr)
    h, w = img.shape[:2]
    box = letterbox_geometry(w, h, spec.width, spec.height, spec.letterbox)
    resized = img if (box.new_w, box.new_h) == (w, h) else cv2.resize(
        img, (box.new_w, box.new_h), interpolation=cv2.INTER_LINEAR)
    if spec.color == "RGB":
        resized = resized[..., ::-1]
    out = np.full((1, 3, spec.height, spec.width), spec.pad_value, np.float32)
    chw = resized.transpose(2, 0, 1).astype(np.float32) * np.float32(spec.scale)
    if any(spec.mean):
        chw -= np.asarray(spec.mean, np.float32)[:, None, None]
    out[0, :, box.dy : box.dy + box.new_h, box.dx : box.dx + box.new_w] = chw
    return out, box


def boxes_to_image(boxes_net: np.ndarray, box: Letterbox) -> np.ndarray:
    """Map N×4 xyxy boxes from network-input pixels to source-image pixels, clipped to the image."""
    out = np.empty_like(boxes_net, dtype=np.float64)
    sx, sy = box.src_w / box.new_w, box.src_h / box.new_h
    out[:, 0::2] = (boxes_net[:, 0::2] - box.dx) * sx
    out[:, 1::2] = (boxes_net[:, 1::2] - box.dy) * sy
    np.clip(out[:, 0::2], 0.0, box.src_w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0.0, box.src_h, out=out[:, 1::2])
    return out
