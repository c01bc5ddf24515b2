"""Replay report maths: per-frame outcomes from FrameTiming, counts that add up, latency percentiles.

Inputs are what a replay sent (camera topic, header stamp) and what it recorded (FrameTiming and
Detection2DArray, as rosbags message objects). Every sent frame gets exactly one outcome:
published (on time), miss (processed late), stale_drop, overload_drop, decode_error, inference_error, or
undelivered (no FrameTiming came back: the frame never reached the node, e.g. overwritten in a depth-1 DDS reader
history at --max-speed, or the node died). So
``sent == processed + dropped + errors`` with ``processed = published + miss`` and
``dropped = stale_drop + overload_drop + undelivered``.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ocl_infer.bag.images import stamp_ns
from ocl_infer.bag.reader import open_bag
from ocl_infer.bag.typestore import build_typestore
from ocl_infer.deadline import Outcome, outcome_word

# FrameTiming.outcome values -> report names: the node's own outcomes (ocl_infer.deadline), plus `undelivered`,
# which only the report knows (no FrameTiming came back).
OUTCOMES = {o.value: o.word for o in Outcome}
UNDELIVERED = "undelivered"
PROCESSED = tuple(o.word for o in Outcome if o.processed)
DROPPED = (*(o.word for o in Outcome if o.dropped), UNDELIVERED)
ERRORS = tuple(o.word for o in Outcome if o.error)
TIMING_TYPE = "ocl_infer_msgs/msg/FrameTiming"
DETECTIONS_TYPE = "vision_msgs/msg/Detection2DArray"


@dataclass(frozen=True)
class FrameOutcome:
    camera: str
    stamp_ns: int
    outcome: str
    latency_ms: float | None = None  # processed frames only
    age_at_start_ms: float | None = None
    processing_ms: float | None = None
    deadline_ms: float | None = None
    device: str = ""
    detection_count: int = 0
    detections_published: bool = False
    batch: int = 1  # frames run together with this one (the node's "batch of N" in FrameTiming.detail)


LEVELS = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


@dataclass
class RecordedOutputs:
    timings: list[tuple[str, object]]  # (topic, FrameTiming)
    detections: list[tuple[str, object]]  # (topic, Detection2DArray)
    diagnostics: int
    # status name → (worst level seen, the message it came with)
    worst_status: dict[str, tuple[int, str]] = field(default_factory=dict)


def _level(raw: object) -> int:
    return raw[0] if isinstance(raw, bytes | bytearray) else int(raw)  # type: ignore[call-overload]


def read_outputs(bag: str | Path, diagnostics_until_ns: int | None = None) -> RecordedOutputs:
    """FrameTiming and Detection2DArray messages (deserialized) and the /diagnostics count of an output bag.

    The worst level per diagnostic status counts only arrays stamped up to `diagnostics_until_ns` (the last
    frame sent): after the bag's end a node rightly reports its camera as stalled, which says nothing about
    the run.
    """
    store = build_typestore()
    reader = open_bag(bag)
    out = RecordedOutputs([], [], 0)
    try:
        for conn, _, raw in reader.messages():
            if conn.msgtype == TIMING_TYPE:
                out.timings.append((conn.topic, store.deserialize_cdr(raw, conn.msgtype)))
            elif conn.msgtype == DETECTIONS_TYPE:
                out.detections.append((conn.topic, store.deserialize_cdr(raw, conn.msgtype)))
            elif conn.topic == "/diagnostics":
                out.diagnostics += 1
                array = store.deserialize_cdr(raw, conn.msgtype)
                if diagnostics_until_ns is not None and stamp_ns(array.header) > diagnostics_until_ns:  # type: ignore[attr-defined]
                    continue
                for status in array.status:  # type: ignore[attr-defined]
                    level = _level(status.level)
                    if level >= out.worst_status.get(status.name, (-1, ""))[0]:
                        out.worst_status[status.name] = (level, str(status.message))
    finally:
        reader.close()
    return out


def frame_outcomes(sent: Sequence[tuple[str, int]], timings: Iterable[object]) -> list[FrameOutcome]:
    """One outcome per sent frame, in send order, matched by (camera topic, header stamp).

    A FrameTiming whose camera_topic matches no sent topic (an external node with other remappings) is matched
    by stamp alone. Frames with no FrameTiming are `undelivered`.
    """
    sent_topics = {t for t, _ in sent}
    by_key: dict[tuple[str, int], object] = {}
    by_stamp: dict[int, object] = {}
    for msg in timings:
        stamp = stamp_ns(msg.header)  # type: ignore[attr-defined]
        topic = str(msg.camera_topic)  # type: ignore[attr-defined]
        if topic in sent_topics:
            by_key.setdefault((topic, stamp), msg)
        else:
            by_stamp.setdefault(stamp, msg)
    result = []
    for topic, stamp in sent:
        msg = by_key.pop((topic, stamp), None) or by_stamp.pop(stamp, None)
        if msg is None:
            result.append(FrameOutcome(topic, stamp, UNDELIVERED))
            continue
        m = msg  # rosbags FrameTiming
        outcome = outcome_word(m.outcome)  # type: ignore[attr-defined]
        processed = outcome in PROCESSED
        result.append(
            FrameOutcome(
                camera=topic,
                stamp_ns=stamp,
                outcome=outcome,
                latency_ms=float(m.latency_ms) if processed else None,  # type: ignore[attr-defined]
                age_at_start_ms=float(m.age_at_start_ms) if processed else None,  # type: ignore[attr-defined]
                processing_ms=float(m.processing_ms) if processed else None,  # type: ignore[attr-defined]
                deadline_ms=float(m.deadline_ms),  # type: ignore[attr-defined]
                device=str(m.device),  # type: ignore[attr-defined]
                detection_count=int(m.detection_count),  # type: ignore[attr-defined]
                detections_published=bool(m.detections_published),  # type: ignore[attr-defined]
                batch=batch_size(str(m.detail)),  # type: ignore[attr-defined]
            )
        )
    return result


def batch_size(detail: str) -> int:
    """How many frames ran together, from a FrameTiming detail ('...; batch of 2'); 1 when it does not say."""
    _, found, rest = detail.partition("batch of ")
    number = rest.split(";")[0].strip()
    return int(number) if found and number.isdigit() else 1


def latency_stats(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max/mean in ms (linear-interpolated percentiles); None values when there is no sample."""
    if not latencies_ms:
        return dict.fromkeys(("p50", "p95", "p99", "max", "mean"))
    a = np.asarray(latencies_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(a.max()), "mean": float(a.mean())}


