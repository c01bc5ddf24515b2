"""Letterbox, YOLO decode, NMS and decoded-layout heads against float64 hand computations and loop references."""


import numpy as np
import pytest

from ocl_infer.detection.decode import decode_boxes_scores, decode_yolo_output
from ocl_infer.detection.description import BoxesScoresHead, InputSpec, YoloOutput
from ocl_infer.detection.nms import iou, iou_one_to_many, nms_per_class
from ocl_infer.detection.preprocess import boxes_to_image, letterbox_geometry, preprocess
from ocl_infer.errors import DetectionError, ImageError

from .reference import decode_like_darknet, nms_like_darknet

ANCHORS = ((10.0, 14.0), (23.0, 27.0), (37.0, 58.0))


@pytest.mark.parametrize(
    ("src", "net", "want"),
    [
        ((768, 576), (416, 416), (416, 312, 0, 52)),  # dog.jpg: 576·416/768 = 312
        ((640, 424), (416, 416), (416, 275, 0, 70)),  # 424·416/640 = 275.6 → 275, (416−275)//2 = 70
        ((300, 600), (416, 416), (208, 416, 104, 0)),  # portrait
        ((416, 416), (416, 416), (416, 416, 0, 0)),
        ((1000, 100), (320, 320), (320, 32, 0, 144)),
    ],
)
def test_letterbox_geometry_is_darknets_integer_arithmetic(src, net, want) -> None:
    g = letterbox_geometry(*src, *net)
    assert (g.new_w, g.new_h, g.dx, g.dy) == want


def test_preprocess_pads_with_half_and_swaps_to_rgb() -> None:
    img = np.zeros((50, 100, 3), np.uint8)
    img[..., 0] = 255  # pure blue in BGR
    img[..., 2] = 51  # red 0.2
    x, box = preprocess(img, InputSpec("image", (1, 3, 64, 64)))
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    assert (box.new_w, box.new_h, box.dx, box.dy) == (64, 32, 0, 16)
    assert np.all(x[0, :, :16] == 0.5) and np.all(x[0, :, 48:] == 0.5)  # pad rows top and bottom
    np.testing.assert_allclose(x[0, 0, 16:48], 0.2, atol=1e-6)  # R first
    np.testing.assert_allclose(x[0, 1, 16:48], 0.0)
    np.testing.assert_allclose(x[0, 2, 16:48], 1.0)


def test_preprocess_stretch_bgr_and_mean() -> None:
    img = np.full((10, 30, 3), (10, 20, 30), np.uint8)
    spec = InputSpec("in", (1, 3, 8, 8), color="BGR", scale=1.0, mean=(1.0, 2.0, 3.0), letterbox=False)
    x, box = preprocess(img, spec)
    assert (box.new_w, box.new_h, box.dx, box.dy) == (8, 8, 0, 0)
    np.testing.assert_allclose(x[0, :, 3, 3], [9.0, 18.0, 27.0])


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
     np.zeros((0, 4, 3), np.uint8), [[1, 2, 3]]],
)
def test_bad_frames_raise_image_error(bad) -> None:
    with pytest.raises(ImageError):
        preprocess(bad, InputSpec("image", (1, 3, 32, 32)))


def test_boxes_map_back_to_image_pixels_and_clip() -> None:
    box = letterbox_geometry(768, 576, 416, 416)  # scale 768/416, dy = 52
    net = np.array([[0.0, 52.0, 416.0, 364.0], [-10.0, 40.0, 208.0, 208.0]])
    got = boxes_to_image(net, box)
    s = 768 / 416
    np.testing.assert_allclose(got[0], [0, 0, 768, 576])
    np.testing.assert_allclose(got[1], [0, 0, 208 * s, (208 - 52) * s])


def test_yolo_decode_matches_darknet_loops() -> None:
    rng = np.random.default_rng(7)
    classes = 6
    raw = rng.normal(0, 1.5, (1, 3 * (5 + classes), 5, 7)).astype(np.float32)
    raw[0, 4::11] += 1.0  # more cells above threshold
    out = YoloOutput("o", ANCHORS, stride=16, classes=classes, scale_x_y=1.1)
    got = decode_yolo_output(raw, out, 112, 80, list(range(classes)), 0.3)
    ref = decode_like_darknet(raw[0], list(ANCHORS), classes, 112, 80, 0.3, 1.1)
    assert len(ref) > 10 and len(got.scores) == len(ref)
    key = np.lexsort((got.class_ids, got.scores))
    ref_sorted = sorted(ref, key=lambda r: (r[1], r[2]))
    for k, (b, s, c) in zip(key, ref_sorted, strict=True):
        assert got.class_ids[k] == c
        np.testing.assert_allclose(got.scores[k], s, rtol=1e-12)
        np.testing.assert_allclose(got.boxes[k], b, rtol=1e-12, atol=1e-9)


