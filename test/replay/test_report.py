"""Replay report maths on known frame outcomes: counts add up, percentiles match an independent computation."""

import math

import cv2
import numpy as np

from ocl_infer.bag.plot import (
    HEADER_H,
    PANEL_PLOT_H,
    TIME_LABELS_H,
    TITLE_H,
    camera_title,
    draw_latency_plot,
    write_latency_plot,
)
from ocl_infer.bag.report import RecordedOutputs, build_report, format_summary
from ocl_infer.bag.typestore import build_typestore

STORE = build_typestore()
T = STORE.types


def _time(ns: int) -> object:
    return T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def _timing(camera: str, stamp: int, outcome: int, latency: float = 0.0, device: str = "", count: int = 0,
            detail: str = ""):
    zero = _time(0)
    return T["ocl_infer_msgs/msg/FrameTiming"](
        header=T["std_msgs/msg/Header"](stamp=_time(stamp), frame_id="cam"), camera_topic=camera, sequence=1,
        device=device, outcome=outcome, detections_published=outcome in (0, 3), detail=detail, received=zero,
        started=zero, inferred=zero, published=zero, age_at_start_ms=1.0, preprocess_ms=0.0, inference_ms=0.0,
        postprocess_ms=0.0, processing_ms=latency, latency_ms=latency, deadline_ms=100.0, detection_count=count)


