"""Image / CompressedImage <-> BGR for every encoding, checked against references built independently of the
conversion code (numpy packing, OpenCV's own colour conversions, the known source frame)."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from ocl_infer.errors import ImageError
from ocl_infer.ros.image_conversion import (
    BAYER_PATTERNS,
    ENCODINGS,
    bgr_to_compressed,
    bgr_to_image,
    compressed_to_bgr,
    image_to_bgr,
)


@pytest.fixture(scope="module")
def frame(data_dir) -> np.ndarray:
    """A real frame (even size, for yuv422 and Bayer), 120x160."""
    img = cv2.imread(str(data_dir / "dog.jpg"))
    return np.ascontiguousarray(cv2.resize(img, (160, 120), interpolation=cv2.INTER_AREA))


def raw_msg(pixels: np.ndarray, encoding: str, padding: int = 0, bigendian: bool = False) -> SimpleNamespace:
    """A message-shaped object built by hand (not by the code under test)."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    if rows.dtype == np.uint16:
        rows = rows.astype(">u2" if bigendian else "<u2").view(np.uint8)
    rows = np.concatenate([rows, np.full((h, padding), 0xAB, np.uint8)], axis=1) if padding else rows
    return SimpleNamespace(height=h, width=w, encoding=encoding, step=rows.shape[1], is_bigendian=int(bigendian),
                           data=rows.tobytes())


@pytest.mark.parametrize("padding", [0, 7])
@pytest.mark.parametrize(
    ("encoding", "make", "back"),
    [
        ("bgr8", lambda f: f, None),
        ("rgb8", lambda f: f[:, :, ::-1], None),
        ("bgra8", lambda f: np.dstack([f, np.full(f.shape[:2], 9, np.uint8)]), None),
        ("rgba8", lambda f: np.dstack([f[:, :, ::-1], np.full(f.shape[:2], 9, np.uint8)]), None),
    ],
)
def test_colour_encodings_are_exact(frame, encoding, make, back, padding):
    pixels = np.ascontiguousarray(make(frame))
    out = image_to_bgr(raw_msg(pixels, encoding, padding))
    assert out.shape == frame.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, frame)


