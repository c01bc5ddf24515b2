"""The deadline rules of one camera frame, without ROS: what happened to it (`Outcome`) and why.

The words are those of docs/ros.md ("One frame, and the deadline words"):
- **overload drop**: a frame overwritten in its camera's latest-slot before a worker took it;
- **stale drop**: a frame whose `age_at_start` already exceeds `deadline_ms` (strictly greater) when a worker
  takes it: never processed;
- **miss**: a processed frame whose `latency` exceeds `deadline_ms`; `late_policy` says whether its detections
  are published anyway (`publish`) or withheld (`drop`);
- **input gap**: one input-deadline period that passed without a frame (the watchdog's rule, `input_gap_due`).

One `Outcome` enum serves the node (it decides with `FramePolicy`), the FrameTiming message (its values are
FrameTiming's OUTCOME_* constants; a test checks) and the replay report (`Outcome.word` names them). Why here
and not in `ros/`: the rules are plain arithmetic on timing points, testable without a node, and `bag/` (the
report, which never imports rclpy) needs the same names. Nothing here imports ROS; of ocl_infer only `errors`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ocl_infer.errors import ConfigError

LATE_POLICIES = ("publish", "drop")


class Outcome(enum.IntEnum):
    """What happened to one frame. The values are ocl_infer_msgs/FrameTiming's OUTCOME_* constants."""

    PUBLISHED = 0  # processed, latency within deadline_ms, detections published
    STALE_DROP = 1
    OVERLOAD_DROP = 2
    MISS = 3
    DECODE_ERROR = 4
    INFERENCE_ERROR = 5

    @property
    def word(self) -> str:
        """The deadline word used in diagnostics, the replay report and the docs, e.g. 'stale_drop'."""
        return self.name.lower()

    @property
    def processed(self) -> bool:
        """The detector ran on the frame to the end (its latency is known)."""
        return self in (Outcome.PUBLISHED, Outcome.MISS)

    @property
    def dropped(self) -> bool:
        """The node chose not to process the frame (it was too old, or a newer one displaced it)."""
        return self in (Outcome.STALE_DROP, Outcome.OVERLOAD_DROP)

    @property
    def error(self) -> bool:
        return self in (Outcome.DECODE_ERROR, Outcome.INFERENCE_ERROR)


def outcome_word(value: int) -> str:
    """The word for a FrameTiming.outcome value; an unknown value (a newer node) stays readable."""
    try:
        return Outcome(int(value)).word
    except ValueError:
        return f"outcome_{int(value)}"


@dataclass(frozen=True)
class Verdict:
    """The policy's answer for one frame: its outcome, whether its detections go out, and why (empty when the
    frame was published on time)."""

    outcome: Outcome
    publish: bool = False
    detail: str = ""


@dataclass(frozen=True)
class FramePolicy:
    """The rules one frame is judged by: its end-to-end budget and what to do with a miss.

    The node builds one per frame from the options in force when a worker takes it (so a live change of
    deadline_ms or late_policy holds from the next frame) and asks it at each step."""

    deadline_ms: float
    late_policy: str = "publish"

    def __post_init__(self) -> None:
        if not self.deadline_ms > 0:  # also refuses NaN
            raise ConfigError(f"parameter deadline_ms: must be > 0, got {self.deadline_ms!r}")
        if self.late_policy not in LATE_POLICIES:
            raise ConfigError(f"parameter late_policy: {self.late_policy!r} is not one of {', '.join(LATE_POLICIES)}")

    @staticmethod
    def overwritten(by_sequence: int) -> Verdict:
        """A newer frame (`by_sequence`) took this frame's place in the latest-slot: an overload drop."""
        return Verdict(Outcome.OVERLOAD_DROP, detail=f"overwritten by frame {by_sequence} before the worker took it")

    def at_start(self, age_at_start_ms: float) -> Verdict | None:
        """A worker took the frame `age_at_start_ms` after its stamp: a stale drop when that already exceeds the
        budget, else None (process it)."""
        if age_at_start_ms > self.deadline_ms:
            return Verdict(Outcome.STALE_DROP,
                           detail=f"age {age_at_start_ms:.1f} ms at start > deadline {self.deadline_ms:g} ms")
        return None

    def at_publish(self, latency_ms: float) -> Verdict:
        """The detections are ready `latency_ms` after the stamp: published on time, or a miss that late_policy
        publishes or withholds."""
        if latency_ms <= self.deadline_ms:
            return Verdict(Outcome.PUBLISHED, publish=True)
        publish = self.late_policy == "publish"
        detail = f"latency {latency_ms:.1f} ms > deadline {self.deadline_ms:g} ms"
        return Verdict(Outcome.MISS, publish=publish, detail=detail if publish else
                       f"{detail}; not published (late_policy drop)")


def input_gap_due(now_ns: int, last_ns: int, period_s: float | None) -> bool:
    """The watchdog's rule: one input gap when a full input-deadline period passed since the last frame (or the
    last gap counted), as a DDS deadline-missed event would count it. `period_s` None: gaps are not watched."""
    return period_s is not None and now_ns - last_ns > period_s * 1e9