def frame_counts(outcomes: Sequence[FrameOutcome]) -> dict[str, int]:
    c = Counter(o.outcome for o in outcomes)
    counts = {
        "sent": len(outcomes),
        "processed": sum(c[k] for k in PROCESSED),
        "dropped": sum(c[k] for k in DROPPED),
        "errors": sum(c[k] for k in ERRORS),
    }
    counts.update({k: c[k] for k in (*PROCESSED, *DROPPED, *ERRORS)})
    counts["deadline_misses"] = c["miss"]
    return counts


def detection_classes(detections: Iterable[tuple[str, object]]) -> tuple[dict[str, int], int]:
    """(count per class of the top hypothesis of each detection, number of Detection2DArray messages)."""
    per_class: Counter[str] = Counter()
    arrays = 0
    for _, array in detections:
        arrays += 1
        for det in array.detections:  # type: ignore[attr-defined]
            if det.results:
                per_class[str(det.results[0].hypothesis.class_id)] += 1
            else:
                per_class["(no class)"] += 1
    return dict(per_class.most_common()), arrays


def build_report(
    sent: Sequence[tuple[str, int]], outputs: RecordedOutputs, meta: dict[str, object] | None = None
) -> dict[str, object]:
    """The replay report as a JSON-ready dict (see the module docstring for the counting rules)."""
    outcomes = frame_outcomes(sent, (m for _, m in outputs.timings))
    processed = [o for o in outcomes if o.outcome in PROCESSED]
    deadlines = Counter(o.deadline_ms for o in outcomes if o.deadline_ms)  # 0: not set on that frame
    per_class, arrays = detection_classes(outputs.detections)
    cameras = {}
    for cam in dict.fromkeys(o.camera for o in outcomes):
        mine = [o for o in outcomes if o.camera == cam]
        cameras[cam] = {
            "frames": frame_counts(mine),
            "latency_ms": latency_stats([o.latency_ms for o in mine if o.latency_ms is not None]),
            "batch_sizes": dict(sorted(Counter(o.batch for o in mine if o.outcome in PROCESSED).items())),
        }
    return {
        **(meta or {}),
        "deadline_ms": deadlines.most_common(1)[0][0] if deadlines else None,
        "frames": frame_counts(outcomes),
        "latency_ms": latency_stats([o.latency_ms for o in processed if o.latency_ms is not None]),
        "detections": {
            "arrays": arrays,
            "total": sum(per_class.values()),
            "frames_with_detections": sum(1 for _, a in outputs.detections if a.detections),  # type: ignore[attr-defined]
            "per_class": per_class,
        },
        "devices": dict(Counter(o.device for o in processed if o.device).most_common()),
        "cameras": cameras,
        "diagnostics_messages": outputs.diagnostics,
        "diagnostics_worst": {
            name: {"level": LEVELS.get(level, str(level)), "message": message}
            for name, (level, message) in sorted(outputs.worst_status.items())
        },
        "per_frame": [asdict(o) for o in outcomes],
    }


