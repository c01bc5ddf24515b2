"""Frames over several devices: each frame goes to the device expected to finish it first (measured latency x
frames ahead of it), at most `max_inflight` frames per device; a device not given a frame for `refresh_s` gets the
next one, so a stale estimate is measured again. A device that raises or hangs (watchdog) leaves
the rotation, its frames run elsewhere, and it is retried after `retry_s`; while every device is out, frames
wait for the first to return. Every device hung, or a frame failed 2 x (number of devices) times: DeviceError."""

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ocl_infer.errors import DeviceError, OclInferError

log = logging.getLogger(__name__)


class Runner(Protocol):
    label: str

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class DeviceStats:
    label: str
    frames: int
    busy_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    errors: int
    hangs: int
    in_rotation: bool
    in_flight: int


@dataclass
class _Frame:
    feeds: Mapping[str, np.ndarray]
    future: Future
    attempts: int = 0
    failed_on: list[str] = field(default_factory=list)
    claimed: bool = False  # a device is delivering its outcome (set under the lock, delivered outside it)


class _Device:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.label = runner.label
        self.queue: deque[_Frame] = deque()
        self.current: _Frame | None = None
        self.started = 0.0
        self.ewma_s = 0.0
        self.latencies: deque[float] = deque(maxlen=2000)
        self.frames = 0
        self.busy_s = 0.0
        self.errors = 0
        self.hangs = 0
        self.down_until = 0.0  # out of rotation until then (inf while a hung run has not returned)
        self.last_error = ""
        self.wake = threading.Condition()
        self.last_picked = 0.0  # monotonic time a frame was last queued here

    def in_flight(self) -> int:
        return len(self.queue) + (1 if self.current is not None else 0)

    def expected_finish(self, now: float, refresh_s: float) -> float:
        # An estimate not measured for refresh_s may be stale (one slow frame, a device that got faster): count it
        # as free so the device gets one frame and is measured again, instead of being starved for good.
        if now - self.last_picked > refresh_s:
            return 0.0
        lat = self.ewma_s if self.ewma_s > 0 else 1e-3
        return (self.in_flight() + 1) * lat


