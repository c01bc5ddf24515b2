"""The patterns of today's detectors (YOLOv8n, YOLO11n as Ultralytics exports them: ONNX opset 13, raw head) at
small sizes, built with onnx.helper and checked against onnxruntime for both kernel families (issue 18).

The node sequences copy the exported graphs (bench/modern_models.py export writes the full-size ones): SiLU as
Conv -> Sigmoid -> Mul(conv, sigmoid), C2f, SPPF, the DFL head, strided 3x3 convs, the box decode, the FPN
neck's nearest upsample + Concat, YOLO11's depthwise convs and its C2PSA attention. Channel counts are chosen so
the same conv kernels as at full size serve them (covec from 16 channels, Winograd from 64 input channels,
the general kernel for strided convs)."""

import numpy as np
import pytest
from onnx import helper
from onnx_models import normal_floats

SEED = 20260418
rng = np.random.default_rng(SEED)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """The same data for a test whether it runs alone or with the others."""
    global rng
    rng = np.random.default_rng(SEED)


rand = normal_floats(rng)


class Graph:
    """Nodes and initializers of a small ONNX graph, with Ultralytics' building blocks."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: dict[str, np.ndarray] = {}
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value: np.ndarray, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits[name] = np.asarray(value)
        return name

    def node(self, op: str, inputs: list[str], n_out: int = 1, **attrs) -> list[str]:
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        return self.node(op, inputs, **attrs)[0]

    def conv(self, x: str, cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True,
             bias: bool = True) -> str:
        """Ultralytics' Conv (BatchNorm folded at export): Conv with bias, then SiLU as Sigmoid + Mul."""
        w = rand(cout, cin // groups, k, k, scale=1.5 / np.sqrt(cin // groups * k * k))
        inputs = [x, self.const(w, "w")] + ([self.const(rand(cout, scale=0.2), "b")] if bias else [])
        y = self.op("Conv", inputs, kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, group=groups,
                    dilations=[1, 1])
        return self.silu(y) if act else y

    def silu(self, x: str) -> str:
        return self.op("Mul", [x, self.op("Sigmoid", [x])])

    def bottleneck(self, x: str, c: int, shortcut: bool) -> str:
        y = self.conv(self.conv(x, c, c, 3), c, c, 3)
        return self.op("Add", [x, y]) if shortcut else y

    def c2f(self, x: str, cin: int, cout: int, n: int, shortcut: bool) -> str:
        c = cout // 2
        parts = self.node("Split", [self.conv(x, cin, 2 * c), self.const(np.array([c, c]), "split")], 2, axis=1)
        for _ in range(n):
            parts.append(self.bottleneck(parts[-1], c, shortcut))
        return self.conv(self.op("Concat", parts, axis=1), (2 + n) * c, cout)

    def sppf(self, x: str, cin: int, cout: int) -> str:
        c = cin // 2
        ys = [self.conv(x, cin, c)]
        for _ in range(3):
            ys.append(self.op("MaxPool", [ys[-1]], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2],
                              dilations=[1, 1], ceil_mode=0))
        return self.conv(self.op("Concat", ys, axis=1), 4 * c, cout)

    def reshape(self, x: str, shape: list[int]) -> str:
        return self.op("Reshape", [x, self.const(np.array(shape, np.int64), "shape")])


def test_silu_after_conv(check_against_onnx):
    """SiLU after every conv kind the detectors use: 1x1 and 3x3 (covec), 3x3 with 64 input channels (Winograd),
    3x3 on a 26x26 map (Winograd F(4x4)), depthwise 3x3 (YOLO11's DWConv), a 1x1 without activation (the head's
    last convs), odd channel counts."""
    g = Graph()
    outs = [g.conv("a", 24, 20, 1), g.conv("a", 24, 16, 3), g.conv("b", 64, 24, 3), g.conv("c", 32, 32, 3),
            g.conv("c", 32, 32, 3, groups=32), g.conv("a", 24, 13, 1, act=False), g.conv("d", 5, 7, 3)]
    check_against_onnx(g.nodes, {"a": rand(1, 24, 12, 11), "b": rand(1, 64, 13, 13), "c": rand(1, 32, 26, 26),
                                 "d": rand(1, 5, 9, 10)}, outs, g.inits)


def test_strided_convs_with_silu(check_against_onnx):
    """The backbone's stride-2 3x3 convs (pad 1) with SiLU: the stem on 3 channels, then channel doubling, on
    even and odd maps, and one with 64 input channels."""
    g = Graph()
    s1 = g.conv("x", 3, 16, 3, s=2)  # 1x3x34x30 -> 1x16x17x15
    s2 = g.conv(s1, 16, 32, 3, s=2)  # -> 9x8 (odd input)
    s3 = g.conv(s2, 32, 64, 3, s=2)  # -> 5x4
    s4 = g.conv("y", 64, 40, 3, s=2)  # 64 input channels on a 13x13 map -> 7x7
    check_against_onnx(g.nodes, {"x": rand(1, 3, 34, 30), "y": rand(1, 64, 13, 13)}, [s1, s2, s3, s4], g.inits)


