"""The node's logic without ROS spinning: latest-slots, window statistics, diagnostic levels, stamp matching."""

import threading

import numpy as np
import pytest

from ocl_infer.errors import ConfigError
from ocl_infer.ros.diagnostics import ERROR, OK, WARN, Transport, camera_level, camera_report, device_report
from ocl_infer.ros.frame_stats import CameraStats, DeviceStats, percentiles
from ocl_infer.ros.latest_slot import LatestSlots
from ocl_infer.ros.options import NodeOptions
from ocl_infer.ros.stamp_matcher import StampMatcher, pair_level


def test_slot_overwrite_returns_the_displaced_frame_and_take_gives_the_newest():
    slots: LatestSlots[int] = LatestSlots()
    assert slots.put("a", 1) is None
    assert slots.put("a", 2) == 1  # overload drop
    assert slots.put("a", 3) == 2
    assert slots.take(timeout=0) == ("a", 3)
    assert slots.take(timeout=0.01) is None


def test_slots_serve_cameras_in_arrival_order():
    slots: LatestSlots[str] = LatestSlots()
    slots.put("a", "a1")
    slots.put("b", "b1")
    slots.put("a", "a2")  # a's slot now holds a newer frame, but b waited longer
    assert slots.take(0) == ("b", "b1")
    assert slots.take(0) == ("a", "a2")
    assert slots.pending() == 0


def test_take_blocks_until_put_and_close_wakes_workers():
    slots: LatestSlots[int] = LatestSlots()
    got = []
    worker = threading.Thread(target=lambda: got.append(slots.take(timeout=10)))
    worker.start()
    slots.put("cam", 7)
    worker.join(5)
    assert got == [("cam", 7)]
    waiting = threading.Thread(target=lambda: got.append(slots.take(timeout=10)))
    waiting.start()
    slots.put("cam", 8)
    waiting.join(5)
    slots.put("cam", 9)
    assert slots.close() == [("cam", 9)]
    assert slots.take(timeout=0) is None


def test_percentiles_match_numpy():
    rng = np.random.default_rng(0)
    values = rng.exponential(20.0, 1000)
    p = percentiles(values)
    assert p["p50"] == pytest.approx(np.percentile(values, 50))
    assert p["p99"] == pytest.approx(np.percentile(values, 99))
    assert p["max"] == values.max()
    assert np.isnan(percentiles([])["p50"])


def test_camera_window_counts_rates_and_forgets_old_events():
    stats = CameraStats(start=0.0, window_s=2.0)
    for i in range(20):  # 10 Hz for 2 s
        t = 0.1 * i
        stats.record("received", t)
        stats.record_processed(t + 0.05, latency_ms=50.0 + i, missed=i >= 18, published=True)
    stats.record("overload_drop", 1.0)
    snap = stats.snapshot(2.0)
    assert snap.input_rate_hz == pytest.approx(10.0)
    assert snap.window["miss"] == 2 and snap.window["overload_drop"] == 1
    assert snap.latency_ms["max"] == 69.0
    later = stats.snapshot(10.0)
    assert later.window["received"] == 0 and later.window["miss"] == 0
    assert later.totals["received"] == 20 and later.totals["miss"] == 2 and later.totals["published"] == 20
    assert later.since_last_frame_s == pytest.approx(10.0 - 1.9)


OPTS = NodeOptions(expected_rate_hz=10.0, input_deadline_tolerance=1.5, stall_periods=5.0, deadline_ms=100.0,
                   diagnostics_window_s=2.0)


def steady(stats: CameraStats, until: float, latency: float = 40.0) -> None:
    t = stats.start
    while t < until - 1e-9:
        stats.record("received", t)
        stats.record_processed(t, latency, missed=latency > OPTS.deadline_ms, published=True)
        t += 0.1


def test_levels_ok_then_warn_when_late_then_error_when_stalled_then_ok_again():
    stats = CameraStats(0.0, OPTS.diagnostics_window_s)
    steady(stats, 3.0)
    assert camera_level(stats.snapshot(2.95), OPTS)[0] == OK
    level, msg = camera_level(stats.snapshot(2.9 + 0.2), OPTS)  # 2 periods without a frame: overdue
    assert level == WARN and "no frame for" in msg
    level, msg = camera_level(stats.snapshot(2.9 + 0.6), OPTS)  # 6 periods > stall_periods
    assert level == ERROR and "no frame for" in msg
    steady_from = CameraStats(3.5, OPTS.diagnostics_window_s)
    steady(steady_from, 6.0)
    assert camera_level(steady_from.snapshot(5.95), OPTS)[0] == OK