class Dispatcher:
    def __init__(self, runners: Sequence[Runner], max_inflight: int = 2, watchdog_s: float = 30.0,
                 retry_s: float = 10.0, on_event: Callable[[str, str], None] | None = None,
                 refresh_s: float = 1.0) -> None:
        if not runners:
            raise DeviceError("no device to run on")
        self.max_inflight = max(1, max_inflight)
        self.refresh_s = refresh_s  # an unused device gets a frame at least this often, to re-measure it
        self.watchdog_s = watchdog_s
        self.retry_s = retry_s
        self.on_event = on_event
        self.events: list[tuple[float, str, str]] = []  # (time, device, what), for stats and tests
        self._lock = threading.Lock()
        self._pending: deque[_Frame] = deque()
        self._devices = [_Device(r) for r in runners]
        self._closed = False
        self._threads = [threading.Thread(target=self._work, args=(d,), name=f"ocl-{d.label}", daemon=True)
                         for d in self._devices]
        for t in self._threads:
            t.start()
        self._watchdog = threading.Thread(target=self._watch, name="ocl-watchdog", daemon=True)
        self._watchdog.start()

    # -- public
    def submit(self, feeds: Mapping[str, np.ndarray]) -> Future:
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise DeviceError("engine is closed")
            self._pending.append(_Frame(feeds, fut))
            self._retry_locked()  # devices whose retry time has come rejoin first; then assign
        return fut

    def stats(self) -> list[DeviceStats]:
        with self._lock:
            now = time.monotonic()
            out = []
            for d in self._devices:
                lat = np.asarray(d.latencies, dtype=np.float64) * 1e3
                p50, p95, p99 = (float(np.percentile(lat, q)) if lat.size else 0.0 for q in (50, 95, 99))
                out.append(DeviceStats(d.label, d.frames, d.busy_s, p50, p95, p99, d.errors, d.hangs,
                                       d.down_until <= now, d.in_flight()))
            return out

    def close(self, join_s: float = 2.0) -> list[Runner]:
        """Fail queued frames, stop the workers; returns the runners still stuck in a run (hung devices),
        whose resources the caller must not free."""
        with self._lock:
            self._closed = True
            pending = list(self._pending)
            self._pending.clear()
            for d in self._devices:
                pending += list(d.queue)
                d.queue.clear()
        for f in pending:
            _fail(f.future, DeviceError("engine closed before the frame ran"))
        for d in self._devices:
            with d.wake:
                d.wake.notify_all()
        for t in self._threads:
            t.join(timeout=join_s)
        return [d.runner for d, t in zip(self._devices, self._threads, strict=True) if t.is_alive()]

    # -- internals (all *_locked run under self._lock)
    def _event(self, device: str, what: str) -> None:
        self.events.append((time.time(), device, what))
        log.warning("%s: %s", device, what)
        if self.on_event is not None:
            self.on_event(device, what)

    def _assign_locked(self) -> None:
        now = time.monotonic()
        rotation = [d for d in self._devices if d.down_until <= now]
        if not rotation:
            # Frames wait for a failed device's retry; only when every device is hung (no return time) do they
            # fail now. A frame that keeps failing is failed after a bounded number of attempts (_work).
            if not any(math.isfinite(d.down_until) for d in self._devices):
                self._fail_all_locked()
            return
        while self._pending:
            frame = self._pending[0]
            fresh = [d for d in rotation if d.label not in frame.failed_on] or rotation
            room = [d for d in fresh if d.in_flight() < self.max_inflight]
            if not room:
                return
            now = time.monotonic()
            best = min(room, key=lambda d: (d.expected_finish(now, self.refresh_s), d.in_flight(), d.last_picked))
            best.last_picked = now
            self._pending.popleft()
            best.queue.append(frame)
            with best.wake:
                best.wake.notify()

    def _no_device_error(self) -> DeviceError:
        why = "; ".join(f"{d.label}: {d.last_error or 'out of rotation'}" for d in self._devices)
        return DeviceError(f"no OpenCL device left in rotation ({why})")

    def _fail_all_locked(self) -> None:
        err = self._no_device_error()
        while self._pending:
            _fail(self._pending.popleft().future, err)

    def _take_out_locked(self, d: _Device, what: str, until: float) -> None:
        d.down_until = until
        d.last_error = what
        self._event(d.label, f"out of rotation: {what}")
        while d.queue:  # frames waiting on this device go back to the front, in order
            self._pending.appendleft(d.queue.pop())

    def _work(self, d: _Device) -> None:
        while True:
            with d.wake:  # never take self._lock while holding d.wake (assign does the reverse)
                if not d.queue and not self._closed:
                    d.wake.wait(timeout=0.5)
            with self._lock:
                self._retry_locked()
                if self._closed and not d.queue:
                    return
                if not d.queue:
                    continue
                frame = d.queue.popleft()
                if frame.claimed or frame.future.done():  # already finished elsewhere (after a watchdog re-run)
                    continue
                d.current, d.started = frame, time.monotonic()
                frame.attempts += 1
            t0 = time.perf_counter()
            try:
                result = d.runner.run(frame.feeds)
                err: BaseException | None = None
            except OclInferError as e:
                result, err = None, e
            except Exception as e:
                result, err = None, e
            elapsed = time.perf_counter() - t0
            outcome: tuple[object, BaseException | None] | None = None
            with self._lock:
                hung = d.current is not frame  # the watchdog gave the frame to another device meanwhile
                d.current = None
                if err is None:
                    d.frames += 1
                    d.busy_s += elapsed
                    d.latencies.append(elapsed)
                    d.ewma_s = elapsed if d.ewma_s == 0 else 0.8 * d.ewma_s + 0.2 * elapsed
                    if hung:
                        d.down_until = time.monotonic() + self.retry_s
                        self._event(d.label, f"hung run returned after {elapsed:.1f} s; retry in {self.retry_s} s")
                    if not frame.claimed and not frame.future.done():
                        frame.claimed = True
                        outcome = (result, None)
                else:
                    d.errors += 1
                    frame.failed_on.append(d.label)
                    self._take_out_locked(d, f"{type(err).__name__}: {err}", time.monotonic() + self.retry_s)
                    if not frame.claimed and not frame.future.done():
                        if frame.attempts >= 2 * len(self._devices):  # bounded: never retried forever
                            frame.claimed = True
                            outcome = (None, self._no_device_error())
                        else:
                            self._pending.appendleft(frame)
                self._assign_locked()
            # Outside the lock: done-callbacks run on this thread and may submit() or read stats(); under the
            # lock they would deadlock, and a slow one would stall every other device's bookkeeping.
            if outcome is not None:
                with contextlib.suppress(InvalidStateError):  # cancelled by the caller meanwhile
                    if outcome[1] is None:
                        frame.future.device = d.label  # type: ignore[attr-defined]
                        frame.future.set_result(outcome[0])
                    else:
                        frame.future.set_exception(outcome[1])

    def _retry_locked(self) -> None:
        now = time.monotonic()
        for d in self._devices:
            if 0 < d.down_until <= now and d.last_error:
                d.last_error = ""
                d.down_until = 0.0
                self._event(d.label, "back in rotation")
        self._assign_locked()

    def _watch(self) -> None:
        period = min(1.0, max(0.01, self.watchdog_s / 4))
        while not self._closed:
            time.sleep(period)
            with self._lock:
                now = time.monotonic()
                for d in self._devices:
                    frame = d.current
                    if frame is not None and now - d.started > self.watchdog_s and math.isfinite(d.down_until):
                        d.hangs += 1
                        d.current = None  # the frame is re-run elsewhere; a late result is dropped
                        frame.failed_on.append(d.label)
                        self._take_out_locked(d, f"watchdog: no result after {self.watchdog_s:.1f} s",
                                              math.inf)
                        self._pending.appendleft(frame)
                self._retry_locked()


def _fail(fut: Future, err: BaseException) -> None:
    if not fut.done():
        fut.set_exception(err)