@pytest.mark.parametrize("n,shortcut", [(2, True), (1, False)])
def test_c2f(check_against_onnx, n, shortcut):
    """C2f: 1x1 conv, Split in two along channels, n bottlenecks (two 3x3 convs, residual Add in the backbone),
    Concat of both halves and every bottleneck's output, 1x1 conv."""
    g = Graph()
    y = g.c2f("x", 32, 32, n, shortcut)
    check_against_onnx(g.nodes, {"x": rand(1, 32, 11, 12)}, [y], g.inits)


def test_sppf(check_against_onnx):
    """SPPF: 1x1 conv to half the channels, MaxPool 5x5 stride 1 pad 2 three times in a chain, Concat of the
    four, 1x1 conv; on a map smaller than the pool window's reach (7x7) and an odd one (13x11)."""
    g = Graph()
    a = g.sppf("a", 64, 32)
    b = g.sppf("b", 32, 24)
    check_against_onnx(g.nodes, {"a": rand(1, 64, 7, 7), "b": rand(1, 32, 13, 11)}, [a, b], g.inits)


def test_neck_upsample_concat_c2f(check_against_onnx):
    """The FPN neck: Resize nearest x2 (asymmetric, floor: as exported), Concat with the backbone's map, C2f
    without shortcut; then a stride-2 conv back down and Concat (the PAN path)."""
    g = Graph()
    up = g.op("Resize", ["deep", "", g.const(np.array([1, 1, 2, 2], np.float32), "scales")], mode="nearest",
              coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    p = g.c2f(g.op("Concat", [up, "skip"], axis=1), 48, 16, 1, False)
    down = g.op("Concat", [g.conv(p, 16, 16, 3, s=2), "deep"], axis=1)
    check_against_onnx(g.nodes, {"deep": rand(1, 32, 5, 6), "skip": rand(1, 16, 10, 12)}, [p, down], g.inits)


def dfl(g: Graph, boxes: str, reg_max: int, anchors: int) -> str:
    """Reshape [1,4,16,A], Transpose to [1,16,4,A], Softmax over the bins, a 1x1 conv with weights 0..15
    (no bias), Reshape [1,4,A]: each side's expected distance."""
    t = g.op("Transpose", [g.reshape(boxes, [1, 4, reg_max, anchors])], perm=[0, 2, 1, 3])
    s = g.op("Softmax", [t], axis=1)
    w = g.const(np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1), "dflw")
    c = g.op("Conv", [s, w], kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], group=1, dilations=[1, 1])
    return g.reshape(c, [1, 4, anchors])


def flat_concat(g: Graph, names: list[str], channels: int) -> str:
    """The head's per-scale Reshape [1,C,-1] and Concat along the anchors (axis -1)."""
    return g.op("Concat", [g.reshape(n, [1, channels, -1]) for n in names], axis=-1)


def anchors_and_strides(sizes: tuple[int, ...] = (8, 4, 2), strides: tuple[int, ...] = (8, 16, 32)):
    pts, st = [], []
    for hw, s in zip(sizes, strides, strict=True):
        yy, xx = np.meshgrid(np.arange(hw) + 0.5, np.arange(hw) + 0.5, indexing="ij")
        pts.append(np.stack([xx.ravel(), yy.ravel()]))
        st.append(np.full(hw * hw, s))
    return np.concatenate(pts, 1)[None].astype(np.float32), np.concatenate(st)[None].astype(np.float32)


def decode(g: Graph, dist: str, cls: str, anchors: np.ndarray, strides: np.ndarray) -> tuple[str, str]:
    """dist2bbox (xywh) times the strides, Concat with Sigmoid of the class logits: output [1, 4+nc, A]; and the
    scores alone (checked as an output too: beside boxes in pixels, a relative error over the whole output
    would let wrong scores pass)."""
    lt = g.op("Slice", [dist, g.const(np.array([0]), "st"), g.const(np.array([2]), "en"),
                        g.const(np.array([1]), "ax")])
    rb = g.op("Slice", [dist, g.const(np.array([2]), "st"), g.const(np.array([4]), "en"),
                        g.const(np.array([1]), "ax")])
    x1y1 = g.op("Sub", [g.const(anchors, "anchors"), lt])
    x2y2 = g.op("Add", [g.const(anchors, "anchors"), rb])
    cxy = g.op("Div", [g.op("Add", [x1y1, x2y2]), g.const(np.array(2.0, np.float32), "two")])
    wh = g.op("Sub", [x2y2, x1y1])
    box = g.op("Mul", [g.op("Concat", [cxy, wh], axis=1), g.const(strides, "strides")])
    scores = g.op("Sigmoid", [cls])
    return g.op("Concat", [box, scores], axis=1), scores


