"""sensor_msgs/Image and CompressedImage <-> numpy frames, without cv_bridge.

The detector takes HxWx3 uint8 BGR. Every supported encoding converts to that, honouring `step` (row padding)
and `is_bigendian` (16-bit data). Messages are read by attribute only, so rclpy messages, rosbags messages and
plain test objects all work. Any field that does not add up raises :class:`ImageError` naming the topic and the
field, so a node can count the frame and go on.

Supported raw encodings: bgr8, rgb8, bgra8, rgba8, mono8, mono16 (scaled to 8 bit by dropping the low byte),
bayer_rggb8, bayer_bggr8, bayer_gbrg8, bayer_grbg8 (demosaiced by OpenCV), yuv422 / uyvy (UYVY byte order, as
ROS's "yuv422" is) and yuv422_yuy2 / yuyv (YUY2 byte order). Compressed: JPEG and PNG, their header size
checked against MAX_PIXELS before decoding.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ocl_infer.errors import ImageError


@dataclass(frozen=True)
class EncodingInfo:
    """How one ROS encoding lays out a pixel, and how OpenCV turns it into BGR."""

    channels: int  # values per pixel in the message (yuv422: 2 bytes per pixel)
    dtype: type[np.generic]
    to_bgr: int | None  # cv2.cvtColor code; None: already BGR (or handled specially)
    from_bgr: int | None  # cv2.cvtColor code used to build messages of this encoding


ENCODINGS: dict[str, EncodingInfo] = {
    "bgr8": EncodingInfo(3, np.uint8, None, None),
    "rgb8": EncodingInfo(3, np.uint8, cv2.COLOR_RGB2BGR, cv2.COLOR_BGR2RGB),
    "bgra8": EncodingInfo(4, np.uint8, cv2.COLOR_BGRA2BGR, cv2.COLOR_BGR2BGRA),
    "rgba8": EncodingInfo(4, np.uint8, cv2.COLOR_RGBA2BGR, cv2.COLOR_BGR2RGBA),
    "mono8": EncodingInfo(1, np.uint8, cv2.COLOR_GRAY2BGR, cv2.COLOR_BGR2GRAY),
    "mono16": EncodingInfo(1, np.uint16, cv2.COLOR_GRAY2BGR, cv2.COLOR_BGR2GRAY),
    # ROS names the colour of the top-left 2x2 block; OpenCV 5's explicit names say the same.
    "bayer_rggb8": EncodingInfo(1, np.uint8, cv2.COLOR_BayerRGGB2BGR, None),
    "bayer_bggr8": EncodingInfo(1, np.uint8, cv2.COLOR_BayerBGGR2BGR, None),
    "bayer_gbrg8": EncodingInfo(1, np.uint8, cv2.COLOR_BayerGBRG2BGR, None),
    "bayer_grbg8": EncodingInfo(1, np.uint8, cv2.COLOR_BayerGRBG2BGR, None),
    "yuv422": EncodingInfo(2, np.uint8, cv2.COLOR_YUV2BGR_UYVY, cv2.COLOR_BGR2YUV_UYVY),
    "uyvy": EncodingInfo(2, np.uint8, cv2.COLOR_YUV2BGR_UYVY, cv2.COLOR_BGR2YUV_UYVY),
    "yuv422_yuy2": EncodingInfo(2, np.uint8, cv2.COLOR_YUV2BGR_YUY2, cv2.COLOR_BGR2YUV_YUY2),
    "yuyv": EncodingInfo(2, np.uint8, cv2.COLOR_YUV2BGR_YUY2, cv2.COLOR_BGR2YUV_YUY2),
}
BAYER_PATTERNS = {"bayer_rggb8": "RGGB", "bayer_bggr8": "BGGR", "bayer_gbrg8": "GBRG", "bayer_grbg8": "GRBG"}
MAX_PIXELS = 1 << 28  # refuses absurd sizes before allocating (16k x 16k)


def _as_bytes(data: Any) -> np.ndarray:
    """The message's data field as a flat uint8 array, without copying where possible."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data), dtype=np.uint8)  # array.array('B'), bytes, bytearray


