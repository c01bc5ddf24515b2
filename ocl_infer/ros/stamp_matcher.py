"""Match input and output messages of a pipeline by header stamp and measure its end-to-end latency.

Used by the deadline_monitor node, which watches nodes it does not change: a camera topic and the detections
topic of whatever processes it. An output whose stamp equals a recent input's stamp is a match; its
`latency = output received - stamp` (end to end, what the budget bounds) and `delay = output received - input
received` (the pipeline alone). Inputs never answered within `expire_s` count as unanswered (the pipeline
dropped them). Times are seconds in the monitor's clock. No ROS here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from ocl_infer.ros.frame_stats import percentiles

MAX_PENDING = 10_000  # inputs remembered while waiting for their output


@dataclass(frozen=True)
class PairSnapshot:
    input_topic: str
    output_topic: str
    budget_ms: float
    input_rate_hz: float
    output_rate_hz: float
    latency_ms: dict[str, float]  # end to end, matched outputs in the window
    delay_ms: dict[str, float]  # output received - input received
    inputs: int  # since start
    outputs: int
    matched: int
    misses: int  # matched with latency > budget
    unanswered: int  # inputs with no output within expire_s
    unmatched_outputs: int  # outputs whose stamp was never seen on the input
    window_misses: int
    window_unanswered: int
    since_last_input_s: float | None
    since_last_output_s: float | None
    since_first_input_s: float | None


class StampMatcher:
    """One watched input/output pair."""

    def __init__(self, input_topic: str, output_topic: str, budget_ms: float, window_s: float, expire_s: float,
                 start: float) -> None:
        self.input_topic, self.output_topic = input_topic, output_topic
        self.budget_ms, self.window_s, self.expire_s, self.start = budget_ms, window_s, expire_s, start
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, float] = OrderedDict()  # stamp ns -> input received
        self._in_times: deque[float] = deque()
        self._out_times: deque[float] = deque()
        self._matches: deque[tuple[float, float, float]] = deque()  # (time, latency_ms, delay_ms)
        self._miss_times: deque[float] = deque()
        self._unanswered_times: deque[float] = deque()
        self.inputs = self.outputs = self.matched = self.misses = self.unanswered = self.unmatched_outputs = 0
        self._last_in: float | None = None
        self._first_in: float | None = None
        self._last_out: float | None = None

    def on_input(self, stamp_ns: int, now: float) -> None:
        with self._lock:
            self.inputs += 1
            self._last_in = now
            if self._first_in is None:
                self._first_in = now
            self._in_times.append(now)
            self._pending[stamp_ns] = now
            self._pending.move_to_end(stamp_ns)
            while len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)
                self._count_unanswered(now)
            self._expire(now)

    def on_output(self, stamp_ns: int, now: float) -> float | None:
        """Record an output; return its end-to-end latency in ms when it matched an input."""
        with self._lock:
            self.outputs += 1
            self._last_out = now
            self._out_times.append(now)
            received = self._pending.pop(stamp_ns, None)
            if received is None:
                self.unmatched_outputs += 1
                return None
            self.matched += 1
            latency_ms = (now - stamp_ns / 1e9) * 1e3
            self._matches.append((now, latency_ms, (now - received) * 1e3))
            if latency_ms > self.budget_ms:
                self.misses += 1
                self._miss_times.append(now)
            self._expire(now)
            return latency_ms

    def _count_unanswered(self, now: float) -> None:
        self.unanswered += 1
        self._unanswered_times.append(now)

    def _expire(self, now: float) -> None:
        while self._pending:
            stamp, received = next(iter(self._pending.items()))
            if now - received <= self.expire_s:
                break
            del self._pending[stamp]
            self._count_unanswered(now)
        start = now - self.window_s
        for times in (self._in_times, self._out_times, self._miss_times, self._unanswered_times):
            while times and times[0] < start:
                times.popleft()
        while self._matches and self._matches[0][0] < start:
            self._matches.popleft()

    def snapshot(self, now: float) -> PairSnapshot:
        with self._lock:
            self._expire(now)
            span = max(min(self.window_s, now - self.start), 1e-9)
            return PairSnapshot(
                input_topic=self.input_topic,
                output_topic=self.output_topic,
                budget_ms=self.budget_ms,
                input_rate_hz=len(self._in_times) / span,
                output_rate_hz=len(self._out_times) / span,
                latency_ms=percentiles([m[1] for m in self._matches]),
                delay_ms=percentiles([m[2] for m in self._matches]),
                inputs=self.inputs,
                outputs=self.outputs,
                matched=self.matched,
                misses=self.misses,
                unanswered=self.unanswered,
                unmatched_outputs=self.unmatched_outputs,
                window_misses=len(self._miss_times),
                window_unanswered=len(self._unanswered_times),
                since_last_input_s=None if self._last_in is None else now - self._last_in,
                since_last_output_s=None if self._last_out is None else now - self._last_out,
                since_first_input_s=None if self._first_in is None else now - self._first_in,
            )


def pair_level(snap: PairSnapshot, stall_s: float) -> tuple[int, str]:
    """(diagnostic level, message): ERROR when inputs flow but no output came for stall_s, WARN on misses or
    unanswered inputs in the window, else OK."""
    from ocl_infer.ros.diagnostics import ERROR, OK, WARN

    inputs_flow = snap.since_last_input_s is not None and snap.since_last_input_s < stall_s
    out_age = snap.since_last_output_s
    if inputs_flow and out_age is None and (snap.since_first_input_s or 0.0) > stall_s:
        return ERROR, f"no output in {snap.since_first_input_s:.1f} s while {snap.input_topic} is live"
    if inputs_flow and out_age is not None and out_age > stall_s:
        return ERROR, f"no output for {out_age:.1f} s while {snap.input_topic} is live"
    causes = []
    if snap.window_misses:
        causes.append(f"{snap.window_misses} over the {snap.budget_ms:g} ms budget")
    if snap.window_unanswered:
        causes.append(f"{snap.window_unanswered} inputs without output")
    if causes:
        return WARN, "; ".join(causes)
    p95 = snap.latency_ms["p95"]
    return OK, "no traffic" if snap.inputs == 0 else f"p95 latency {p95:.1f} ms (budget {snap.budget_ms:g} ms)"