@pytest.mark.parametrize("kind", ["stale_drop", "overload_drop", "decode_error", "inference_error", "input_gap"])
def test_any_drop_error_or_gap_in_the_window_warns(kind):
    stats = CameraStats(0.0, 2.0)
    steady(stats, 3.0)
    stats.record(kind, 2.5)
    level, msg = camera_level(stats.snapshot(2.95), OPTS)
    assert level == WARN and kind.split("_")[0] in msg.replace("-", "_")
    assert camera_level(stats.snapshot(4.6), OPTS)[0] == ERROR  # (and no frames since 2.9)


def test_misses_warn_and_all_missed_is_error():
    stats = CameraStats(0.0, 2.0)
    steady(stats, 3.0)
    stats.record_processed(2.95, 150.0, missed=True, published=True)
    assert camera_level(stats.snapshot(2.96), OPTS)[0] == WARN
    late = CameraStats(0.0, 2.0)
    steady(late, 3.0, latency=150.0)
    level, msg = camera_level(late.snapshot(2.95), OPTS)
    assert level == ERROR and "missed" in msg


def test_low_input_rate_warns_once_a_window_has_passed():
    stats = CameraStats(0.0, 2.0)
    t = 0.0
    while t < 3.0:  # 4 Hz against an expected 10 Hz; judged right after a frame, so only the rate is wrong
        stats.record("received", t)
        t += 0.25
    snap = stats.snapshot(2.80)
    level, msg = camera_level(snap, OPTS)
    assert level == WARN and "below expected" in msg


def test_unknown_rate_never_stalls():
    opts = NodeOptions(expected_rate_hz=0.0)
    stats = CameraStats(0.0, 2.0)
    assert camera_level(stats.snapshot(1000.0), opts) == (OK, "waiting for the first frame")


def test_reports_carry_every_counter():
    stats = CameraStats(0.0, 2.0)
    steady(stats, 1.0)
    report = camera_report("/vd", "/cam/image", stats.snapshot(1.0), OPTS)
    keys = dict(report.values)
    for key in ("input_rate_hz", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms",
                "misses_total", "stale_drops_total", "overload_drops_total", "decode_errors_total",
                "input_gaps_total"):
        assert key in keys
    assert report.name == "/vd: camera /cam/image" and report.hardware_id == "/cam/image"


BIG = 768 * 576 * 3
FIX = Transport(publishers=1, profile="default", fix="FASTDDS_DEFAULT_PROFILES_FILE=/x/fastdds_shm.xml on both")


def lossy(size: int, every: int, known: bool = True, until: float = 3.0) -> CameraStats:
    """A 10 Hz camera of which one frame in `every` reaches the node; DDS reports the others lost."""
    stats = CameraStats(0.0, 2.0)
    if known:
        stats.track_losses()
    t = 0.0
    while t < until - 1e-9:
        stats.record_frame(t, size)
        stats.record_processed(t, 40.0, missed=False, published=True)
        if known and every > 1:
            stats.record("transport_loss", t, every - 1)
        t += 0.1 * every
    return stats


def test_large_frames_lost_on_the_way_are_diagnosed_with_cause_and_fix():
    level, msg = camera_level(lossy(BIG, 3).snapshot(2.95), OPTS, FIX)
    assert level == WARN
    assert "frames (1.3 MB each) lost on the way to the node" in msg and "likely cause: large frames" in msg
    assert msg.endswith("fix: FASTDDS_DEFAULT_PROFILES_FILE=/x/fastdds_shm.xml on both")
    # With an RMW that reports no lost messages, the low input rate with large frames says the same.
    level, msg = camera_level(lossy(BIG, 3, known=False).snapshot(2.95), OPTS, FIX)
    assert level == WARN and "Hz below expected 10 Hz" in msg and "1.3 MB frames; likely cause" in msg


@pytest.mark.parametrize(("size", "every", "known"), [(1000, 3, True), (BIG, 1, True), (1000, 3, False)])
def test_no_transport_diagnosis_for_small_frames_or_without_losses(size, every, known):
    _, msg = camera_level(lossy(size, every, known).snapshot(2.95), OPTS, FIX)
    assert "likely cause" not in msg


