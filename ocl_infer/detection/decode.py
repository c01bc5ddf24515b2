"""Raw network outputs → candidate boxes in network-input pixels (before NMS and mapping to the image).

YOLO heads follow Darknet's yolo layer and get_yolo_detections: for anchor a at cell (row j, col i) of an
h×w grid on a W×H input, with s = scale_x_y,
``x = (i + σ(tx)·s − (s − 1)/2) / w · W``, ``y = (j + σ(ty)·s − (s − 1)/2) / h · H``,
``bw = exp(tw) · anchor_w``, ``bh = exp(th) · anchor_h``, objectness ``σ(to)``, class score
``σ(to) · σ(tc)``. A cell is considered only when objectness > threshold, and each (cell, class) pair whose
score > threshold is a candidate, as Darknet prints them (a box may carry several classes).

Decoded layouts (``boxes_scores``, the raw YOLOv8/YOLO11 head among them) give each (box, class) pair whose
score > threshold. End-to-end heads (YOLOv10/YOLO26) give one class per row and need no NMS (`needs_nms`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ocl_infer.detection.description import BoxesScoresHead, EndToEndHead, Head, YoloHead, YoloOutput
from ocl_infer.errors import DetectionError


@dataclass(frozen=True)
class Candidates:
    """M candidates: boxes M×4 xyxy (network-input pixels, float64), scores M, class_ids M (int64)."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    @staticmethod
    def empty() -> Candidates:
        return Candidates(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))

    @staticmethod
    def concat(parts: list[Candidates]) -> Candidates:
        if not parts:
            return Candidates.empty()
        return Candidates(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                          np.concatenate([p.class_ids for p in parts]))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_yolo_output(raw: np.ndarray, out: YoloOutput, net_w: int, net_h: int, class_ids: list[int],
                       threshold: float) -> Candidates:
    """Decode one raw yolo tensor (1×A·(5+C)×h×w or A·(5+C)×h×w) into candidates of the wanted classes."""
    a, c = len(out.anchors), out.classes
    arr = np.asarray(raw)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] != a * (5 + c):
        raise DetectionError(f"output {out.name}: shape {tuple(np.shape(raw))} does not match {a} anchors × "
                             f"(5 + {c} classes) = {a * (5 + c)} channels")
    gh, gw = arr.shape[1:]
    arr = arr.reshape(a, 5 + c, gh, gw)
    obj = sigmoid(arr[:, 4].astype(np.float64))  # A×h×w
    an, jj, ii = np.nonzero(obj > threshold)
    if an.size == 0 or not class_ids:
        return Candidates.empty()
    cell = arr[an, :, jj, ii].astype(np.float64)  # K×(5+C)
    s = out.scale_x_y
    cx = (ii + sigmoid(cell[:, 0]) * s - (s - 1) / 2) / gw * net_w
    cy = (jj + sigmoid(cell[:, 1]) * s - (s - 1) / 2) / gh * net_h
    anchors = np.asarray(out.anchors, np.float64)[an]
    bw = np.exp(cell[:, 2]) * anchors[:, 0]
    bh = np.exp(cell[:, 3]) * anchors[:, 1]
    ids = np.asarray(class_ids, np.int64)
    scores = obj[an, jj, ii][:, None] * sigmoid(cell[:, 5 + ids])  # K×len(ids)
    k, m = np.nonzero(scores > threshold)
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return Candidates(boxes[k], scores[k, m], ids[m])


def _matrix(outputs: dict[str, np.ndarray], name: str, transposed: bool = False) -> np.ndarray:
    """Output `name` as a float64 N×K matrix (leading batch dims of 1 dropped; transposed: stored K×N)."""
    if name not in outputs:
        raise DetectionError(f"model output {name!r} is missing (outputs: {sorted(outputs)})")
    arr = np.asarray(outputs[name], np.float64)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise DetectionError(f"output {name}: shape {np.shape(outputs[name])} is not N×K")
    return arr.T if transposed else arr


