"""The ByteTrack-style tracker on synthetic moving boxes: stable ids, coasting through missed frames, the
low-score second association, and no id for a one-frame false positive."""

import pytest

from ocl_infer.detection.detector import Detection
from ocl_infer.detection.tracking import Tracker, TrackerOptions
from ocl_infer.errors import ConfigError


def car(x: float, y: float, score: float = 0.9, w: float = 60.0, h: float = 40.0) -> Detection:
    return Detection(2, "car", score, (x, y, x + w, y + h))


def ids(tracked: list) -> list:
    return [tid for _, tid in tracked]


def test_two_cars_passing_each_other_keep_their_ids():
    tracker = Tracker()
    seen: dict[int, set] = {0: set(), 1: set()}
    for f in range(40):  # 10 Hz: one car drives right at 150 px/s, the other left, crossing at f = 20
        t = f / 10
        a, b = car(100 + 15 * f, 200), car(700 - 15 * f, 215)
        out = tracker.update([a, b], t)
        if f == 0:
            assert ids(out) == [None, None]  # a new track gets its id on its second frame
            continue
        by_box = {d.box: tid for d, tid in out}
        seen[0].add(by_box[a.box])
        seen[1].add(by_box[b.box])
    assert len(seen[0]) == 1 and len(seen[1]) == 1 and seen[0] != seen[1], seen


def test_a_car_missed_for_a_few_frames_keeps_its_id_and_a_longer_gap_ends_the_track():
    tracker = Tracker(TrackerOptions(max_age=3))
    for f in range(5):
        first = tracker.update([car(100 + 10 * f, 100)], f / 10)
    tid = first[0][1]
    for f in range(5, 8):  # three frames without the car: it coasts at 100 px/s
        assert tracker.update([], f / 10) == []
    assert ids(tracker.update([car(180, 100)], 0.8)) == [tid]
    for f in range(9, 13):
        tracker.update([], f / 10)
    tracker.update([car(220, 100)], 1.3)
    assert ids(tracker.update([car(230, 100)], 1.4)) == [tid + 1]  # four misses > max_age: a new vehicle


def test_low_scores_continue_a_track_but_start_none():
    tracker = Tracker()
    for f in range(3):
        tid = tracker.update([car(100, 100)], f / 10)[0][1]
    got = tracker.update([car(101, 100, score=0.3), car(400, 300, score=0.3)], 0.3)
    assert ids(got) == [tid] and got[0][0].score == 0.3  # the stray low-score box is dropped
    one_frame = tracker.update([car(100, 100), car(500, 50)], 0.4)
    assert ids(one_frame) == [tid, None]
    assert ids(tracker.update([car(100, 100)], 0.5)) == [tid]  # the false positive never got an id


def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match="high_score"):
        TrackerOptions(high_score=1.5)
    with pytest.raises(ConfigError, match="min_hits"):
        TrackerOptions(min_hits=0)
