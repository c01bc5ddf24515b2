"""Per-class non-maximum suppression, vectorised over boxes (Darknet's do_nms_sort rule: drop IoU > thresh)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box (4,) with N xyxy boxes (N, 4); zero-area unions give 0."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xyxy boxes (the scalar form, for matching detections between runs); zero-area unions give 0."""
    return float(iou_one_to_many(np.asarray(a, np.float64), np.asarray([b], np.float64))[0])


def nms_per_class(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the kept boxes, best score first. boxes: N×4 xyxy; scores, class_ids: N.

    Classes never suppress each other: each class's boxes are shifted into their own region of the plane,
    so one greedy pass handles all classes at once.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, np.int64)
    boxes = np.asarray(boxes, np.float64)
    span = float(boxes.max() - boxes.min()) + 1.0
    shifted = boxes + (np.asarray(class_ids, np.float64) * 2 * span)[:, None]
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[iou_one_to_many(shifted[i], shifted[rest]) <= iou_threshold]
    return np.asarray(keep, np.int64)
