"""An overlay video: the bag's camera frames with the recorded detections drawn on them."""

from pathlib import Path

import cv2
import numpy as np

from ocl_infer.bag.images import decode_image, stamp_ns
from ocl_infer.bag.reader import header_stamp_ns, iter_raw_messages, open_bag
from ocl_infer.bag.report import DETECTIONS_TYPE, OUTCOMES, TIMING_TYPE
from ocl_infer.bag.typestore import CAMERA_TYPES, build_typestore
from ocl_infer.detection.overlay import HELD, LabelledBox, draw_detections
from ocl_infer.errors import BagError


def _boxes(array: object) -> list[LabelledBox]:
    """A recorded Detection2DArray's boxes (centre + size) as corner boxes with their first hypothesis."""
    out = []
    for det in array.detections:  # type: ignore[attr-defined]
        b = det.bbox
        cx, cy, sx, sy = b.center.position.x, b.center.position.y, b.size_x, b.size_y
        label, score = ("?", 0.0)
        if det.results:
            label, score = str(det.results[0].hypothesis.class_id), float(det.results[0].hypothesis.score)
        if det.id:  # a track id (the node's tracking): tagged as on the node's own overlay
            label = f"{label} #{det.id}"
        out.append(LabelledBox(label, score, (cx - sx / 2, cy - sy / 2, cx + sx / 2, cy + sy / 2)))
    return out


def _status_bar(img: np.ndarray, text: str, colour: tuple[int, int, int]) -> None:
    cv2.rectangle(img, (0, 0), (img.shape[1], 26), (25, 25, 25), -1)
    cv2.putText(img, text, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)


def write_overlay_video(
    input_bag: str | Path, output_bag: str | Path, video: str | Path, topic: str | None = None, fps: float = 10.0
) -> int:
    """Draw each recorded Detection2DArray on the input frame with the same stamp, under a status bar with the
    frame's outcome and latency (FrameTiming). A dropped frame shows the last detections, marked as held.
    Writes an MJPG .avi (or .mp4 with mp4v); returns the frame count."""
    store = build_typestore()
    arrays: dict[int, object] = {}
    timings: dict[int, object] = {}
    reader = open_bag(output_bag)
    try:
        for conn, _, raw in reader.messages():
            if conn.msgtype == DETECTIONS_TYPE:
                msg = store.deserialize_cdr(raw, conn.msgtype)
                arrays[stamp_ns(msg.header)] = msg  # type: ignore[attr-defined]
            elif conn.msgtype == TIMING_TYPE:
                msg = store.deserialize_cdr(raw, conn.msgtype)
                timings[stamp_ns(msg.header)] = msg  # type: ignore[attr-defined]
    finally:
        reader.close()
    video = Path(video)
    fourcc = cv2.VideoWriter.fourcc(*("mp4v" if video.suffix.lower() == ".mp4" else "MJPG"))
    writer = None
    n = 0
    held: list[LabelledBox] = []
    reader = open_bag(input_bag)
    try:
        topics = [c.topic for c in reader.connections if c.msgtype in CAMERA_TYPES]
        if not topics:
            raise BagError(f"{input_bag}: no camera topic to draw on")
        total = sum(c.msgcount for c in reader.connections if c.topic == (topic or topics[0]))
        for name, msgtype, _, raw in iter_raw_messages(reader, [topic or topics[0]]):
            frame = decode_image(store.deserialize_cdr(raw, msgtype), msgtype, name)
            stamp = header_stamp_ns(raw)
            array, timing = arrays.get(stamp), timings.get(stamp)
            outcome = OUTCOMES.get(int(timing.outcome), "?") if timing is not None else "undelivered"  # type: ignore[attr-defined]
            if array is not None:
                held = _boxes(array)
                img = draw_detections(frame, held)
            else:
                img = draw_detections(frame, [LabelledBox(d.label + HELD, d.score, d.box) for d in held])
            text = f"frame {n + 1}/{total}  {outcome.replace('_', ' ')}"
            if timing is not None and outcome in ("published", "miss"):
                text += f"  latency {timing.latency_ms:.0f} ms / budget {timing.deadline_ms:g} ms"  # type: ignore[attr-defined]
                text += f"  {len(held)} vehicle(s)"
            colour = (90, 220, 90) if outcome == "published" else (80, 80, 240)
            _status_bar(img, text, colour)
            if writer is None:
                writer = cv2.VideoWriter(str(video), fourcc, fps, (img.shape[1], img.shape[0]))
                if not writer.isOpened():
                    raise BagError(f"{video}: OpenCV cannot write this video (try .avi)")
            writer.write(img)
            n += 1
    finally:
        reader.close()
        if writer is not None:
            writer.release()
    return n
