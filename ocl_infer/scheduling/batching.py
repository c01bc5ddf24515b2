"""BatchPolicy: how many waiting frames (one per camera) to run as one batch, from measured times.

Batching pays only where the device runs N frames at once faster than N frames one by one (a GPU with idle
lanes); on a 2-core CPU it depends on N and on the load (docs/performance.md, 'Several cameras': 2 cameras
gained, 4 lost). So the policy measures: it keeps a moving average of the wall time of each batch size it
ran, and takes N frames at once only while N's time per frame is below one frame's. A size it has never run
is tried once; a size not chosen is tried again every `probe_every_s` (the device's load may have changed).
Whatever it chooses, the batch must fit the deadline: the oldest frame's age plus the batch's expected time
stays within the budget, else the batch shrinks (to 1 if need be). Nothing here knows about ROS or the device.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence

from ocl_infer.errors import ConfigError

BATCH_MODES = ("auto", "off", "always")
SMOOTHING = 0.2  # weight of a new measurement in the moving average
PROBE_EVERY_S = 30.0


class BatchPolicy:
    """``sizes``: the batch sizes the detector can run (besides 1); ``mode``: auto (by measured time), off
    (always 1), always (the largest that fits the deadline). Thread-safe; ``clock`` is injectable for tests."""

    def __init__(self, sizes: Iterable[int], mode: str = "auto", probe_every_s: float = PROBE_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in BATCH_MODES:
            raise ConfigError(f"batching: {mode!r} is not one of {', '.join(BATCH_MODES)}")
        self.sizes = tuple(sorted({int(n) for n in sizes if int(n) > 1}))
        self.mode = mode
        self.probe_every_s = probe_every_s
        self._clock = clock
        self._ms: dict[int, float] = {}  # batch size -> moving average of its wall time (ms)
        self._tried: dict[int, float] = {}  # batch size -> when it last ran
        self._lock = threading.Lock()

    def record(self, size: int, wall_ms: float) -> None:
        """A batch of `size` frames (1: one frame alone) took `wall_ms` from submit to results."""
        with self._lock:
            old = self._ms.get(size)
            self._ms[size] = wall_ms if old is None else (1 - SMOOTHING) * old + SMOOTHING * wall_ms
            self._tried[size] = self._clock()

    def batch_ms(self, size: int) -> float | None:
        """The moving average of a batch of `size` (ms), or None before it ran."""
        with self._lock:
            return self._ms.get(size)

    def per_frame_ms(self, size: int) -> float | None:
        ms = self.batch_ms(size)
        return None if ms is None else ms / size

    def _fits(self, size: int, ages_ms: Sequence[float], deadline_ms: float) -> bool:
        """The batch's frames (the first `size` waiting) are expected to finish within the budget."""
        ms = self._ms.get(size)
        if ms is None:
            single = self._ms.get(1)
            ms = single * size if single is not None else 0.0  # never ran: assume no gain, no loss
        return max(ages_ms[:size]) + ms <= deadline_ms

    def choose(self, ages_ms: Sequence[float], deadline_ms: float) -> int:
        """How many of the waiting frames (their ages in ms, next to serve first) to run now: 1 or a size in
        `sizes`, at most len(ages_ms)."""
        if self.mode == "off" or len(ages_ms) < 2:
            return 1
        with self._lock:
            now = self._clock()
            fitting = [n for n in self.sizes if n <= len(ages_ms) and self._fits(n, ages_ms, deadline_ms)]
            if not fitting:
                return 1
            if self.mode == "always":
                return fitting[-1]
            for n in reversed(fitting):  # never ran, or not for a while: measure it
                if n not in self._ms or now - self._tried.get(n, now) >= self.probe_every_s:
                    return n
            single = self._ms.get(1)
            if single is None:
                return 1  # measure one frame alone first
            best = min(fitting, key=lambda n: self._ms[n] / n)
            return best if self._ms[best] / best < single else 1
