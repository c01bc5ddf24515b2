"""Replay report maths on known frame outcomes: counts add up, percentiles match an independent computation."""

import math

import cv2
import numpy as np

from ocl_infer.bag.plot import draw_latency_plot, write_latency_plot
from ocl_infer.bag.report import RecordedOutputs, build_report, format_summary
from ocl_infer.bag.typestore import build_typestore

STORE = build_typestore()
T = STORE.types


def _time(ns: int) -> object:
    return T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def _timing(camera: str, stamp: int, outcome: int, latency: float = 0.0, device: str = "", count: int = 0):
    zero = _time(0)
    return T["ocl_infer_msgs/msg/FrameTiming"](
        header=T["std_msgs/msg/Header"](stamp=_time(stamp), frame_id="cam"), camera_topic=camera, sequence=1,
        device=device, outcome=outcome, detections_published=outcome in (0, 3), detail="", received=zero,
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
