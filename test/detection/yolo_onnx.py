"""Small exported-detector graphs built with onnx.helper, in the shape Ultralytics exports them (opset 13):
a strided SiLU backbone to strides 8/16/32, per-scale box (DFL, 16 bins) and class branches, the anchor decode,
and either the raw head output0 [1, 4+C, N] or the end-to-end head output0 [1, k, 6] (TopK over the best class
score, GatherElements, TopK over box×class, Div/Mod into box index and class). Random weights; the class-logit
bias is positive so that some boxes pass a 0.25 threshold. Class names go into metadata_props 'names' as
Ultralytics writes them (str of a dict)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REG_MAX = 16
STRIDES = (8, 16, 32)


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def const(self, value: np.ndarray) -> str:
        self.n += 1
        name = f"k{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], outputs: int = 1, **attrs: object) -> list[str]:
        self.n += 1
        outs = [f"{kind.lower()}{self.n}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(kind, inputs, outs, **attrs))
        return outs

    def one(self, kind: str, inputs: list[str], **attrs: object) -> str:
        return self.op(kind, inputs, **attrs)[0]

    def conv(self, x: str, cin: int, cout: int, k: int = 3, s: int = 1, silu: bool = True,
             bias: float = 0.0, gain: float = 1.5) -> str:
        w = (self.rng.standard_normal((cout, cin, k, k)) * gain / np.sqrt(cin * k * k)).astype(np.float32)
        b = (bias + 0.2 * self.rng.standard_normal(cout)).astype(np.float32)
        y = self.one("Conv", [x, self.const(w), self.const(b)], kernel_shape=[k, k], strides=[s, s],
                     pads=[k // 2] * 4)
        return self.one("Mul", [y, self.one("Sigmoid", [y])]) if silu else y

    def reshape(self, x: str, shape: list[int]) -> str:
        return self.one("Reshape", [x, self.const(np.array(shape, np.int64))])


def _anchor_points(size: int) -> tuple[np.ndarray, np.ndarray]:
    pts, st = [], []
    for s in STRIDES:
        g = size // s
        yy, xx = np.meshgrid(np.arange(g) + 0.5, np.arange(g) + 0.5, indexing="ij")
        pts.append(np.stack([xx.ravel(), yy.ravel()]))
        st.append(np.full(g * g, s))
    return np.concatenate(pts, 1)[None].astype(np.float32), np.concatenate(st)[None].astype(np.float32)


def _raw_head(b: _Builder, size: int, nc: int, xyxy: bool) -> tuple[str, str]:
    """(boxes [1,4,N] in input pixels, class scores [1,C,N] after sigmoid)."""
    x = b.conv("images", 3, 8, s=2)
    x = b.conv(x, 8, 16, s=2)
    feats, c = [], 16
    for cout in (16, 24, 32):
        x = b.conv(x, c, cout, s=2)
        feats.append((x, cout))
        c = cout
    boxes, logits = [], []
    for f, cf in feats:
        # gains: peaked DFL bins (boxes that vary) and class scores spread over 0..1 (depending on the image)
        boxes.append(b.reshape(b.conv(b.conv(f, cf, 16), 16, 4 * REG_MAX, k=1, silu=False, gain=8.0),
                               [1, 4 * REG_MAX, -1]))
        logits.append(b.reshape(b.conv(b.conv(f, cf, 16), 16, nc, k=1, silu=False, bias=-0.5, gain=6.0),
                                [1, nc, -1]))
    anchors, strides = _anchor_points(size)
    n = anchors.shape[2]
    dist = b.one("Concat", boxes, axis=2)
    bins = b.one("Softmax", [b.one("Transpose", [b.reshape(dist, [1, 4, REG_MAX, n])], perm=[0, 2, 1, 3])], axis=1)
    weights = b.const(np.arange(REG_MAX, dtype=np.float32).reshape(1, REG_MAX, 1, 1))
    dist = b.reshape(b.one("Conv", [bins, weights], kernel_shape=[1, 1]), [1, 4, n])
    lt, rb = b.op("Split", [dist, b.const(np.array([2, 2], np.int64))], 2, axis=1)
    pts = b.const(anchors)
    x1y1, x2y2 = b.one("Sub", [pts, lt]), b.one("Add", [pts, rb])
    if xyxy:
        box = b.one("Concat", [x1y1, x2y2], axis=1)
    else:
        cxy = b.one("Div", [b.one("Add", [x1y1, x2y2]), b.const(np.array(2.0, np.float32))])
        box = b.one("Concat", [cxy, b.one("Sub", [x2y2, x1y1])], axis=1)
    return b.one("Mul", [box, b.const(strides)]), b.one("Sigmoid", [b.one("Concat", logits, axis=2)])


def _end_to_end(b: _Builder, boxes: str, scores: str, nc: int, k: int) -> str:
    """Ultralytics' postprocess of the one-to-one head: [1, k, 6] = x1, y1, x2, y2, score, class."""
    boxes = b.one("Transpose", [boxes], perm=[0, 2, 1])  # [1, N, 4]
    scores = b.one("Transpose", [scores], perm=[0, 2, 1])  # [1, N, C]
    kk = b.const(np.array([k], np.int64))
    best = b.one("ReduceMax", [scores], axes=[-1], keepdims=0)
    _, idx = b.op("TopK", [best, kk], 2, axis=-1)
    idx = b.one("Unsqueeze", [idx, b.const(np.array([-1], np.int64))])  # [1, k, 1]
    boxes = b.one("GatherElements", [boxes, b.one("Expand", [idx, b.const(np.array([1, k, 4], np.int64))])],
                  axis=1)
    scores = b.one("GatherElements", [scores, b.one("Expand", [idx, b.const(np.array([1, k, nc], np.int64))])],
                   axis=1)
    top, flat = b.op("TopK", [b.reshape(scores, [1, k * nc]), kk], 2, axis=-1)
    ncs = b.const(np.array(nc, np.int64))
    row = b.one("Unsqueeze", [b.one("Div", [flat, ncs]), b.const(np.array([-1], np.int64))])
    boxes = b.one("GatherElements", [boxes, b.one("Expand", [row, b.const(np.array([1, k, 4], np.int64))])],
                  axis=1)
    cls = b.one("Cast", [b.one("Mod", [flat, ncs])], to=TensorProto.FLOAT)
    last = b.const(np.array([-1], np.int64))
    return b.one("Concat", [boxes, b.one("Unsqueeze", [top, last]), b.one("Unsqueeze", [cls, last])], axis=-1)


def yolo_onnx(path: Path, names: list[str] | None, size: int = 96, seed: int = 0, end_to_end: bool = False,
              k: int = 300) -> Path:
    """Write the graph to `path`; `names` None leaves the metadata out. Output 'output0'."""
    nc = len(names) if names else 3
    b = _Builder(seed)
    boxes, scores = _raw_head(b, size, nc, xyxy=end_to_end)
    n = sum((size // s) ** 2 for s in STRIDES)
    if end_to_end:
        k = min(k, n)
        out = _end_to_end(b, boxes, scores, nc, k)
        shape = [1, k, 6]
    else:
        out = b.one("Concat", [boxes, scores], axis=1)
        shape = [1, 4 + nc, n]
    b.nodes.append(helper.make_node("Identity", [out], ["output0"]))
    graph = helper.make_graph(b.nodes, "yolo_like",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, shape)], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    meta = {"author": "test", "task": "detect", "stride": "32", "imgsz": f"[{size}, {size}]"}
    if names:
        meta["names"] = str(dict(enumerate(names)))
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