def _xyxy_pixels(boxes: np.ndarray, box_format: str, normalized: bool, net_w: int, net_h: int) -> np.ndarray:
    """N×4 boxes in `box_format` (0..1 of the input when `normalized`) → xyxy in network-input pixels."""
    if normalized:
        boxes = boxes * np.array([net_w, net_h, net_w, net_h], np.float64)
    if box_format == "cxcywh":
        cx, cy, w, h = boxes.T
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return boxes


def decode_boxes_scores(outputs: dict[str, np.ndarray], head: BoxesScoresHead, net_w: int, net_h: int,
                        class_ids: list[int], threshold: float, num_classes: int) -> Candidates:
    """Decode an already-decoded layout: boxes N×4 + scores N×C, or one N×(4[+1]+C) tensor."""
    if head.combined:
        t = _matrix(outputs, head.combined, head.transposed)
        extra = 5 if head.objectness else 4
        if t.shape[1] != extra + num_classes:
            raise DetectionError(f"output {head.combined}: {t.shape[1]} columns, expected {extra} + {num_classes}")
        boxes, scores = t[:, :4], t[:, extra:]
        if head.objectness:
            scores = scores * t[:, 4:5]
    else:
        assert head.boxes and head.scores
        boxes = _matrix(outputs, head.boxes, head.transposed)
        scores = _matrix(outputs, head.scores, head.transposed)
        if boxes.shape[1] != 4 or scores.shape[0] != boxes.shape[0] or scores.shape[1] != num_classes:
            raise DetectionError(f"outputs {head.boxes}/{head.scores}: shapes {boxes.shape}/{scores.shape} are not "
                                 f"N×4 / N×{num_classes}")
    boxes = _xyxy_pixels(boxes, head.box_format, head.normalized, net_w, net_h)
    ids = np.asarray(class_ids, np.int64)
    sel = scores[:, ids]
    k, m = np.nonzero(sel > threshold)
    return Candidates(boxes[k], sel[k, m], ids[m])


def decode_end_to_end(outputs: dict[str, np.ndarray], head: EndToEndHead, net_w: int, net_h: int,
                      class_ids: list[int], threshold: float, num_classes: int) -> Candidates:
    """Rows [x1, y1, x2, y2, score, class id] (N×6, a leading batch dim of 1 allowed) → the rows of a wanted
    class with score > threshold, in their order. A class id outside 0..num_classes-1 is an error (the
    description's class list does not match the network)."""
    t = _matrix(outputs, head.output)
    if t.shape[1] != 6:
        raise DetectionError(f"output {head.output}: {t.shape[1]} columns, expected 6 (x1, y1, x2, y2, score, "
                             "class) of an end-to-end head")
    scores, cls = t[:, 4], np.rint(t[:, 5]).astype(np.int64)
    keep = scores > threshold
    bad = cls[keep][(cls[keep] < 0) | (cls[keep] >= num_classes)]
    if bad.size:
        raise DetectionError(f"output {head.output}: class id {int(bad[0])} is outside the model's "
                             f"{num_classes} classes")
    keep &= np.isin(cls, np.asarray(class_ids, np.int64))
    boxes = _xyxy_pixels(t[keep, :4], head.box_format, head.normalized, net_w, net_h)
    return Candidates(boxes, scores[keep], cls[keep])


def decode_outputs(outputs: dict[str, np.ndarray], head: Head, net_w: int, net_h: int, class_ids: list[int],
                   threshold: float, num_classes: int) -> Candidates:
    """Any head kind's raw outputs → candidates of the wanted classes in network-input pixels."""
    if isinstance(head, YoloHead):
        parts = []
        for out in head.outputs:
            if out.name not in outputs:
                raise DetectionError(f"model output {out.name!r} is missing (got {sorted(outputs)})")
            parts.append(decode_yolo_output(outputs[out.name], out, net_w, net_h, class_ids, threshold))
        return Candidates.concat(parts)
    if isinstance(head, EndToEndHead):
        return decode_end_to_end(outputs, head, net_w, net_h, class_ids, threshold, num_classes)
    return decode_boxes_scores(outputs, head, net_w, net_h, class_ids, threshold, num_classes)


def needs_nms(head: Head) -> bool:
    """End-to-end heads keep one box per object already; NMS would only drop true neighbours."""
    return not isinstance(head, EndToEndHead)
