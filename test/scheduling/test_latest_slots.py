"""LatestSlots' fair shares, driven by a simulated clock: cameras at given rates, one worker with a fixed
service time, every camera's served fraction compared (no ROS, no wall-clock timing)."""

from __future__ import annotations

import threading

import pytest

from ocl_infer.errors import ConfigError
from ocl_infer.scheduling import LatestSlots


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(rates_hz: dict[str, float], service_s: float, seconds: float = 60.0,
             weights: dict[str, float] | None = None, phase_s: dict[str, float] | None = None) -> dict[str, float]:
    """Served fraction per camera: frames arrive at fixed rates (with phases), one worker serves one at a time."""
    clock = FakeClock()
    slots: LatestSlots[float] = LatestSlots(weights, clock=clock)
    arrivals = sorted((k / rate + (phase_s or {}).get(cam, 0.0), cam)
                      for cam, rate in rates_hz.items() for k in range(int(seconds * rate)))
    sent = dict.fromkeys(rates_hz, 0)
    served = dict.fromkeys(rates_hz, 0)
    free_at = 0.0
    i = 0
    while i < len(arrivals):
        t, cam = arrivals[i]
        if free_at <= t and slots.pending():
            clock.now = free_at  # the worker comes back before this arrival: it takes what waits
            key, _ = slots.take(timeout=0)
            served[str(key)] += 1
            free_at += service_s
            continue
        clock.now = t
        slots.put(cam, t)
        sent[cam] += 1
        i += 1
        if free_at <= t:  # idle worker: takes the frame at once
            key, _ = slots.take(timeout=0)
            served[str(key)] += 1
            free_at = t + service_s
    return {cam: served[cam] / sent[cam] for cam in rates_hz}


@pytest.mark.parametrize("phase", [0.001, 0.010, 0.024, 0.040, 0.049])
def test_two_overloaded_cameras_lose_the_same_fraction_whatever_their_phase(phase):
    # 2 x 20 Hz, 33 ms per frame: the worker can do 30 of the 40 frames per second
    served = simulate({"a": 20.0, "b": 20.0}, 0.033, phase_s={"b": phase})
    assert abs(served["a"] - served["b"]) < 0.05, served
    assert min(served.values()) > 0.7, served


def test_a_faster_camera_loses_the_same_fraction_and_a_weight_buys_a_larger_one():
    served = simulate({"fast": 30.0, "slow": 10.0}, 0.05)  # capacity 20 of 40 frames/s
    assert served["fast"] == pytest.approx(0.5, abs=0.05) and served["slow"] == pytest.approx(0.5, abs=0.05)
    weighted = simulate({"a": 20.0, "b": 20.0}, 0.04, weights={"a": 2.0, "b": 1.0})  # capacity 25 of 40
    # a keeps twice b's fraction: 20 f_a + 20 f_b = 25 with f_a = 2 f_b
    assert weighted["a"] == pytest.approx(5 / 6, abs=0.05) and weighted["b"] == pytest.approx(5 / 12, abs=0.05)


def test_no_camera_starves_behind_a_flood():
    served = simulate({"flood": 200.0, "quiet": 1.0}, 0.05)
    assert served["quiet"] > 0.0 and served["flood"] > 0.0
    assert abs(served["quiet"] - served["flood"]) < 0.15, served


def test_a_camera_that_lost_a_frame_goes_first_and_ties_go_to_the_longest_waiting():
    slots: LatestSlots[str] = LatestSlots(clock=FakeClock())
    slots.put("a", "a1")
    slots.put("b", "b1")
    assert slots.take(0) == ("a", "a1")  # equal shares: a waited longer
    slots.put("b", "b2")  # b1 overwritten: b has lost a frame
    slots.put("a", "a2")
    assert slots.take(0) == ("b", "b2")
    assert slots.take(0) == ("a", "a2")


def test_take_many_takes_in_fair_order_as_many_as_decided():
    slots: LatestSlots[int] = LatestSlots(clock=FakeClock())
    for cam, item in (("a", 1), ("b", 2), ("c", 3)):
        slots.put(cam, item)
    seen = []
    got = slots.take_many(lambda waiting: seen.append(list(waiting)) or 2, timeout=0)
    assert seen == [[1, 2, 3]] and got == [("a", 1), ("b", 2)]
    assert slots.take_many(lambda waiting: 5, timeout=0) == [("c", 3)]  # never more than wait
    assert slots.take_many(lambda waiting: 1, timeout=0.01) == []


def test_weights_are_checked_and_close_wakes_a_waiting_worker():
    with pytest.raises(ConfigError, match="weight of 'a'"):
        LatestSlots({"a": 0.0})
    slots: LatestSlots[int] = LatestSlots()
    with pytest.raises(ConfigError, match="weight of 'b'"):
        slots.set_weights({"b": float("nan")})
    got = []
    worker = threading.Thread(target=lambda: got.append(slots.take(timeout=10)))
    worker.start()
    slots.close()
    worker.join(5)
    assert got == [None] and not worker.is_alive()


def test_camera_weights_parameter_is_one_weight_per_camera():
    from ocl_infer.ros.options import NodeOptions

    opts = NodeOptions(image_topics=("/a/image", "/b/image"), camera_weights="2, 1")
    assert opts.weights == {"/a/image": 2.0, "/b/image": 1.0}
    assert NodeOptions(image_topics=("/a/image", "/b/image")).weights == {"/a/image": 1.0, "/b/image": 1.0}
    for bad in ("2", "2,0", "two,1"):
        with pytest.raises(ConfigError, match="parameter camera_weights"):
            opts.updated({"camera_weights": bad})  # a live change is checked like a start-up value