def test_dfl_head(check_against_onnx):
    """The DFL: softmax over 16 bins after a transpose, then the expectation as a 1x1 conv with fixed weights."""
    g = Graph()
    boxes = flat_concat(g, ["box0", "box1", "box2"], 64)
    dist = dfl(g, boxes, 16, 84)
    feeds = {f"box{i}": rand(1, 64, hw, hw, scale=3.0) for i, hw in enumerate((8, 4, 2))}
    check_against_onnx(g.nodes, feeds, [dist], g.inits)


def test_decode_arithmetic(check_against_onnx):
    """The box decode: Slice, Sub/Add with the anchor points, Div by 2, Concat, Mul by the strides, Sigmoid on
    the class logits, Concat into [1, 4+nc, A]."""
    g = Graph()
    anchors, strides = anchors_and_strides()
    y, scores = decode(g, "dist", "cls", anchors, strides)
    dist = np.abs(rand(1, 4, 84, scale=4.0))
    check_against_onnx(g.nodes, {"dist": dist, "cls": rand(1, 7, 84, scale=3.0)}, [y, scores], g.inits)


def test_detect_head_end_to_end(check_against_onnx):
    """The whole raw head as exported (output0 of YOLOv8n/YOLO11n): per-scale box and class convs with SiLU,
    their last 1x1 convs, flatten + Concat over scales, DFL, decode. nc = 5, reg_max = 16."""
    g = Graph()
    boxes, classes = [], []
    for i, c in enumerate((16, 24, 32)):
        boxes.append(g.conv(g.conv(g.conv(f"p{i}", c, 16, 3), 16, 16, 3), 16, 64, act=False))
        classes.append(g.conv(g.conv(g.conv(f"p{i}", c, 16, 3), 16, 16, 3), 16, 5, act=False))
    anchors, strides = anchors_and_strides()
    y, scores = decode(g, dfl(g, flat_concat(g, boxes, 64), 16, 84), flat_concat(g, classes, 5), anchors, strides)
    feeds = {"p0": rand(1, 16, 8, 8), "p1": rand(1, 24, 4, 4), "p2": rand(1, 32, 2, 2)}
    check_against_onnx(g.nodes, feeds, [y, scores], g.inits)


def test_psa_attention(check_against_onnx):
    """YOLO11's C2PSA block: 1x1 conv, Split, qkv 1x1 conv, Reshape [1, heads, 2*kd+hd, N], Split over axis 2,
    Mul by the scale, Transpose, MatMul, Softmax over the last axis, Transpose, MatMul, Reshape back, a
    depthwise 3x3 positional conv on v, Add, projection, residual Add, the 1x1 feed-forward pair, Concat, 1x1."""
    g = Graph()
    c, heads, kd, hd, h, w = 32, 2, 4, 16, 5, 6
    n = h * w
    a, b = g.node("Split", [g.conv("x", 2 * c, 2 * c), g.const(np.array([c, c]), "split")], 2, axis=1)
    qkv = g.conv(b, c, heads * (2 * kd + hd), act=False)
    q, k, v = g.node("Split", [g.reshape(qkv, [1, heads, 2 * kd + hd, n]),
                               g.const(np.array([kd, kd, hd]), "split")], 3, axis=2)
    qs = g.op("Mul", [q, g.const(np.array(kd ** -0.5, np.float32), "scale")])
    attn = g.op("Softmax", [g.op("MatMul", [g.op("Transpose", [qs], perm=[0, 1, 3, 2]), k])], axis=-1)
    out = g.op("MatMul", [v, g.op("Transpose", [attn], perm=[0, 1, 3, 2])])
    pe = g.conv(g.reshape(v, [1, c, h, w]), c, c, 3, groups=c, act=False)
    x1 = g.op("Add", [b, g.conv(g.op("Add", [g.reshape(out, [1, c, h, w]), pe]), c, c, act=False)])
    x2 = g.op("Add", [x1, g.conv(g.conv(x1, c, 2 * c), 2 * c, c, act=False)])
    y = g.conv(g.op("Concat", [a, x2], axis=1), 2 * c, 2 * c)
    check_against_onnx(g.nodes, {"x": rand(1, 2 * c, h, w)}, [y], g.inits)
