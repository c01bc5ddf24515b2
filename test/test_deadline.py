"""The deadline rules (ocl_infer.deadline) on their own: no node, no clock, no DDS."""

import re
from pathlib import Path

import pytest

from ocl_infer.bag.report import DROPPED, ERRORS, OUTCOMES, PROCESSED, frame_counts, frame_outcomes
from ocl_infer.deadline import FramePolicy, Outcome, Verdict, input_gap_due, outcome_word
from ocl_infer.errors import ConfigError
from ocl_infer.ros.options import NodeOptions

ROOT = Path(__file__).resolve().parent.parent
FRAME_TIMING = ROOT / "msgs" / "ocl_infer_msgs" / "msg" / "FrameTiming.msg"


def test_outcomes_are_the_frame_timing_constants_both_ways():
    # Read from the .msg text, so the check holds without the built message package.
    constants = {name.lower(): int(value) for name, value in
                 re.findall(r"^uint8 OUTCOME_([A-Z_]+) = (\d+)$", FRAME_TIMING.read_text(), re.M)}
    assert constants == {o.word: o.value for o in Outcome}


def test_outcome_words_and_kinds():
    assert Outcome.STALE_DROP.word == "stale_drop"
    assert [o for o in Outcome if o.processed] == [Outcome.PUBLISHED, Outcome.MISS]
    assert [o for o in Outcome if o.dropped] == [Outcome.STALE_DROP, Outcome.OVERLOAD_DROP]
    assert [o for o in Outcome if o.error] == [Outcome.DECODE_ERROR, Outcome.INFERENCE_ERROR]
    assert outcome_word(3) == "miss" and outcome_word(b"\x02"[0]) == "overload_drop"
    assert outcome_word(9) == "outcome_9"  # a newer node's outcome stays readable


def test_stale_drop_only_strictly_over_the_budget():
    policy = FramePolicy(deadline_ms=100.0)
    assert policy.at_start(100.0) is None
    assert policy.at_start(0.0) is None
    stale = policy.at_start(131.04)
    assert stale == Verdict(Outcome.STALE_DROP, publish=False, detail="age 131.0 ms at start > deadline 100 ms")


def test_on_time_is_published_with_no_detail():
    assert FramePolicy(100.0).at_publish(100.0) == Verdict(Outcome.PUBLISHED, publish=True, detail="")
    assert FramePolicy(100.0, "drop").at_publish(12.5) == Verdict(Outcome.PUBLISHED, publish=True)


@pytest.mark.parametrize(("late_policy", "publish", "detail"), [
    ("publish", True, "latency 139.0 ms > deadline 100 ms"),
    ("drop", False, "latency 139.0 ms > deadline 100 ms; not published (late_policy drop)"),
])
def test_a_miss_is_published_or_withheld_by_late_policy(late_policy, publish, detail):
    verdict = FramePolicy(100.0, late_policy).at_publish(139.0)
    assert verdict == Verdict(Outcome.MISS, publish=publish, detail=detail)


def test_overload_drop_names_the_frame_that_displaced_it():
    assert FramePolicy.overwritten(12) == Verdict(Outcome.OVERLOAD_DROP, False,
                                                  "overwritten by frame 12 before the worker took it")


def test_policy_refuses_what_the_node_options_refuse():
    with pytest.raises(ConfigError, match="parameter late_policy: 'later' is not one of publish, drop"):
        FramePolicy(100.0, "later")
    with pytest.raises(ConfigError, match="parameter deadline_ms"):
        FramePolicy(0.0)
    with pytest.raises(ConfigError, match="parameter deadline_ms"):
        FramePolicy(float("nan"))


def test_node_options_give_the_policy_in_force():
    opts = NodeOptions(deadline_ms=80.0, late_policy="drop")
    assert opts.frame_policy == FramePolicy(80.0, "drop")
    assert opts.updated({"deadline_ms": 50.0}).frame_policy == FramePolicy(50.0, "drop")


def test_input_gap_after_one_full_period_without_a_frame():
    period = 0.15
    assert not input_gap_due(150_000_000, 0, period)  # exactly one period: not yet
    assert input_gap_due(150_000_001, 0, period)
    assert not input_gap_due(10**12, 0, None)  # rate unknown or input_deadline off


def test_the_report_counts_in_the_same_words():
    """The replay report's names come from the same enum: every outcome is processed, dropped or an error."""
    assert {o.value: o.word for o in Outcome} == OUTCOMES
    assert set(PROCESSED) | set(DROPPED) | set(ERRORS) == {*OUTCOMES.values(), "undelivered"}

    class Header:
        def __init__(self, ns: int) -> None:
            self.stamp = type("T", (), {"sec": ns // 10**9, "nanosec": ns % 10**9})()

    class Timing:  # the fields frame_outcomes reads from a deserialized FrameTiming
        def __init__(self, ns: int, outcome: Outcome) -> None:
            self.header, self.camera_topic, self.outcome = Header(ns), "/cam", int(outcome)
            self.latency_ms = self.age_at_start_ms = self.processing_ms = 1.0
            self.deadline_ms, self.device, self.detection_count, self.detections_published = 100.0, "", 0, False
            self.detail = ""

    sent = [("/cam", n) for n in range(1, 8)]
    timings = [Timing(n, o) for n, o in zip(range(1, 7), Outcome, strict=True)]
    outcomes = frame_outcomes(sent, timings)
    assert [o.outcome for o in outcomes] == [*(o.word for o in Outcome), "undelivered"]
    counts = frame_counts(outcomes)
    assert counts["sent"] == 7 and counts["miss"] == 1 and counts["undelivered"] == 1
