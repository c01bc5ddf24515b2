"""Detections, timings and overlays -> ROS messages (vision_msgs, ocl_infer_msgs, sensor_msgs).

Pure functions over message classes: usable without a running node. A frame's outcome is an
`ocl_infer.deadline.Outcome`, whose values are the OUTCOME_* constants of ocl_infer_msgs/FrameTiming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ocl_infer.deadline import Outcome, Verdict

NS = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> nanoseconds."""
    return int(stamp.sec) * NS + int(stamp.nanosec)


def time_msg(ns: int) -> Any:
    """nanoseconds -> builtin_interfaces/Time (0 stays 0: "not reached")."""
    from builtin_interfaces.msg import Time

    ns = max(int(ns), 0)
    return Time(sec=ns // NS, nanosec=ns % NS)


def detections_to_msg(detections: Sequence[Any], header: Any, ids: Sequence[str] | None = None) -> Any:
    """vision_msgs/Detection2DArray: the image's header, class_id = label, score, box centre/size in pixels;
    `ids` (one per detection: its track id, '' for none) fills Detection2D.id."""
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    out = Detection2DArray(header=header)
    for i, det in enumerate(detections):
        x1, y1, x2, y2 = (float(v) for v in det.box)
        d = Detection2D(header=header)
        if ids is not None:
            d.id = ids[i]
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = str(det.label)
        hyp.hypothesis.score = float(det.score)
        d.results.append(hyp)
        d.bbox.center.position.x = (x1 + x2) / 2.0
        d.bbox.center.position.y = (y1 + y2) / 2.0
        d.bbox.size_x = x2 - x1
        d.bbox.size_y = y2 - y1
        out.detections.append(d)
    return out


def label_info_msg(class_names: Sequence[str], threshold: float, stamp: Any) -> Any:
    """vision_msgs/LabelInfo: one VisionClass (class_id = the model's class index, class_name = its name) per
    class of the model, and the score threshold. A detection's `class_id` string is the `class_name` here."""
    from vision_msgs.msg import LabelInfo, VisionClass

    msg = LabelInfo(class_map=[VisionClass(class_id=i, class_name=str(name)) for i, name in enumerate(class_names)],
                    threshold=float(threshold))
    msg.header.stamp = stamp
    return msg


def msg_to_boxes(msg: Any) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    """(label, score, x1 y1 x2 y2) per detection of a Detection2DArray: the inverse of detections_to_msg."""
    out = []
    for d in msg.detections:
        cx, cy = d.bbox.center.position.x, d.bbox.center.position.y
        w, h = d.bbox.size_x, d.bbox.size_y
        hyp = d.results[0].hypothesis
        out.append((hyp.class_id, hyp.score, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
    return out


@dataclass
class FrameRecord:
    """Everything FrameTiming says about one frame; times in node-clock nanoseconds, 0 = not reached."""

    header: Any
    camera_topic: str
    sequence: int
    received_ns: int
    deadline_ms: float
    outcome: Outcome = Outcome.PUBLISHED
    device: str = ""
    detections_published: bool = False
    detail: str = ""
    started_ns: int = 0
    inferred_ns: int = 0
    published_ns: int = 0
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0
    detection_count: int = 0

    def settle(self, verdict: Verdict) -> None:
        """Record the deadline policy's verdict on this frame."""
        self.outcome = verdict.outcome
        self.detail = verdict.detail
        self.detections_published = verdict.publish

    @property
    def stamp_ns(self) -> int:
        """The image stamp; a zero stamp (camera without a clock) falls back to `received`."""
        stamp = stamp_to_ns(self.header.stamp)
        return stamp if stamp else self.received_ns

    @property
    def age_at_start_ms(self) -> float:
        return (self.started_ns - self.stamp_ns) / 1e6 if self.started_ns else 0.0

    @property
    def processing_ms(self) -> float:
        return (self.published_ns - self.started_ns) / 1e6 if self.published_ns and self.started_ns else 0.0

    @property
    def latency_ms(self) -> float:
        return (self.published_ns - self.stamp_ns) / 1e6 if self.published_ns else 0.0


def timing_msg(record: FrameRecord) -> Any:
    """ocl_infer_msgs/FrameTiming from a FrameRecord."""
    from ocl_infer_msgs.msg import FrameTiming

    msg = FrameTiming()
    msg.header = record.header
    msg.camera_topic = record.camera_topic
    msg.sequence = record.sequence
    msg.device = record.device
    msg.outcome = int(record.outcome)
    msg.detections_published = record.detections_published
    msg.detail = record.detail
    msg.received = time_msg(record.received_ns)
    msg.started = time_msg(record.started_ns)
    msg.inferred = time_msg(record.inferred_ns)
    msg.published = time_msg(record.published_ns)
    msg.age_at_start_ms = record.age_at_start_ms
    msg.preprocess_ms = record.preprocess_ms
    msg.inference_ms = record.inference_ms
    msg.postprocess_ms = record.postprocess_ms
    msg.processing_ms = record.processing_ms
    msg.latency_ms = record.latency_ms
    msg.deadline_ms = record.deadline_ms
    msg.detection_count = record.detection_count
    return msg