def test_a_slow_camera_is_not_blamed_on_the_transport():
    slow = CameraStats(0.0, 2.0)
    slow.track_losses()
    for i in range(7):  # 2.5 Hz, every frame it sent arrived
        slow.record_frame(0.4 * i, BIG)
    level, msg = camera_level(slow.snapshot(2.5), OPTS, FIX)
    assert level == WARN and "below expected" in msg and "likely cause" not in msg


def test_a_camera_none_of_whose_frames_arrives_is_diagnosed():
    stats = CameraStats(0.0, 2.0)
    stats.track_losses()
    level, msg = camera_level(stats.snapshot(3.0), OPTS, FIX)
    assert level == ERROR and "likely cause" not in msg  # nothing sent, nothing lost: no transport to blame
    for i in range(20):
        stats.record("transport_loss", 1.0 + 0.1 * i)
    level, msg = camera_level(stats.snapshot(3.0), OPTS, FIX)
    assert level == ERROR and msg.startswith("no frame received in 3.0 s. 20 of 20 frames lost on the way")
    assert "likely cause" in msg


def test_transport_values_in_the_report():
    stats = CameraStats(0.0, 2.0)
    values = dict(camera_report("/n", "/cam", stats.snapshot(0.5), OPTS, FIX).values)
    assert values["transport_losses_total"] == "unknown" and values["frame_bytes"] == "0"
    stats.track_losses()
    stats.record_frame(0.6, BIG)
    stats.record("transport_loss", 0.65, 4)
    stats.record_frame(0.7, BIG)
    values = dict(camera_report("/n", "/cam", stats.snapshot(1.0), OPTS, FIX).values)
    assert values["transport_losses_total"] == "4" and values["received_total"] == "2"
    assert values["frame_bytes"] == str(BIG) and values["publishers"] == "1" and values["dds_profile"] == "default"


def test_live_options_update_validated_and_read_only_ones_refused():
    opts = NodeOptions()
    new = opts.updated({"deadline_ms": 50.0, "late_policy": "drop", "classes": "car", "overlay": False})
    assert (new.deadline_ms, new.late_policy, new.class_filter, new.overlay) == (50.0, "drop", ["car"], False)
    assert opts.deadline_ms == 100.0  # frozen: the old options are untouched
    with pytest.raises(ConfigError, match="parameter late_policy: 'never' is not one of publish, drop"):
        opts.updated({"late_policy": "never"})
    with pytest.raises(ConfigError, match="parameter model: read-only while the node runs"):
        opts.updated({"model": "/other"})
    with pytest.raises(ConfigError, match=r"parameter deadline_ms: 0\.0 is outside"):
        opts.updated({"deadline_ms": 0.0})


def test_device_stats_and_report():
    dev = DeviceStats(0.0, 2.0)
    for i in range(10):
        dev.record("cl:0", 0.1 * i, 20.0 + i)
    dev.record_error("cl:1", 0.5)
    snaps = {s.label: s for s in dev.snapshot(1.0)}
    assert snaps["cl:0"].frames == 10 and snaps["cl:0"].inference_ms["max"] == 29.0
    assert device_report("/vd", snaps["cl:0"]).level == OK
    assert device_report("/vd", snaps["cl:1"]).level == WARN


def test_stamp_matcher_latency_misses_and_unanswered():
    m = StampMatcher("/in", "/out", budget_ms=100.0, window_s=5.0, expire_s=1.0, start=0.0)
    for i in range(10):
        stamp = 10.0 + i * 0.1
        m.on_input(int(stamp * 1e9), stamp + 0.005)
        if i < 8:  # two inputs never answered
            delay = 0.05 if i < 6 else 0.2  # two answers over budget
            assert m.on_output(int(stamp * 1e9), stamp + delay) == pytest.approx(delay * 1e3, abs=1e-3)
    assert m.on_output(123, 11.0) is None  # a stamp never seen on the input
    snap = m.snapshot(13.0)
    assert (snap.matched, snap.misses, snap.unanswered, snap.unmatched_outputs) == (8, 2, 2, 1)
    assert snap.latency_ms["max"] == pytest.approx(200.0, abs=1e-3)
    assert snap.delay_ms["p50"] == pytest.approx(45.0, abs=1e-3)
    assert pair_level(snap, stall_s=2.0)[0] == WARN


def test_pair_level_error_when_input_flows_without_output():
    m = StampMatcher("/in", "/out", 100.0, 5.0, 1.0, 0.0)
    for i in range(30):
        m.on_input(i, 0.1 * i)
    level, msg = pair_level(m.snapshot(3.0), stall_s=2.0)
    assert level == ERROR and "no output" in msg
