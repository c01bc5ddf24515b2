"""Raw network outputs → candidate boxes in network-input pixels (before NMS and mapping to the image).

YOLO heads follow Darknet's yolo layer and get_yolo_detections: for anchor a at cell (row j, col i) of an
h×w grid on a W×H input, with s = scale_x_y,
``x = (i + σ(tx)·s − (s − 1)/2) / w · W``, ``y = (j + σ(ty)·s − (s − 1)/2) / h · H``,
``bw = exp(tw) · anchor_w``, ``bh = exp(th) · anchor_h``, objectness ``σ(to)``, class score
``σ(to) · σ(tc)``. A cell is considered only when objectness > threshold, and each (cell, class) pair whose
score > threshold is a candidate, as Darknet prints them (a box may carry several classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ocl_infer.detection.description import BoxesScoresHead, YoloOutput
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


def decode_boxes_scores(outputs: dict[str, np.ndarray], head: BoxesScoresHead, net_w: int, net_h: int,
                        class_ids: list[int], threshold: float, num_classes: int) -> Candidates:
    """Decode an already-decoded layout: boxes N×4 + scores N×C, or one N×(4[+1]+C) tensor."""

    def take(name: str) -> np.ndarray:
        if name not in outputs:
            raise DetectionError(f"model output {name!r} is missing (outputs: {sorted(outputs)})")
        arr = np.asarray(outputs[name], np.float64)
        while arr.ndim > 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 2:
            raise DetectionError(f"output {name}: shape {np.shape(outputs[name])} is not N×K")
        return arr.T if head.transposed else arr

    if head.combined:
        t = take(head.combined)
        extra = 5 if head.objectness else 4
        if t.shape[1] != extra + num_classes:
            raise DetectionError(f"output {head.combined}: {t.shape[1]} columns, expected {extra} + {num_classes}")
        boxes, scores = t[:, :4], t[:, extra:]
        if head.objectness:
            scores = scores * t[:, 4:5]
    else:
        assert head.boxes and head.scores
        boxes, scores = take(head.boxes), take(head.scores)
        if boxes.shape[1] != 4 or scores.shape[0] != boxes.shape[0] or scores.shape[1] != num_classes:
            raise DetectionError(f"outputs {head.boxes}/{head.scores}: shapes {boxes.shape}/{scores.shape} are not "
                                 f"N×4 / N×{num_classes}")
    if head.normalized:
        boxes = boxes * np.array([net_w, net_h, net_w, net_h], np.float64)
    if head.box_format == "cxcywh":
        cx, cy, w, h = boxes.T
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    ids = np.asarray(class_ids, np.int64)
    sel = scores[:, ids]
    k, m = np.nonzero(sel > threshold)
    return Candidates(boxes[k], sel[k, m], ids[m])