def _ms(v: object) -> str:
    return "-" if v is None else f"{v:.1f}"


def format_summary(report: dict[str, object]) -> str:
    """A short table for the terminal."""
    f: dict = report["frames"]  # type: ignore[assignment]
    lat: dict = report["latency_ms"]  # type: ignore[assignment]
    det: dict = report["detections"]  # type: ignore[assignment]
    budget = report.get("deadline_ms")
    lines = [
        f"frames    sent {f['sent']}  processed {f['processed']}  dropped {f['dropped']} "
        f"(stale {f['stale_drop']}, overload {f['overload_drop']}, undelivered {f['undelivered']})  "
        f"errors {f['errors']}",
        f"deadline  {_ms(budget)} ms: {f['published']} on time, {f['deadline_misses']} missed",
        f"latency   p50 {_ms(lat['p50'])}  p95 {_ms(lat['p95'])}  p99 {_ms(lat['p99'])}  max {_ms(lat['max'])} ms",
    ]
    classes = ", ".join(f"{k} {v}" for k, v in det["per_class"].items()) or "none"
    lines.append(f"detected  {det['total']} objects in {det['frames_with_detections']} frames: {classes}")
    devices = report.get("devices") or {}
    lines.append("devices   " + (", ".join(f"{k}: {v} frames" for k, v in devices.items()) or "none"))  # type: ignore[union-attr]
    worst: dict = report.get("diagnostics_worst") or {}  # type: ignore[assignment]
    bad = {k: v for k, v in worst.items() if v["level"] != "OK"}
    if worst:
        lines.append(
            "diagnose  " + ("all OK" if not bad else "; ".join(f"{v['level']} {k}: {v['message']}" for k, v in
                                                               list(bad.items())[:3]))
        )
    cams: dict = report.get("cameras") or {}  # type: ignore[assignment]
    if len(cams) > 1:
        for cam, c in cams.items():
            cf, cl = c["frames"], c["latency_ms"]
            lines.append(
                f"  {cam}: sent {cf['sent']} processed {cf['processed']} dropped {cf['dropped']} "
                f"missed {cf['deadline_misses']} p50 {_ms(cl['p50'])} ms  batches "
                + (", ".join(f"{n}: {k}" for n, k in c.get("batch_sizes", {}).items()) or "-")
            )
    return "\n".join(lines)