@pytest.mark.parametrize("padding", [0, 5])
def test_mono8_matches_cv2_gray(frame, padding):
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    out = image_to_bgr(raw_msg(gray, "mono8", padding))
    np.testing.assert_array_equal(out, np.dstack([gray, gray, gray]))


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("padding", [0, 6])
def test_mono16_keeps_high_byte_both_endians(frame, bigendian, padding):
    rng = np.random.default_rng(1)
    mono = rng.integers(0, 65536, size=frame.shape[:2], dtype=np.uint16)
    out = image_to_bgr(raw_msg(mono, "mono16", padding, bigendian))
    expected = (mono // 256).astype(np.uint8)
    np.testing.assert_array_equal(out, np.dstack([expected] * 3))


def test_mono16_odd_step_is_refused(frame):
    msg = raw_msg(frame[:, :, 0].astype(np.uint16), "mono16", padding=1)
    with pytest.raises(ImageError, match="multiple of the 2-byte"):
        image_to_bgr(msg)


@pytest.mark.parametrize("encoding", sorted(BAYER_PATTERNS))
@pytest.mark.parametrize("padding", [0, 3])
def test_bayer_demosaic_recovers_the_frame(frame, encoding, padding):
    # Mosaic built by hand from the pattern name; demosaicing a smooth frame must give it back closely,
    # and any other pattern must not (so a swapped OpenCV code fails).
    smooth = cv2.GaussianBlur(frame, (7, 7), 2)
    channel = {"B": 0, "G": 1, "R": 2}

    def mosaic(pattern: str) -> np.ndarray:
        m = np.empty(smooth.shape[:2], np.uint8)
        for dy in (0, 1):
            for dx in (0, 1):
                m[dy::2, dx::2] = smooth[dy::2, dx::2, channel[pattern[2 * dy + dx]]]
        return m

    out = image_to_bgr(raw_msg(mosaic(BAYER_PATTERNS[encoding]), encoding, padding))
    err = np.abs(out.astype(int) - smooth)[2:-2, 2:-2].mean()
    assert err < 3.0, err
    for other in set(BAYER_PATTERNS.values()) - {BAYER_PATTERNS[encoding]}:
        wrong = image_to_bgr(raw_msg(mosaic(other), encoding, padding))
        assert np.abs(wrong.astype(int) - smooth)[2:-2, 2:-2].mean() > 3 * err


def pack_yuv422(frame: np.ndarray, order: str) -> np.ndarray:
    """HxWx2 packed 4:2:2, BT.601 studio range (as cameras and cv_bridge use), float64 maths independent of
    OpenCV: 'UYVY' or 'YUYV'."""
    bgr = frame.astype(np.float64) / 255.0
    b, g, r = bgr[..., 0], bgr[..., 1], bgr[..., 2]
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    u2 = (u[:, 0::2] + u[:, 1::2]) / 2
    v2 = (v[:, 0::2] + v[:, 1::2]) / 2
    h, w = y.shape
    out = np.empty((h, w // 2, 4))
    if order == "UYVY":
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = u2, y[:, 0::2], v2, y[:, 1::2]
    else:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = y[:, 0::2], u2, y[:, 1::2], v2
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(h, w, 2)


@pytest.mark.parametrize(("encoding", "order"),
                         [("yuv422", "UYVY"), ("uyvy", "UYVY"), ("yuv422_yuy2", "YUYV"), ("yuyv", "YUYV")])
@pytest.mark.parametrize("padding", [0, 4])
def test_yuv422_matches_bt601(frame, encoding, order, padding):
    smooth = cv2.GaussianBlur(frame, (5, 5), 1.5)
    out = image_to_bgr(raw_msg(pack_yuv422(smooth, order), encoding, padding))
    diff = np.abs(out.astype(int) - smooth)
    assert diff.mean() < 4.0 and np.percentile(diff, 99) < 30, (diff.mean(), np.percentile(diff, 99))
    # The other byte order must come out visibly wrong.
    other = "YUYV" if order == "UYVY" else "UYVY"
    wrong = image_to_bgr(raw_msg(pack_yuv422(smooth, other), encoding, padding))
    assert np.abs(wrong.astype(int) - smooth).mean() > 20


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_through_rclpy_message(frame, encoding):
    msg = bgr_to_image(frame, encoding, padding=4)
    assert msg.step >= msg.width and len(msg.data) == msg.step * msg.height
    out = image_to_bgr(msg)
    assert out.shape == frame.shape
    lossy = {"mono8": 0, "mono16": 0}.get(encoding)
    if encoding in {"bgr8", "rgb8", "bgra8", "rgba8"}:
        np.testing.assert_array_equal(out, frame)
    elif lossy is not None:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        np.testing.assert_array_equal(out[:, :, 0], gray)
    else:  # bayer / yuv: subsampled colour
        assert np.abs(out.astype(int) - frame).mean() < 12


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_matches_cv2_decode(frame, fmt):
    msg = bgr_to_compressed(frame, fmt)
    out = compressed_to_bgr(msg)
    reference = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(out, reference)
    if fmt == "png":
        np.testing.assert_array_equal(out, frame)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"encoding": "32FC1"}, "unsupported image encoding '32FC1'"),
        ({"height": 0}, "empty image"),
        ({"width": 0, "step": 0, "data": b""}, "empty image"),
        ({"step": 10}, "step 10 is smaller than one row"),
        ({"data": b"\x00" * 100}, "data size 100 does not match step 480 x height 120"),
        ({"height": 121}, "data size 57600 does not match step 480 x height 121"),
    ],
)
def test_malformed_images_raise_image_error_naming_the_field(frame, change, match):
    msg = raw_msg(frame, "bgr8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageError, match=match) as info:
        image_to_bgr(msg, "/cam/image")
    assert str(info.value).startswith("/cam/image: ")


def test_odd_width_yuv_is_refused():
    msg = SimpleNamespace(height=2, width=3, encoding="yuv422", step=6, is_bigendian=0, data=b"\x00" * 12)
    with pytest.raises(ImageError, match="even width"):
        image_to_bgr(msg)


@pytest.mark.parametrize("data", [b"", b"not an image at all"])
def test_bad_compressed_data_raises(data):
    with pytest.raises(ImageError, match="compressed image"):
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=data), "/cam/image/compressed")
