"""sensor_msgs Image / CompressedImage (rosbags message objects) ↔ HxWx3 uint8 BGR numpy frames.

Rows are read through `step`, so padded images decode right (rosbags-image ignores `step`).
"""

import cv2
import numpy as np

from ocl_infer.bag.typestore import COMPRESSED_IMAGE, IMAGE
from ocl_infer.errors import ImageError

# encoding → (channels, conversion to BGR or None)
_RAW_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "bgr8": (3, None),
    "rgb8": (3, cv2.COLOR_RGB2BGR),
    "mono8": (1, cv2.COLOR_GRAY2BGR),
    "bgra8": (4, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, cv2.COLOR_RGBA2BGR),
}


def stamp_ns(header: object) -> int:
    """A std_msgs/Header's stamp in nanoseconds."""
    stamp = header.stamp  # type: ignore[attr-defined]
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make_header(store: object, stamp: int, frame_id: str) -> object:
    """A std_msgs/Header for `stamp` nanoseconds (rosbags type from `store`)."""
    types = store.types  # type: ignore[attr-defined]
    time = types["builtin_interfaces/msg/Time"](sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
    return types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def image_message(store: object, frame: np.ndarray, stamp: int, frame_id: str) -> object:
    """sensor_msgs/Image, bgr8, from an HxWx3 uint8 BGR frame."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ImageError(f"expected an HxWx3 uint8 BGR frame, got shape {frame.shape} dtype {frame.dtype}")
    h, w = frame.shape[:2]
    data = np.ascontiguousarray(frame).reshape(-1)
    return store.types[IMAGE](  # type: ignore[attr-defined]
        header=make_header(store, stamp, frame_id),
        height=h,
        width=w,
        encoding="bgr8",
        is_bigendian=0,
        step=w * 3,
        data=data,
    )


def compressed_message(store: object, frame: np.ndarray, stamp: int, frame_id: str, quality: int = 90) -> object:
    """sensor_msgs/CompressedImage, format "jpeg", from an HxWx3 uint8 BGR frame."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError(f"JPEG encoding failed for a frame of shape {frame.shape}")
    return store.types[COMPRESSED_IMAGE](  # type: ignore[attr-defined]
        header=make_header(store, stamp, frame_id),
        format="jpeg",
        data=np.asarray(buf, dtype=np.uint8).reshape(-1),
    )


def decode_raw_image(msg: object, topic: str = "?") -> np.ndarray:
    """BGR frame from a sensor_msgs/Image (bgr8, rgb8, mono8, bgra8, rgba8; any `step` ≥ row bytes)."""
    enc = str(msg.encoding).lower()  # type: ignore[attr-defined]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)  # type: ignore[attr-defined]
    if enc not in _RAW_ENCODINGS:
        raise ImageError(f"{topic}: unsupported image encoding {enc!r} (have {', '.join(_RAW_ENCODINGS)})")
    channels, conversion = _RAW_ENCODINGS[enc]
    data = np.asarray(msg.data, dtype=np.uint8)  # type: ignore[attr-defined]
    if h <= 0 or w <= 0 or step < w * channels or data.size < step * h:
        raise ImageError(
            f"{topic}: image field mismatch: {w}x{h} {enc} step {step} with {data.size} data bytes"
        )
    rows = data[: step * h].reshape(h, step)[:, : w * channels]
    frame = rows.reshape(h, w, channels)
    if conversion is None:
        return np.ascontiguousarray(frame)
    return cv2.cvtColor(frame, conversion)


def decode_compressed_image(msg: object, topic: str = "?") -> np.ndarray:
    """BGR frame from a sensor_msgs/CompressedImage (jpeg, png, ...: whatever OpenCV decodes)."""
    data = np.asarray(msg.data, dtype=np.uint8)  # type: ignore[attr-defined]
    frame = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if frame is None:
        fmt = msg.format  # type: ignore[attr-defined]
        raise ImageError(f"{topic}: cannot decode compressed image (format {fmt!r}, {data.size} bytes)")
    return frame


def decode_image(msg: object, msgtype: str, topic: str = "?") -> np.ndarray:
    """BGR frame from either camera message type."""
    if msgtype == IMAGE:
        return decode_raw_image(msg, topic)
    if msgtype == COMPRESSED_IMAGE:
        return decode_compressed_image(msg, topic)
    raise ImageError(f"{topic}: {msgtype} is not a camera image type")
