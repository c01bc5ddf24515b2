"""Seeded random camera frames, good and bad, as sensor_msgs Image / CompressedImage for the frame fuzz test.

Each generator returns (message, expect): "good" must be published, "bad" must be a decode error, "either"
may be both (a truncated JPEG still decodes to a partly grey frame; an odd but consistent layout is valid).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import cv2
import numpy as np

from ocl_infer.ros.image_conversion import ENCODINGS, bgr_to_compressed, bgr_to_image

ENCODING_NAMES = sorted(ENCODINGS)
BOGUS_ENCODINGS = ["", "32FC1", "rgb16", "16UC3", "bgr8 ", "BGR8x", "ýúv", "jpeg", "8UC3", "bayer_xyzw8"]


def _scene(rng: np.random.Generator, base: np.ndarray, h: int, w: int) -> np.ndarray:
    """A crop of a real photo resized to h x w (so good frames are real content, not noise)."""
    y = int(rng.integers(0, base.shape[0] // 2))
    x = int(rng.integers(0, base.shape[1] // 2))
    return cv2.resize(base[y:, x:], (w, h), interpolation=cv2.INTER_AREA)


def good_raw(rng: np.random.Generator, base: np.ndarray) -> tuple[Any, str]:
    enc = str(rng.choice(ENCODING_NAMES))
    h, w = int(rng.integers(2, 400)) & ~1, int(rng.integers(2, 500)) & ~1
    msg = bgr_to_image(_scene(rng, base, max(h, 2), max(w, 2)), enc, padding=int(rng.choice([0, 0, 4, 64])),
                       is_bigendian=bool(rng.integers(0, 2)) and enc == "mono16")
    return msg, "good"


def bad_raw(rng: np.random.Generator, base: np.ndarray) -> tuple[Any, str]:
    msg, _ = good_raw(rng, base)
    data = bytes(msg.data)
    pick = int(rng.integers(0, 11))
    expect = "bad"
    if pick == 0:
        msg.encoding = str(rng.choice(BOGUS_ENCODINGS))
    elif pick == 1:
        msg.data = data[: int(rng.integers(0, len(data)))]
    elif pick == 2:
        msg.data = data + bytes(int(rng.integers(1, 4096)))
    elif pick == 3:
        msg.step = int(rng.integers(0, max(1, msg.step)))  # shorter than a row (or data no longer adds up)
    elif pick == 4:
        msg.height, msg.width = int(rng.choice([0, msg.height])), int(rng.choice([0, msg.width]))
        if msg.height and msg.width:
            msg.width = 0
    elif pick == 5:
        msg.height, msg.width, msg.step = 100_000, 100_000, 300_000  # 10 G pixels in a few bytes
    elif pick == 6:
        msg.height = msg.height + int(rng.integers(1, 50))
    elif pick == 7:
        msg.encoding, msg.width, msg.step = "yuv422", 3, 6
        msg.height, msg.data = 2, bytes(12)  # odd width
    elif pick == 8:
        msg.encoding, msg.height, msg.width, msg.step, msg.data = "bayer_rggb8", 1, 8, 8, bytes(8)
    elif pick == 9:
        msg.encoding, msg.height, msg.width, msg.step, msg.data = "mono16", 4, 4, 9, bytes(36)  # odd step
    else:  # extreme but consistent shapes: valid frames the detector must still handle
        h, w = (1, int(rng.integers(1, 3000))) if rng.integers(0, 2) else (int(rng.integers(1, 3000)), 1)
        msg = bgr_to_image(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "bgr8")
        expect = "good"
    return msg, expect


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height over a tiny stream (a decompression bomb's first bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    out = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = b"IDAT" + zlib.compress(bytes(1000))
    return out + struct.pack(">I", 1000) + idat + struct.pack(">I", zlib.crc32(idat)) + b"\0\0\0\0IEND\xaeB`\x82"


def _jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its frame header (SOF0) rewritten to claim another size."""
    i = jpeg.find(b"\xff\xc0")
    return jpeg[:i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9:]


def good_compressed(rng: np.random.Generator, base: np.ndarray) -> tuple[Any, str]:
    h, w = int(rng.integers(8, 400)), int(rng.integers(8, 500))
    fmt = str(rng.choice(["jpeg", "png"]))
    return bgr_to_compressed(_scene(rng, base, h, w), fmt, quality=int(rng.integers(30, 95))), "good"


def bad_compressed(rng: np.random.Generator, base: np.ndarray) -> tuple[Any, str]:
    msg, _ = good_compressed(rng, base)
    data = bytes(msg.data)
    pick = int(rng.integers(0, 9))
    expect = "bad"
    if pick == 0:
        msg.data = data[: int(rng.integers(0, min(len(data), 200)))]  # cut inside the headers
    elif pick == 1:
        msg.data, expect = data[: int(rng.integers(len(data) // 2, len(data)))], "either"
    elif pick == 2:
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 20))):
            i = int(rng.integers(0, len(buf)))
            buf[i] ^= 1 << int(rng.integers(0, 8))
        msg.data, expect = bytes(buf), "either"
    elif pick == 3:
        msg.data = rng.bytes(int(rng.integers(1, 5000)))
    elif pick == 4:
        msg.data, msg.format = _png_header_only(int(rng.integers(20000, 60000)), int(rng.integers(20000, 60000))), "png"
    elif pick == 5:
        jpeg = bytes(bgr_to_compressed(_scene(rng, base, 64, 64), "jpeg").data)
        msg.data, msg.format = _jpeg_with_size(jpeg, 65000, 65000), "jpeg"
    elif pick == 6:
        msg.data = b""
    elif pick == 7:
        msg.format = "16UC1; compressedDepth png"
    else:
        msg.data = cv2.imencode(".bmp", _scene(rng, base, 16, 16))[1].tobytes()  # a format cameras never send
    return msg, expect