def _detections(stamp: int, classes: list[str]):
    dets = []
    for c in classes:
        hyp = T["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id=c, score=0.9),
            pose=T["geometry_msgs/msg/PoseWithCovariance"](
                pose=T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                                 orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0,
                                                                                              w=1.0)),
                covariance=np.zeros(36)))
        box = T["vision_msgs/msg/BoundingBox2D"](
            center=T["vision_msgs/msg/Pose2D"](position=T["vision_msgs/msg/Point2D"](x=10.0, y=10.0), theta=0.0),
            size_x=4.0, size_y=4.0)
        dets.append(T["vision_msgs/msg/Detection2D"](header=T["std_msgs/msg/Header"](stamp=_time(stamp), frame_id=""),
                                                     results=[hyp], bbox=box, id=""))
    return T["vision_msgs/msg/Detection2DArray"](header=T["std_msgs/msg/Header"](stamp=_time(stamp), frame_id=""),
                                                 detections=dets)


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks, written out (the reference for numpy's default)."""
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _scenario():
    cam = "/camera/image_raw"
    stamps = [10**18 + i * 100_000_000 for i in range(12)]
    sent = [(cam, s) for s in stamps]
    # on time ×6, miss ×2, stale ×1, overload ×1, decode error ×1, and one frame never answered (undelivered)
    outcomes = [0, 0, 3, 0, 1, 0, 2, 0, 3, 0, 4]
    latencies = [40.0, 55.0, 130.0, 61.0, 0.0, 47.0, 0.0, 52.0, 180.0, 66.0, 0.0]
    devices = ["cl:0 a", "cl:1 b"]
    timings, detections, processed = [], [], []
    for i, (stamp, outcome, lat) in enumerate(zip(stamps, outcomes, latencies, strict=False)):
        dev = devices[i % 2] if outcome in (0, 3) else ""
        timings.append((f"{cam.rsplit('/', 1)[0]}/timing", _timing(cam, stamp, outcome, lat, dev)))
        if outcome in (0, 3):
            processed.append(lat)
            detections.append(("/camera/detections", _detections(stamp, ["car", "truck"] if i % 3 else ["car"])))
    timings.reverse()  # arrival order must not matter
    return sent, RecordedOutputs(timings, detections, diagnostics=4), processed


def test_counts_add_up_and_every_frame_has_one_outcome():
    sent, outputs, _ = _scenario()
    report = build_report(sent, outputs, {"bag": "x"})
    f = report["frames"]
    assert f["sent"] == 12
    assert (f["published"], f["miss"], f["stale_drop"], f["overload_drop"], f["undelivered"], f["decode_error"]) == (
        6, 2, 1, 1, 1, 1)
    assert f["processed"] == 8 and f["dropped"] == 3 and f["errors"] == 1
    assert f["sent"] == f["processed"] + f["dropped"] + f["errors"]
    assert f["deadline_misses"] == 2
    assert [p["outcome"] for p in report["per_frame"]][-1] == "undelivered"
    assert report["deadline_ms"] == 100.0 and report["bag"] == "x" and report["diagnostics_messages"] == 4


def test_latency_percentiles_match_an_independent_computation():
    sent, outputs, processed = _scenario()
    lat = build_report(sent, outputs)["latency_ms"]
    for q in (50, 95, 99):
        assert math.isclose(lat[f"p{q}"], _percentile(processed, q), rel_tol=1e-12)
    assert lat["max"] == 180.0 and math.isclose(lat["mean"], sum(processed) / len(processed))


def test_detections_per_class_and_frames_per_device():
    sent, outputs, _ = _scenario()
    report = build_report(sent, outputs)
    det = report["detections"]
    # processed frames i = 0,1,2,3,5,7,8,9: "car" in each, "truck" where i % 3 != 0 (1,2,5,7,8)
    assert det["per_class"] == {"car": 8, "truck": 5}
    assert det["arrays"] == 8 and det["total"] == 13 and det["frames_with_detections"] == 8
    assert report["devices"] == {"cl:1 b": 5, "cl:0 a": 3}  # odd i on cl:1
    text = format_summary(report)
    assert "sent 12  processed 8  dropped 3 (stale 1, overload 1, undelivered 1)  errors 1" in text
    assert "car 8, truck 5" in text and "2 missed" in text


def test_a_timing_from_an_unexpected_topic_name_still_matches_by_stamp():
    sent = [("/cam/image_raw/compressed", 5)]
    outputs = RecordedOutputs([("/timing", _timing("/cam/image_raw", 5, 0, 10.0, "cl:0"))], [], 0)
    assert build_report(sent, outputs)["frames"]["published"] == 1


def test_nothing_processed_gives_empty_latency_not_a_crash():
    sent = [("/c", 1), ("/c", 2)]
    report = build_report(sent, RecordedOutputs([("/timing", _timing("/c", 1, 1))], [], 0))
    assert report["latency_ms"]["p50"] is None and report["frames"]["dropped"] == 2
    assert "p50 -" in format_summary(report)


def test_plot_shows_the_budget_line_and_misses(tmp_path):
    sent, outputs, _ = _scenario()
    report = build_report(sent, outputs)
    img = draw_latency_plot(report["per_frame"], report["deadline_ms"])
    red = (img[:, :, 2] > 180) & (img[:, :, 0] < 80) & (img[:, :, 1] < 80)
    green = (img[:, :, 1] > 130) & (img[:, :, 0] < 80) & (img[:, :, 2] < 100)
    assert red.sum() > 200 and green.sum() > 50  # budget line + 2 misses; 6 on-time dots
    path = write_latency_plot(report, tmp_path / "latency.png")
    assert cv2.imread(str(path)).shape == img.shape


def _red(img):
    return (img[:, :, 2] > 180) & (img[:, :, 0] < 80) & (img[:, :, 1] < 80)


def _green(img):
    return (img[:, :, 1] > 130) & (img[:, :, 0] < 80) & (img[:, :, 2] < 100)


def _axis_rows(img):
    """Rows that are a time axis: dark across most of the width."""
    return int(((img.max(axis=2) < 60).sum(axis=1) > 0.8 * img.shape[1]).sum())


def _two_cameras(b_misses: bool = True, batched: bool = False):
    """20 frames each of /a and /b, b stamped half a period later; b misses at frames 8-10 (3 frames)."""
    sent, timings = [], []
    for i in range(20):
        for k, cam in enumerate(("/a/image_raw", "/b/image_raw")):
            stamp = 10**18 + i * 50_000_000 + k * 25_000_000
            sent.append((cam, stamp))
            miss = b_misses and k == 1 and 8 <= i <= 10
            detail = "batch of 2" if batched and i % 2 else ""
            timings.append(("/timing", _timing(cam, stamp, 3 if miss else 0, 150.0 if miss else 50.0, "cl:0",
                                               detail=detail)))
    return build_report(sent, RecordedOutputs(timings, [], 0))


def _panels(img, n):
    """The plot area of each of `n` stacked camera panels."""
    h = TITLE_H + PANEL_PLOT_H + TIME_LABELS_H
    return [img[HEADER_H + k * h + TITLE_H:HEADER_H + k * h + TITLE_H + PANEL_PLOT_H] for k in range(n)]


def test_one_camera_keeps_one_panel_and_no_batch_legend():
    sent, outputs, _ = _scenario()
    img = draw_latency_plot(build_report(sent, outputs)["per_frame"], 100.0)
    assert img.shape == (440, 1000, 3) and _axis_rows(img) == 1
    # the header right of the outcome legend stays blank when every frame ran alone
    assert (img[:35, 600:] == 255).all()


def test_two_cameras_give_one_panel_each_and_only_camera_b_shows_misses():
    report = _two_cameras()
    assert report["per_frame"][0]["batch"] == 1
    img = draw_latency_plot(report["per_frame"], report["deadline_ms"])
    assert img.shape[1] == 1000 and img.shape[0] > 440 and _axis_rows(img) == 2
    a, b = _panels(img, 2)
    assert _green(a).sum() > _green(b).sum() > 0  # 20 on time in a, 17 in b
    # both panels draw the budget line; b's three misses add ~3 x 29 red dot pixels above it
    assert _red(b).sum() - _red(a).sum() > 60
    # the same run without b's misses, on the same ms scale (budget drawn at 200 in both): a's panel is
    # identical, b's differs only around frames 8-10 (the middle of the time axis)
    late, calm = (draw_latency_plot(_two_cameras(m)["per_frame"], 200.0) for m in (True, False))
    (late_a, late_b), (calm_a, calm_b) = _panels(late, 2), _panels(calm, 2)
    assert (late_a == calm_a).all()
    cols = np.flatnonzero((late_b != calm_b).any(axis=(0, 2)))
    assert cols.size and cols.min() > 350 and cols.max() < 600


def test_panel_titles_count_each_cameras_frames():
    frames = _two_cameras(batched=True)["per_frame"]
    b = [f for f in frames if f["camera"] == "/b/image_raw"]
    assert camera_title("/b/image_raw", b) == "/b/image_raw: 17 on time, 3 missed, 0 dropped, batches 1: 10, 2: 10"


def test_batch_sizes_change_the_markers():
    report = _two_cameras(batched=True)
    assert [f["batch"] for f in report["per_frame"][:4]] == [1, 1, 2, 2]  # FrameTiming detail 'batch of 2'
    plain = draw_latency_plot(_two_cameras()["per_frame"], 100.0)
    batched = draw_latency_plot(report["per_frame"], 100.0)
    assert (_panels(plain, 2)[0] != _panels(batched, 2)[0]).any()

    def one_frame(batch):
        return draw_latency_plot([{"camera": "/c", "stamp_ns": 1, "outcome": "published", "latency_ms": 50.0,
                                   "batch": batch}], 100.0)

    drawn = [one_frame(b) for b in (1, 2, 3, 4)]
    assert all((drawn[i] != drawn[j]).any() for i in range(4) for j in range(i + 1, 4))
    assert (one_frame(6) == drawn[3]).all()  # 4 and more share a shape
    assert (drawn[1][:35, 600:] != 255).any()  # a batch anywhere brings the batch legend


def test_worst_diagnostic_level_per_status_is_reported():
    sent, outputs, _ = _scenario()
    outputs.worst_status = {"/vd: camera /c": (1, "2 misses in the last 5 s"), "/vd: device cl:0": (0, "fine")}
    report = build_report(sent, outputs)
    assert report["diagnostics_worst"]["/vd: camera /c"] == {"level": "WARN", "message": "2 misses in the last 5 s"}
    assert "diagnose  WARN /vd: camera /c: 2 misses in the last 5 s" in format_summary(report)


def test_diagnostics_after_the_last_frame_do_not_count_towards_the_worst_level(tmp_path):
    from rosbags.rosbag2 import Writer

    from ocl_infer.bag.report import read_outputs

    def array(stamp, level, message):
        status = T["diagnostic_msgs/msg/DiagnosticStatus"](level=level, name="/vd: camera /c", message=message,
                                                           hardware_id="", values=[])
        return T["diagnostic_msgs/msg/DiagnosticArray"](
            header=T["std_msgs/msg/Header"](stamp=_time(stamp), frame_id=""), status=[status])

    path = tmp_path / "out"
    with Writer(path, version=9) as w:
        c = w.add_connection("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", typestore=STORE)
        for stamp, level, message in ((10**9, 0, "ok"), (2 * 10**9, 1, "3 misses"), (5 * 10**9, 2, "no frame")):
            w.write(c, stamp, STORE.serialize_cdr(array(stamp, level, message), "diagnostic_msgs/msg/DiagnosticArray"))
    assert read_outputs(path).worst_status == {"/vd: camera /c": (2, "no frame")}
    cut = read_outputs(path, diagnostics_until_ns=3 * 10**9)
    assert cut.worst_status == {"/vd: camera /c": (1, "3 misses")} and cut.diagnostics == 3