def test_yolo_decode_hand_computed_cell() -> None:
    raw = np.full((1, 3 * 7, 2, 2), -20.0, np.float32)
    # anchor 1, row 1, col 0: tx = ty = 0 → centre of the cell; tw = log 2; objectness 0.8·class1 0.5
    ch = 1 * 7
    raw[0, ch + 0, 1, 0] = 0
    raw[0, ch + 1, 1, 0] = 0
    raw[0, ch + 2, 1, 0] = np.log(2)
    raw[0, ch + 3, 1, 0] = 0
    raw[0, ch + 4, 1, 0] = np.log(0.8 / 0.2)
    raw[0, ch + 6, 1, 0] = 0
    got = decode_yolo_output(raw, YoloOutput("o", ANCHORS, 32, 2), 64, 64, [0, 1], 0.25)
    assert got.class_ids.tolist() == [1]
    np.testing.assert_allclose(got.scores, [0.4], rtol=1e-6)
    # centre (0.5/2·64, 1.5/2·64) = (16, 48); size (2·23, 27)
    np.testing.assert_allclose(got.boxes[0], [16 - 23, 48 - 13.5, 16 + 23, 48 + 13.5], rtol=1e-6)
    only0 = decode_yolo_output(raw, YoloOutput("o", ANCHORS, 32, 2), 64, 64, [0], 0.25)
    assert len(only0.scores) == 0


def test_yolo_decode_rejects_wrong_channel_count() -> None:
    with pytest.raises(DetectionError, match="3 anchors"):
        decode_yolo_output(np.zeros((1, 20, 2, 2), np.float32), YoloOutput("o", ANCHORS, 32, 2), 64, 64, [0], 0.2)


def test_iou_hand_values() -> None:
    a = np.array([0.0, 0.0, 2.0, 2.0])
    b = np.array([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 4.0, 4.0], [0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(iou_one_to_many(a, b), [1 / 7, 0.0, 1.0, 0.0])


def test_nms_per_class_matches_darknet_do_nms_sort() -> None:
    rng = np.random.default_rng(11)
    n = 300
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(10, 60, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.uniform(0.3, 1.0, n)
    cls = rng.integers(0, 3, n)
    keep = nms_per_class(boxes, scores, cls, 0.45)
    ref = nms_like_darknet([(tuple(b), s, int(c)) for b, s, c in zip(boxes, scores, cls, strict=True)], 0.45)
    assert sorted(keep.tolist()) == sorted(ref)
    assert np.all(np.diff(scores[keep]) <= 0)  # best first
    for c in range(3):
        kc = [k for k in keep if cls[k] == c]
        for i, a in enumerate(kc):
            for b in kc[i + 1 :]:
                assert iou(tuple(boxes[a]), tuple(boxes[b])) <= 0.45


def test_nms_keeps_overlapping_boxes_of_different_classes() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 0, 11, 10]], float)
    keep = nms_per_class(boxes, np.array([0.9, 0.8, 0.7]), np.array([2, 7, 2]), 0.45)
    assert keep.tolist() == [0, 1]
    assert nms_per_class(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), 0.5).size == 0


def test_boxes_scores_head_layouts() -> None:
    boxes = np.array([[10, 20, 50, 60], [0, 0, 5, 5]], float)
    scores = np.array([[0.1, 0.9, 0.3], [0.6, 0.2, 0.1]])
    head = BoxesScoresHead(boxes="b", scores="s")
    got = decode_boxes_scores({"b": boxes[None], "s": scores[None]}, head, 64, 64, [0, 1, 2], 0.25, 3)
    assert sorted(zip(got.class_ids.tolist(), got.scores.tolist(), strict=True)) == [(0, 0.6), (1, 0.9), (2, 0.3)]
    # combined, normalized cx cy w h with objectness, transposed (YOLOv8 style)
    comb = np.array([[0.5, 0.5, 0.25, 0.5, 0.5, 0.9, 0.1]]).T[None]
    head = BoxesScoresHead(combined="o", objectness=True, transposed=True, box_format="cxcywh", normalized=True)
    got = decode_boxes_scores({"o": comb}, head, 100, 200, [0, 1], 0.25, 2)
    assert got.class_ids.tolist() == [0]
    np.testing.assert_allclose(got.scores, [0.45])
    np.testing.assert_allclose(got.boxes[0], [37.5, 50, 62.5, 150])
    with pytest.raises(DetectionError, match="columns"):
        decode_boxes_scores({"o": comb}, head, 100, 200, [0], 0.25, 3)
    with pytest.raises(DetectionError, match="missing"):
        decode_boxes_scores({}, head, 100, 200, [0], 0.25, 2)


