"""Independent float64 numpy references: a Darknet forward pass, yolo decoding and NMS written like Darknet's C."""

from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ocl_infer.detection.darknet import parse_cfg
from ocl_infer.detection.nms import iou


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    win = sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # C, oh, ow, k, k
    return np.einsum("chwij,fcij->fhw", win, w) + b[:, None, None]


def _act(x: np.ndarray, act: str) -> np.ndarray:
    return {
        "leaky": lambda v: np.where(v > 0, v, 0.1 * v),
        "linear": lambda v: v,
        "relu": lambda v: np.maximum(v, 0),
        "logistic": lambda v: 1 / (1 + np.exp(-v)),
        "mish": lambda v: v * np.tanh(np.log1p(np.exp(v))),
    }[act](x)


def darknet_forward(cfg: Path, weights: Path, image_chw: np.ndarray) -> dict[int, np.ndarray]:
    """Run the cfg on one C×H×W image the way Darknet computes (BN not folded); outputs by yolo layer index."""
    sections = parse_cfg(cfg)
    raw = weights.read_bytes()
    data = np.frombuffer(raw[20:], "<f4").astype(np.float64)
    pos = 0

    def take(n: int) -> np.ndarray:
        nonlocal pos
        pos += n
        return data[pos - n : pos]

    outs: list[np.ndarray] = []
    heads: dict[int, np.ndarray] = {}
    x = image_chw.astype(np.float64)
    for i, s in enumerate(sections[1:]):
        o = s.options
        if s.kind == "convolutional":
            f, k, st = int(o["filters"]), int(o.get("size", 1)), int(o.get("stride", 1))
            c = x.shape[0]
            bias = take(f)
            bn = int(o.get("batch_normalize", 0))
            if bn:
                scale, mean, var = take(f), take(f), take(f)
            w = take(f * c * k * k).reshape(f, c, k, k)
            y = _conv(x, w, np.zeros(f), st, k // 2 if int(o.get("pad", 0)) else 0)
            if bn:
                y = (y - mean[:, None, None]) / (np.sqrt(var)[:, None, None] + 1e-6)
                y = y * scale[:, None, None]
            x = _act(y + bias[:, None, None], o.get("activation", "logistic"))
        elif s.kind == "maxpool":
            k = int(o["size"])
            st = int(o.get("stride", k))
            pad = k - 1
            c, h, w = x.shape
            oh, ow = (h + pad - k) // st + 1, (w + pad - k) // st + 1
            lo = pad // 2
            xp = np.full((c, h + 2 * pad, w + 2 * pad), -np.inf)
            xp[:, lo : lo + h, lo : lo + w] = x
            y = np.empty((c, oh, ow))
            for r in range(oh):
                for q in range(ow):
                    y[:, r, q] = xp[:, r * st : r * st + k, q * st : q * st + k].max(axis=(1, 2))
            x = y
        elif s.kind == "upsample":
            st = int(o.get("stride", 2))
            x = x.repeat(st, axis=1).repeat(st, axis=2)
        elif s.kind == "route":
            refs = [int(v) for v in o["layers"].split(",")]
            parts = [outs[r if r >= 0 else i + r] for r in refs]
            g, gid = int(o.get("groups", 1)), int(o.get("group_id", 0))
            parts = [p[gid * (p.shape[0] // g) : (gid + 1) * (p.shape[0] // g)] for p in parts]
            x = np.concatenate(parts, axis=0)
        elif s.kind == "shortcut":
            r = int(o["from"])
            x = x + outs[r if r >= 0 else i + r]
        elif s.kind == "yolo":
            heads[i] = x
        outs.append(x)
    assert pos == data.size
    return heads


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + np.exp(-v))


def decode_like_darknet(raw: np.ndarray, anchors: list[tuple[float, float]], classes: int, net_w: int, net_h: int,
                        thresh: float, scale_x_y: float = 1.0) -> list[tuple[tuple[float, ...], float, int]]:
    """get_yolo_detections as loops: [(xyxy in net pixels, score, class)] with score > thresh."""
    a = len(anchors)
    _, h, w = raw.shape
    out = []
    for n in range(a):
        for j in range(h):
            for i in range(w):
                e = raw[n * (5 + classes) : (n + 1) * (5 + classes), j, i].astype(np.float64)
                obj = sigmoid(e[4])
                if obj <= thresh:
                    continue
                s = scale_x_y
                x = (i + sigmoid(e[0]) * s - (s - 1) / 2) / w * net_w
                y = (j + sigmoid(e[1]) * s - (s - 1) / 2) / h * net_h
                bw = np.exp(e[2]) * anchors[n][0]
                bh = np.exp(e[3]) * anchors[n][1]
                for c in range(classes):
                    p = obj * sigmoid(e[5 + c])
                    if p > thresh:
                        out.append(((x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2), p, c))
    return out


def nms_like_darknet(dets: list[tuple[tuple[float, ...], float, int]], thresh: float) -> list[int]:
    """do_nms_sort per class: best first, zero every later box of that class with IoU > thresh."""
    kept = []
    for c in sorted({d[2] for d in dets}):
        idx = sorted((k for k, d in enumerate(dets) if d[2] == c), key=lambda k: -dets[k][1])
        alive = dict.fromkeys(idx, True)
        for a_pos, a in enumerate(idx):
            if not alive[a]:
                continue
            kept.append(a)
            for b in idx[a_pos + 1 :]:
                if alive[b] and iou(dets[a][0], dets[b][0]) > thresh:
                    alive[b] = False
    return kept