def image_to_bgr(msg: Any, topic: str = "image") -> np.ndarray:
    """HxWx3 uint8 BGR frame (a new array) from a sensor_msgs/Image of any supported encoding.

    Raises ImageError when the encoding is unknown or height/width/step/data do not add up.
    """
    encoding = str(msg.encoding).strip().lower()
    info = ENCODINGS.get(encoding)
    if info is None:
        raise ImageError(
            f"{topic}: unsupported image encoding {msg.encoding!r} (supported: {', '.join(ENCODINGS)})"
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError(f"{topic}: empty image: height {height}, width {width}")
    if height * width > MAX_PIXELS:
        raise ImageError(f"{topic}: image too large: {width}x{height}")
    itemsize = np.dtype(info.dtype).itemsize
    row_bytes = width * info.channels * itemsize
    if step < row_bytes:
        raise ImageError(f"{topic}: step {step} is smaller than one row of {width} {encoding} pixels ({row_bytes})")
    if step % itemsize:
        raise ImageError(f"{topic}: step {step} is not a multiple of the {itemsize}-byte {encoding} sample")
    if info.channels == 2 and width % 2:
        raise ImageError(f"{topic}: {encoding} needs an even width, got {width}")
    if encoding in BAYER_PATTERNS and (width < 2 or height < 2):
        raise ImageError(f"{topic}: {encoding} needs at least 2x2 pixels, got {width}x{height}")
    data = _as_bytes(msg.data)
    if data.size != step * height:
        raise ImageError(
            f"{topic}: data size {data.size} does not match step {step} x height {height} = {step * height}"
        )
    rows = data.reshape(height, step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(info.dtype).reshape(height, width, info.channels)
    if itemsize > 1 and bool(msg.is_bigendian) != (sys.byteorder == "big"):
        pixels = pixels.byteswap()
    if info.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)  # keep the high byte: a plain, monotonic 16 -> 8 bit scale
    if info.to_bgr is None:
        return np.array(pixels, copy=True)
    if info.channels == 1:
        pixels = pixels[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(pixels), info.to_bgr)


def compressed_to_bgr(msg: Any, topic: str = "image/compressed") -> np.ndarray:
    """HxWx3 uint8 BGR frame from a sensor_msgs/CompressedImage (jpeg, png, ...)."""
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise ImageError(f"{topic}: compressedDepth images are not camera frames (format {fmt!r})")
    data = _as_bytes(msg.data)
    if data.size == 0:
        raise ImageError(f"{topic}: empty compressed image (format {fmt!r})")
    size = compressed_size(data)
    if size is None:
        raise ImageError(f"{topic}: cannot decode compressed image: neither JPEG nor PNG "
                         f"(format {fmt!r}, {data.size} bytes)")
    if size[0] * size[1] > MAX_PIXELS or 0 in size:
        raise ImageError(f"{topic}: compressed image header says {size[0]}x{size[1]} pixels (format {fmt!r})")
    frame = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if frame is None or frame.size == 0:
        raise ImageError(f"{topic}: cannot decode compressed image (format {fmt!r}, {data.size} bytes)")
    return frame


def compressed_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, read before decoding: a few hundred KB of PNG can claim
    20000x20000 pixels and make OpenCV allocate gigabytes. None when the data is neither (or has no size)."""
    head = data[: 1 << 20].tobytes()
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24 and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if not head.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 9 <= len(head):  # walk the marker segments up to the frame header (SOFn)
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(head[i + 7:i + 9], "big"), int.from_bytes(head[i + 5:i + 7], "big")
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        i += 2 + int.from_bytes(head[i + 2:i + 4], "big")
    return None


def bayer_mosaic(frame_bgr: np.ndarray, pattern: str) -> np.ndarray:
    """HxW uint8 Bayer mosaic of a BGR frame; `pattern` names the top-left 2x2 block (e.g. "RGGB")."""
    channel = {"B": 0, "G": 1, "R": 2}
    mosaic = np.empty(frame_bgr.shape[:2], dtype=np.uint8)
    for dy in (0, 1):
        for dx in (0, 1):
            c = channel[pattern[2 * dy + dx]]
            mosaic[dy::2, dx::2] = frame_bgr[dy::2, dx::2, c]
    return mosaic


def bgr_to_pixels(frame_bgr: np.ndarray, encoding: str) -> np.ndarray:
    """HxWxC array in `encoding`'s pixel layout (the inverse of image_to_bgr, lossy for mono/bayer/yuv)."""
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
        raise ImageError(f"expected an HxWx3 uint8 BGR frame, got shape {frame_bgr.shape} dtype {frame_bgr.dtype}")
    info = ENCODINGS.get(encoding)
    if info is None:
        raise ImageError(f"cannot encode {encoding!r} (supported: {', '.join(ENCODINGS)})")
    if encoding in BAYER_PATTERNS:
        return bayer_mosaic(frame_bgr, BAYER_PATTERNS[encoding])[:, :, None]
    if info.from_bgr is None:
        return np.ascontiguousarray(frame_bgr)
    pixels = cv2.cvtColor(np.ascontiguousarray(frame_bgr), info.from_bgr)
    if encoding == "mono16":
        pixels = pixels.astype(np.uint16) * 257  # 0..255 -> 0..65535
    return pixels.reshape(frame_bgr.shape[0], frame_bgr.shape[1], info.channels)


def bgr_to_image(
    frame_bgr: np.ndarray,
    encoding: str = "bgr8",
    header: Any = None,
    padding: int = 0,
    is_bigendian: bool = False,
) -> Any:
    """sensor_msgs/Image in `encoding` from an HxWx3 uint8 BGR frame; `padding` extra bytes end each row."""
    from sensor_msgs.msg import Image  # lazily: the conversions above need no ROS

    pixels = bgr_to_pixels(frame_bgr, encoding)
    if pixels.dtype == np.uint16:
        pixels = pixels.astype(">u2" if is_bigendian else "<u2")
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1).view(np.uint8)
    if padding:
        rows = np.concatenate([rows, np.zeros((height, padding), dtype=np.uint8)], axis=1)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.is_bigendian = int(is_bigendian)
    msg.step = rows.shape[1]
    msg.data = rows.tobytes()
    return msg


def bgr_to_compressed(frame_bgr: np.ndarray, fmt: str = "jpeg", header: Any = None, quality: int = 90) -> Any:
    """sensor_msgs/CompressedImage (jpeg or png) from an HxWx3 uint8 BGR frame."""
    from sensor_msgs.msg import CompressedImage

    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ImageError(f"cannot compress to {fmt!r} (jpeg or png)")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, frame_bgr, params)
    if not ok:
        raise ImageError(f"{fmt} encoding failed for a frame of shape {frame_bgr.shape}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = "jpeg" if ext == ".jpg" else "png"
    msg.data = buf.tobytes()
    return msg
