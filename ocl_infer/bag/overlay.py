"""An overlay video: the bag's camera frames with the recorded detections drawn on them."""

from pathlib import Path

import cv2
import numpy as np

from ocl_infer.bag.images import decode_image, stamp_ns
from ocl_infer.bag.reader import header_stamp_ns, iter_raw_messages, open_bag
from ocl_infer.bag.report import DETECTIONS_TYPE
from ocl_infer.bag.typestore import CAMERA_TYPES, build_typestore
from ocl_infer.errors import BagError

COLOURS = [(0, 200, 255), (60, 200, 60), (255, 120, 40), (200, 60, 220), (40, 40, 230), (220, 220, 40)]


def _boxes(array: object) -> list[tuple[str, float, tuple[int, int, int, int]]]:
    out = []
    for det in array.detections:  # type: ignore[attr-defined]
        b = det.bbox
        cx, cy, sx, sy = b.center.position.x, b.center.position.y, b.size_x, b.size_y
        label, score = ("?", 0.0)
        if det.results:
            label, score = str(det.results[0].hypothesis.class_id), float(det.results[0].hypothesis.score)
        out.append((label, score, (int(cx - sx / 2), int(cy - sy / 2), int(cx + sx / 2), int(cy + sy / 2))))
    return out


def draw_detections(frame: np.ndarray, boxes: list[tuple[str, float, tuple[int, int, int, int]]]) -> np.ndarray:
    img = frame.copy()
    for label, score, (x1, y1, x2, y2) in boxes:
        colour = COLOURS[sum(map(ord, label)) % len(COLOURS)]
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
        text = f"{label} {score:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(img, (x1, max(0, y1 - th - 6)), (x1 + tw + 4, max(th + 6, y1)), colour, -1)
        cv2.putText(img, text, (x1 + 2, max(th + 2, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def write_overlay_video(
    input_bag: str | Path, output_bag: str | Path, video: str | Path, topic: str | None = None, fps: float = 10.0
) -> int:
    """Draw each recorded Detection2DArray on the input frame with the same stamp; frames without one (dropped)
    are shown with a "dropped" tag. Writes an MJPG .avi (or .mp4 with mp4v); returns the frame count."""
    store = build_typestore()
    arrays: dict[int, object] = {}
    reader = open_bag(output_bag)
    try:
        for conn, _, raw in reader.messages():
            if conn.msgtype == DETECTIONS_TYPE:
                msg = store.deserialize_cdr(raw, conn.msgtype)
                arrays[stamp_ns(msg.header)] = msg  # type: ignore[attr-defined]
    finally:
        reader.close()
    video = Path(video)
    fourcc = cv2.VideoWriter.fourcc(*("mp4v" if video.suffix.lower() == ".mp4" else "MJPG"))
    writer = None
    n = 0
    reader = open_bag(input_bag)
    try:
        topics = [c.topic for c in reader.connections if c.msgtype in CAMERA_TYPES]
        if not topics:
            raise BagError(f"{input_bag}: no camera topic to draw on")
        for _topic, msgtype, _, raw in iter_raw_messages(reader, [topic or topics[0]]):
            frame = decode_image(store.deserialize_cdr(raw, msgtype), msgtype, _topic)
            array = arrays.get(header_stamp_ns(raw))
            if array is None:
                img = frame.copy()
                cv2.putText(img, "dropped", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (40, 40, 230), 2, cv2.LINE_AA)
            else:
                img = draw_detections(frame, _boxes(array))
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
