"""Compressed frames whose headers claim huge sizes are refused before OpenCV allocates for them.

Found by the frame fuzz: a 0.4 MB PNG of 20000x20000 zeros made compressed_to_bgr allocate 2.4 GB and decode
for seconds, while raw images above MAX_PIXELS were already refused. Now both paths share the limit.
"""

from __future__ import annotations

import resource
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from frame_cases import _jpeg_with_size, _png_header_only

from ocl_infer.errors import ImageError
from ocl_infer.ros.image_conversion import MAX_PIXELS, compressed_size, compressed_to_bgr


def _msg(data: bytes, fmt: str) -> SimpleNamespace:
    return SimpleNamespace(format=fmt, data=data)


def test_a_real_png_bomb_is_refused_without_decoding():
    side = int(MAX_PIXELS**0.5) + 64
    ok, buf = cv2.imencode(".png", np.zeros((side, side), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok and buf.size < 2**20  # well under a megabyte on the wire
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageError, match=f"header says {side}x{side} pixels"):
        compressed_to_bgr(_msg(buf.tobytes(), "png"), "/cam/image/compressed")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < side * side * 3 // 1024 // 4  # nothing like the decoded frame was allocated


@pytest.mark.parametrize("make", [
    lambda: _png_header_only(60000, 60000),
    lambda: _jpeg_with_size(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes(), 65535, 65535),
], ids=["png", "jpeg"])
def test_headers_claiming_huge_sizes_are_refused(make):
    with pytest.raises(ImageError, match="header says"):
        compressed_to_bgr(_msg(make(), "jpeg"), "/cam/image/compressed")


def test_sizes_read_from_headers_match_what_opencv_decodes(data_dir):
    for path in sorted(data_dir.glob("*.jpg")):
        raw = np.frombuffer(path.read_bytes(), np.uint8)
        img = cv2.imdecode(raw, cv2.IMREAD_COLOR)
        assert compressed_size(raw) == (img.shape[1], img.shape[0]), path
        png = cv2.imencode(".png", img)[1]
        assert compressed_size(png) == (img.shape[1], img.shape[0]), path
        assert compressed_to_bgr(_msg(raw.tobytes(), "jpeg")).shape == img.shape


def test_formats_cameras_never_send_are_refused():
    bmp = cv2.imencode(".bmp", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    with pytest.raises(ImageError, match="neither JPEG nor PNG"):
        compressed_to_bgr(_msg(bmp, "bmp"), "/cam/image/compressed")
