"""Per-camera and per-device frame statistics over a sliding window, in the node's clock (seconds).

The node records each event once (`record_*`); `snapshot(now)` gives rates, latency percentiles and counts in
the window plus totals since start. Thread-safe: DDS callbacks, worker threads and the diagnostics timer share
these objects. No ROS here.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

# Event kinds counted per camera, in the words of docs/architecture.md.
EVENT_KINDS = (
    "received",
    "published",
    "miss",
    "stale_drop",
    "overload_drop",
    "decode_error",
    "inference_error",
    "input_gap",
    "output_gap",
    "transport_loss",  # frames DDS lost on the way from the camera (the subscription's message-lost event)
)


def percentiles(values: list[float] | np.ndarray) -> dict[str, float]:
    """p50/p95/p99/max of `values` (NaN when empty)."""
    if len(values) == 0:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    arr = np.asarray(values, dtype=np.float64)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(arr.max())}


@dataclass(frozen=True)
class CameraSnapshot:
    """What diagnostics need to judge one camera at time `now`."""

    now: float
    window_s: float
    uptime_s: float
    since_last_frame_s: float | None  # None: no frame yet
    input_rate_hz: float
    output_rate_hz: float
    latency_ms: dict[str, float]  # p50/p95/p99/max of processed frames in the window
    processed: int  # frames processed (published or missed) in the window
    window: dict[str, int]  # event counts in the window
    totals: dict[str, int]  # event counts since start
    frame_bytes: int = 0  # size of the newest frame's data
    losses_known: bool = False  # the RMW reports lost messages, so transport_loss is counted


@dataclass
class _Window:
    """Times of one event kind (and an optional value) inside the window."""

    times: deque[float] = field(default_factory=deque)
    values: deque[float] = field(default_factory=deque)

    def add(self, t: float, value: float = 0.0) -> None:
        self.times.append(t)
        self.values.append(value)

    def trim(self, start: float) -> None:
        while self.times and self.times[0] < start:
            self.times.popleft()
            self.values.popleft()


class CameraStats:
    """Events of one camera: counts since start and a sliding window for rates and percentiles."""

    def __init__(self, start: float, window_s: float) -> None:
        self.start = start
        self.window_s = window_s
        self._lock = threading.Lock()
        self._totals = dict.fromkeys(EVENT_KINDS, 0)
        self._windows = {kind: _Window() for kind in EVENT_KINDS}
        self._latency = _Window()  # latency_ms of every processed frame
        self._last_received: float | None = None
        self._frame_bytes = 0
        self._losses_known = False

    def record_frame(self, now: float, size_bytes: int) -> None:
        """A frame arrived: count it as received and note its size (the transport diagnosis needs it)."""
        with self._lock:
            self._frame_bytes = int(size_bytes)
        self.record("received", now)

    def track_losses(self) -> None:
        """The subscription reports lost messages: transport_loss counts are meaningful (zero included)."""
        with self._lock:
            self._losses_known = True

    def record(self, kind: str, now: float, count: int = 1) -> None:
        """Count `count` events of `kind` (one of EVENT_KINDS) at `now`."""
        with self._lock:
            self._totals[kind] += count
            for _ in range(count):
                self._windows[kind].add(now)
            if kind == "received":
                self._last_received = now
            self._trim(now)

    def record_processed(self, now: float, latency_ms: float, missed: bool, published: bool) -> None:
        """A frame went through the detector: its latency, whether it missed, whether it was published."""
        with self._lock:
            self._latency.add(now, latency_ms)
            for kind, happened in (("miss", missed), ("published", published)):
                if happened:
                    self._totals[kind] += 1
                    self._windows[kind].add(now)
            self._trim(now)

    def _trim(self, now: float) -> None:
        start = now - self.window_s
        for w in self._windows.values():
            w.trim(start)
        self._latency.trim(start)

    def snapshot(self, now: float) -> CameraSnapshot:
        with self._lock:
            self._trim(now)
            span = max(min(self.window_s, now - self.start), 1e-9)
            window = {k: len(w.times) for k, w in self._windows.items()}
            return CameraSnapshot(
                now=now,
                window_s=self.window_s,
                uptime_s=now - self.start,
                since_last_frame_s=None if self._last_received is None else now - self._last_received,
                input_rate_hz=window["received"] / span,
                output_rate_hz=window["published"] / span,
                latency_ms=percentiles(list(self._latency.values)),
                processed=len(self._latency.times),
                window=window,
                totals=dict(self._totals),
                frame_bytes=self._frame_bytes,
                losses_known=self._losses_known,
            )


@dataclass(frozen=True)
class DeviceSnapshot:
    label: str
    frames: int  # since start
    frames_in_window: int
    rate_hz: float
    inference_ms: dict[str, float]  # p50/p95/p99/max in the window
    errors: int  # since start
    errors_in_window: int


class DeviceStats:
    """Frames each device ran (by the label the Detector reports), with inference times and errors."""

    def __init__(self, start: float, window_s: float) -> None:
        self.start = start
        self.window_s = window_s
        self._lock = threading.Lock()
        self._frames: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._times: dict[str, _Window] = {}
        self._error_times: dict[str, _Window] = {}

    def record(self, label: str, now: float, inference_ms: float) -> None:
        with self._lock:
            self._frames[label] = self._frames.get(label, 0) + 1
            self._times.setdefault(label, _Window()).add(now, inference_ms)
            self._errors.setdefault(label, 0)

    def record_error(self, label: str, now: float) -> None:
        with self._lock:
            self._errors[label] = self._errors.get(label, 0) + 1
            self._frames.setdefault(label, 0)
            self._error_times.setdefault(label, _Window()).add(now)

    def snapshot(self, now: float) -> list[DeviceSnapshot]:
        with self._lock:
            start = now - self.window_s
            span = max(min(self.window_s, now - self.start), 1e-9)
            out = []
            for label in sorted(self._frames):
                times = self._times.setdefault(label, _Window())
                errors = self._error_times.setdefault(label, _Window())
                times.trim(start)
                errors.trim(start)
                out.append(
                    DeviceSnapshot(
                        label=label,
                        frames=self._frames[label],
                        frames_in_window=len(times.times),
                        rate_hz=len(times.times) / span,
                        inference_ms=percentiles(list(times.values)),
                        errors=self._errors.get(label, 0),
                        errors_in_window=len(errors.times),
                    )
                )
            return out
