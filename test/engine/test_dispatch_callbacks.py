"""Future callbacks run outside the dispatcher's lock: a done-callback may submit the next frame or read stats
(the streaming pattern), and a slow callback on one device's thread does not stall the other devices."""

import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future

import numpy as np

from ocl_infer.engine.devices.dispatch import Dispatcher


class EchoDevice:
    def __init__(self, label: str, delay_s: float = 0.001) -> None:
        self.label = label
        self.delay_s = delay_s

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(self.delay_s)
        return {"y": feeds["x"] + 1}


def test_done_callback_can_submit_the_next_frame_and_read_stats():
    d = Dispatcher([EchoDevice("a"), EchoDevice("b")], max_inflight=2)
    results: list[float] = []
    finished = threading.Event()

    def chain(fut, i: int) -> None:
        results.append(float(fut.result()["y"][0]))
        d.stats()  # takes the dispatcher lock: would deadlock if callbacks ran under it
        if i < 10:
            nxt = d.submit({"x": np.full(2, float(i + 1), np.float32)})
            nxt.add_done_callback(lambda f, i=i + 1: chain(f, i))
        else:
            finished.set()

    try:
        first = d.submit({"x": np.zeros(2, np.float32)})
        first.add_done_callback(lambda f: chain(f, 0))
        assert finished.wait(timeout=20), f"callback chain stalled after {len(results)} frames"
        assert results == [float(i + 1) for i in range(11)]
    finally:
        if finished.is_set():  # a deadlocked dispatcher would hang close(); its daemon threads are left
            d.close()


def test_slow_callback_on_one_device_does_not_stall_the_other():
    d = Dispatcher([EchoDevice("a", 0.1), EchoDevice("b", 0.1)], max_inflight=1)
    entered, release = threading.Event(), threading.Event()

    def slow(_fut) -> None:
        entered.set()
        release.wait(timeout=20)  # holds its device's worker thread

    try:
        blocker = d.submit({"x": np.zeros(2, np.float32)})
        blocker.add_done_callback(slow)  # registered while the 0.1 s run is going: runs on the worker thread
        assert entered.wait(timeout=10)
        box: dict[str, object] = {}
        t = threading.Thread(target=lambda: box.setdefault("f", d.submit({"x": np.ones(2, np.float32)})),
                             daemon=True)
        t.start()
        t.join(timeout=10)  # a hang detector, not a speed check: the callback holds its thread for 20 s
        assert "f" in box, "submit() blocked while another device's done-callback ran"
        other = box["f"]
        assert isinstance(other, Future)
        np.testing.assert_array_equal(other.result(timeout=10)["y"], np.full(2, 2.0))
        assert other.device != blocker.device
    finally:
        release.set()
        d.close()
