"""The dispatcher with fake devices (no OpenCL): choice by expected finish, bounded in-flight frames, failover,
retry, watchdog, no device left, close."""

import threading
import time
from collections.abc import Mapping

import numpy as np
import pytest

from ocl_infer.engine.devices.dispatch import Dispatcher
from ocl_infer.errors import DeviceError


class FakeDevice:
    def __init__(self, label: str, delay_s: float) -> None:
        self.label = label
        self.delay_s = delay_s
        self.running = 0
        self.max_running = 0
        self.fail = False
        self.hang_s = 0.0
        self._lock = threading.Lock()

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            if self.fail:
                raise DeviceError(f"{self.label}: fake OpenCL error")
            time.sleep(self.hang_s or self.delay_s)
            return {"y": feeds["x"] * 2}
        finally:
            with self._lock:
                self.running -= 1


def feed(i: int) -> dict[str, np.ndarray]:
    return {"x": np.full(3, float(i), np.float32)}


def test_faster_device_gets_more_frames_and_results_keep_order():
    fast, slow = FakeDevice("fast", 0.002), FakeDevice("slow", 0.03)
    d = Dispatcher([slow, fast], max_inflight=2)
    try:
        futures = [d.submit(feed(i)) for i in range(40)]
        for i, f in enumerate(futures):
            np.testing.assert_array_equal(f.result(timeout=30)["y"], np.full(3, 2.0 * i))
        stats = {s.label: s for s in d.stats()}
        assert stats["fast"].frames > stats["slow"].frames > 0
        assert {f.device for f in futures} == {"fast", "slow"}
    finally:
        d.close()


def test_a_device_with_a_stale_slow_estimate_is_measured_again():
    # One frame at a time: without re-measuring, the device whose first frame was slow would never run again.
    a, b = FakeDevice("a", 0.002), FakeDevice("b", 0.05)
    d = Dispatcher([a, b], max_inflight=1, refresh_s=0.1)
    try:
        d.submit(feed(0)).result(timeout=30)
        d.submit(feed(1)).result(timeout=30)  # b is measured slow now
        b.delay_s = 0.002  # ... and becomes as fast as a
        devices = []
        end = time.monotonic() + 5
        while time.monotonic() < end and devices.count("b") < 3:
            f = d.submit(feed(2))
            f.result(timeout=30)
            devices.append(f.device)
            time.sleep(0.01)
        assert devices.count("b") >= 3, devices
    finally:
        d.close()


@pytest.mark.parametrize("limit", [1, 3])
def test_in_flight_frames_are_bounded_per_device(limit):
    devs = [FakeDevice("a", 0.002), FakeDevice("b", 0.002)]
    d = Dispatcher(devs, max_inflight=limit)
    try:
        futures = [d.submit(feed(i)) for i in range(30)]
        for f in futures:
            f.result(timeout=30)
        assert all(dev.max_running == 1 for dev in devs)  # one run at a time per device
        assert all(s.in_flight == 0 for s in d.stats())
    finally:
        d.close()


def test_failing_device_leaves_rotation_frames_rerun_and_it_returns():
    good, bad = FakeDevice("good", 0.002), FakeDevice("bad", 0.002)
    bad.fail = True
    d = Dispatcher([bad, good], max_inflight=2, retry_s=0.2)
    try:
        futures = [d.submit(feed(i)) for i in range(10)]
        assert [f.result(timeout=30)["y"][0] for f in futures] == [2.0 * i for i in range(10)]
        assert all(f.device == "good" for f in futures)
        bad_stats = next(s for s in d.stats() if s.label == "bad")
        assert bad_stats.errors >= 1 and bad_stats.frames == 0
        assert any(dev == "bad" and "out of rotation" in what for _, dev, what in d.events)
        bad.fail = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("back in rotation" in w for _, _, w in d.events):
            time.sleep(0.05)
        more = [d.submit(feed(i)) for i in range(10)]
        for f in more:
            f.result(timeout=30)
        assert next(s for s in d.stats() if s.label == "bad").frames > 0
    finally:
        d.close()


def test_watchdog_reruns_a_hung_frame_elsewhere():
    stuck, ok = FakeDevice("stuck", 0.002), FakeDevice("ok", 0.002)
    stuck.hang_s = 1.5
    d = Dispatcher([stuck, ok], max_inflight=1, watchdog_s=0.2, retry_s=0.1)
    try:
        f = d.submit(feed(7))  # goes to "stuck" (first in order), which hangs
        assert f.result(timeout=30)["y"][0] == 14.0
        assert f.device == "ok"
        assert next(s for s in d.stats() if s.label == "stuck").hangs == 1
    finally:
        d.close()


def test_no_device_left_fails_after_bounded_retries_with_device_error():
    a, b = FakeDevice("a", 0.001), FakeDevice("b", 0.001)
    a.fail = b.fail = True
    d = Dispatcher([a, b], retry_s=0.05)
    try:
        with pytest.raises(DeviceError, match=r"no OpenCL device left in rotation \(a: DeviceError: a: fake"):
            d.submit(feed(1)).result(timeout=30)
        with pytest.raises(DeviceError, match="no OpenCL device left"):
            d.submit(feed(2)).result(timeout=30)
    finally:
        d.close()


def test_close_fails_queued_frames():
    slow = FakeDevice("slow", 0.2)
    d = Dispatcher([slow], max_inflight=1)
    futures = [d.submit(feed(i)) for i in range(5)]
    while slow.running == 0:  # the first frame is running; the others wait
        time.sleep(0.01)
    d.close()
    assert futures[0].result(timeout=30)["y"][0] == 0.0
    with pytest.raises(DeviceError, match="closed"):
        futures[-1].result(timeout=30)
    with pytest.raises(DeviceError, match="closed"):
        d.submit(feed(9))


def test_frames_wait_while_every_device_is_out_and_run_when_one_returns():
    hung, flaky = FakeDevice("hung", 0.002), FakeDevice("flaky", 0.002)
    hung.hang_s = 2.0
    d = Dispatcher([hung, flaky], max_inflight=1, watchdog_s=0.3, retry_s=0.5)
    try:
        first = d.submit(feed(0))  # -> "hung"
        flaky.fail = True
        second = d.submit(feed(1))  # -> "flaky", fails: now no device is in rotation for a while
        while not any(dev == "flaky" and "out of rotation" in w for _, dev, w in d.events):
            time.sleep(0.01)
        flaky.fail = False
        assert second.result(timeout=30)["y"][0] == 2.0
        assert first.result(timeout=30)["y"][0] == 0.0
    finally:
        d.close()


def test_every_device_hung_fails_at_once():
    a, b = FakeDevice("a", 0.002), FakeDevice("b", 0.002)
    a.hang_s = b.hang_s = 1.5
    d = Dispatcher([a, b], max_inflight=1, watchdog_s=0.2, retry_s=0.1)
    try:
        with pytest.raises(DeviceError, match="no OpenCL device left"):
            d.submit(feed(1)).result(timeout=30)
    finally:
        d.close()
