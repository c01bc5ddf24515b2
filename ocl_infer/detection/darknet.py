"""Darknet import: a ``.cfg`` text and a ``.weights`` file → an ONNX graph of the raw network.

The graph takes ``image`` (1×3×H×W float32 RGB in [0, 1], letterboxed by the caller) and returns the raw
output of every ``[yolo]`` layer's input convolution (1×A·(5+C)×h×w), named ``yolo_<layer index>``. Decoding
(sigmoid, anchors, NMS) stays in numpy (:mod:`ocl_infer.detection.decode`), as Darknet's own yolo layer only
applies element-wise sigmoids that are cheaper on the host than as extra graph ops.

Supported sections: ``[net]``, ``[convolutional]`` (with or without ``batch_normalize``, which is folded into the
weights and bias the way Darknet computes it: ``scale · (x − mean) / (sqrt(var) + 1e-6) + bias``; ``groups``;
activations leaky / linear / relu / logistic / mish), ``[maxpool]`` (Darknet's padding ``size − 1`` split
top-left ``padding // 2``, rest bottom/right, padded cells never win), ``[upsample]`` (nearest), ``[route]``
(several layers, or ``groups``/``group_id`` channel slices as in YOLOv4-tiny), ``[shortcut]`` (linear add) and
``[yolo]`` (mask, anchors, classes, scale_x_y). Anything else raises :class:`ModelError` naming the section and
its line in the cfg.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ocl_infer.detection.description import YoloOutput
from ocl_infer.errors import ModelError

if TYPE_CHECKING:
    import onnx

INPUT_NAME = "image"
ONNX_OPSET = 13
BN_EPS = 1e-6  # Darknet (pjreddie) divides by sqrt(var) + .000001f
ACTIVATIONS = ("leaky", "linear", "relu", "logistic", "mish")


@dataclass
class Section:
    """One ``[kind]`` block of a cfg file, with its options as written and the line it starts on."""

    kind: str
    line: int
    options: dict[str, str] = field(default_factory=dict)

    def where(self, cfg: str | Path) -> str:
        return f"{cfg}:{self.line} [{self.kind}]"


@dataclass(frozen=True)
class YoloLayer(YoloOutput):
    """A ``[yolo]`` layer: the description's own output entry plus where it sits in the cfg and its grid."""

    layer: int = 0
    grid: tuple[int, int] = (0, 0)  # (h, w)

    @property
    def output(self) -> str:
        return self.name


@dataclass
class DarknetModel:
    """The imported network: the ONNX model, its input size and its yolo heads in cfg order."""

    onnx_model: onnx.ModelProto
    width: int
    height: int
    channels: int
    heads: list[YoloLayer]
    layers: int
    weights_count: int  # float32 values the cfg consumes from a .weights file (after the header)


def parse_cfg(path: str | Path) -> list[Section]:
    """Parse a Darknet cfg: ``[section]`` headers and ``key=value`` lines; ``#`` and ``;`` start comments."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        raise ModelError(f"cannot read Darknet cfg {path}: {err.strerror or err}") from err
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise ModelError(f"{path}:{lineno}: malformed section header {raw.strip()!r}")
            sections.append(Section(line[1:-1].strip().lower(), lineno))
            continue
        if "=" not in line:
            raise ModelError(f"{path}:{lineno}: expected key=value, got {raw.strip()!r}")
        if not sections:
            raise ModelError(f"{path}:{lineno}: option {raw.strip()!r} before any [section]")
        key, value = line.split("=", 1)
        sections[-1].options[key.strip()] = value.strip()
    if not sections or sections[0].kind not in ("net", "network"):
        raise ModelError(f"{path}: a Darknet cfg must start with a [net] section")
    return sections


class _Opts:
    """Typed access to one section's options; errors name the cfg line and the key."""

    def __init__(self, section: Section, cfg: str | Path) -> None:
        self.section = section
        self.cfg = cfg

    def _bad(self, key: str, why: str) -> ModelError:
        return ModelError(f"{self.section.where(self.cfg)}: option {key}={self.section.options.get(key)!r} {why}")

    def int(self, key: str, default: int | None = None) -> int:
        if key not in self.section.options:
            if default is None:
                raise ModelError(f"{self.section.where(self.cfg)}: option {key} is required")
            return default
        try:
            return int(self.section.options[key])
        except ValueError as err:
            raise self._bad(key, "is not an integer") from err

    def float(self, key: str, default: float) -> float:
        if key not in self.section.options:
            return default
        try:
            return float(self.section.options[key])
        except ValueError as err:
            raise self._bad(key, "is not a number") from err

    def ints(self, key: str) -> list[int]:
        try:
            return [int(v) for v in self.section.options.get(key, "").split(",") if v.strip()]
        except ValueError as err:
            raise self._bad(key, "is not a list of integers") from err

    def floats(self, key: str) -> list[float]:
        try:
            return [float(v) for v in self.section.options.get(key, "").split(",") if v.strip()]
        except ValueError as err:
            raise self._bad(key, "is not a list of numbers") from err

    def str(self, key: str, default: str) -> str:
        return self.section.options.get(key, default).strip().lower()

    def activation(self, default: str) -> str:
        act = self.str("activation", default)
        if act not in ACTIVATIONS:
            raise self.error(f"activation {act!r} is not supported (one of {ACTIVATIONS})")
        return act

    def error(self, why: str) -> ModelError:
        return ModelError(f"{self.section.where(self.cfg)}: {why}")


class _Weights:
    """Sequential float32 reader over a ``.weights`` file after its header."""

    def __init__(self, path: Path | None, rng: np.random.Generator | None) -> None:
        self.path = path
        self.rng = rng
        self.pos = 0
        self.data = np.zeros(0, np.float32)
        if path is not None:
            self.data = _read_weights_body(path)

    def take(self, n: int, what: str, kind: str = "weight") -> np.ndarray:
        if self.path is None:
            assert self.rng is not None
            self.pos += n
            # Random but well-conditioned values so structure tests see finite outputs.
            values = self.rng.random(n, dtype=np.float32)
            if kind in ("var", "scale"):
                return values + np.float32(0.5)  # in [0.5, 1.5)
            return (values - np.float32(0.5)) * np.float32(0.2)
        if self.pos + n > self.data.size:
            raise ModelError(
                f"{self.path}: weights end after {self.data.size} floats, but {what} needs {n} more from float "
                f"{self.pos}: the cfg and the weights do not match"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def _read_weights_body(path: Path) -> np.ndarray:
    """The float32 array after the header: major, minor, revision (int32) and `seen` (int64 from v0.2)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ModelError(f"cannot read Darknet weights {path}: {err.strerror or err}") from err
    if len(raw) < 16:
        raise ModelError(f"{path}: too short for a Darknet weights header ({len(raw)} bytes)")
    major, minor, _revision = np.frombuffer(raw[:12], dtype="<i4")
    header = 20 if (major * 10 + minor) >= 2 and major < 1000 and minor < 1000 else 16
    body = raw[header:]
    if len(body) % 4:
        raise ModelError(f"{path}: weights body of {len(body)} bytes is not a whole number of float32 values")
    return np.frombuffer(body, dtype="<f4")


Shape = tuple[int, int, int]  # (C, H, W) of one layer's output


class _Builder:
    """The graph under construction: ONNX nodes and initializers, every layer's output, the yolo heads.

    Each section handler reads its options, appends its ops and returns its output tensor name and shape."""

    def __init__(self, cfg: str | Path, reader: _Weights, width: int, height: int) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.cfg, self.reader, self.width, self.height = cfg, reader, width, height
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.outs: list[tuple[str, Shape]] = []
        self.heads: list[YoloLayer] = []

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(self.numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, name: str, **attrs: Any) -> None:
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=name, **attrs))

    def activation(self, act: str, src: str, out: str) -> None:
        """``out = act(src)``; nothing for linear (the caller then names its op's output ``out`` directly)."""
        if act == "leaky":
            self.node("LeakyRelu", [src], out, f"{out}_act", alpha=0.1)
        elif act == "relu":
            self.node("Relu", [src], out, f"{out}_act")
        elif act == "logistic":
            self.node("Sigmoid", [src], out, f"{out}_act")
        elif act == "mish":  # x · tanh(softplus(x)), spelled out for opsets without Mish
            self.node("Softplus", [src], f"{out}_sp", f"{out}_sp")
            self.node("Tanh", [f"{out}_sp"], f"{out}_th", f"{out}_th")
            self.node("Mul", [src, f"{out}_th"], out, f"{out}_act")

    def ref(self, ref: int, idx: int, o: _Opts) -> int:
        """A route/shortcut layer index (negative: relative to layer ``idx``) → an absolute, existing one."""
        absolute = idx + ref if ref < 0 else ref
        if not 0 <= absolute < len(self.outs):
            raise o.error(f"layer reference {ref} is outside layers 0..{len(self.outs) - 1}")
        return absolute

    def rename(self, old: str, new: str) -> None:
        """Rename tensor ``old`` everywhere (a yolo head is its conv's output itself, no copy op)."""
        for node in self.nodes:
            for seq in (node.input, node.output):
                for i, n in enumerate(seq):
                    if n == old:
                        seq[i] = new
        self.outs = [(new if n == old else n, shape) for n, shape in self.outs]


Handler = Callable[[_Builder, _Opts, int, str, str, Shape], tuple[str, Shape]]


def _convolutional(b: _Builder, o: _Opts, idx: int, name: str, src: str, shape: Shape) -> tuple[str, Shape]:
    c, h, w = shape
    filters, k, stride = o.int("filters", 1), o.int("size", 1), o.int("stride", 1)
    groups = o.int("groups", 1)
    pad = k // 2 if o.int("pad", 0) else o.int("padding", 0)
    act = o.activation("logistic")
    if filters <= 0 or k <= 0 or stride <= 0 or groups <= 0 or c % groups or filters % groups:
        raise o.error(f"filters={filters} size={k} stride={stride} groups={groups} do not fit {c} input channels")
    take = b.reader.take
    bias = take(filters, f"layer {idx} biases").astype(np.float64)
    bn = None
    if o.int("batch_normalize", 0):  # Darknet's order: biases, scales, means, variances, then weights
        bn = (take(filters, f"layer {idx} bn scales", "scale"), take(filters, f"layer {idx} bn means"),
              take(filters, f"layer {idx} bn variances", "var"))
    wt = take(filters * (c // groups) * k * k, f"layer {idx} weights")
    wt = wt.reshape(filters, c // groups, k, k).astype(np.float64)
    if bn is not None:
        scale, mean, var = (a.astype(np.float64) for a in bn)
        if np.any(var < 0) or not np.all(np.isfinite(var)):
            raise o.error(f"layer {idx} has negative or non-finite batch-norm variances in {b.reader.path}: "
                          "the weights do not match the cfg")
        factor = scale / (np.sqrt(var) + BN_EPS)
        wt = wt * factor[:, None, None, None]
        bias = bias - mean * factor
    conv_out = f"{name}_conv" if act != "linear" else name
    b.node("Conv", [src, b.const(f"{name}_w", wt.astype(np.float32)), b.const(f"{name}_b", bias.astype(np.float32))],
           conv_out, f"{name}_conv", kernel_shape=[k, k], strides=[stride, stride], pads=[pad, pad, pad, pad],
           group=groups)
    b.activation(act, conv_out, name)
    return name, (filters, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)


def _maxpool(b: _Builder, o: _Opts, idx: int, name: str, src: str, shape: Shape) -> tuple[str, Shape]:
    c, h, w = shape
    k = o.int("size", 1)
    stride = o.int("stride", k)
    padding = o.int("padding", k - 1)
    if k <= 0 or stride <= 0 or padding < 0:
        raise o.error(f"size={k} stride={stride} padding={padding} are invalid")
    lo, hi = padding // 2, padding - padding // 2
    if hi >= k:
        raise o.error(f"padding={padding} is too large for size={k}")
    oh, ow = (h + padding - k) // stride + 1, (w + padding - k) // stride + 1
    # Padding no window reaches (e.g. size 2 stride 2 on even sizes) is dropped: same result, simpler op.
    hi_h, hi_w = (max(0, min(hi, (n - 1) * stride + k - d - lo)) for n, d in ((oh, h), (ow, w)))
    b.node("MaxPool", [src], name, name, kernel_shape=[k, k], strides=[stride, stride], pads=[lo, lo, hi_h, hi_w])
    return name, (c, oh, ow)


def _upsample(b: _Builder, o: _Opts, idx: int, name: str, src: str, shape: Shape) -> tuple[str, Shape]:
    c, h, w = shape
    stride = o.int("stride", 2)
    if stride <= 0:
        raise o.error(f"stride={stride} must be positive (downsampling is unsupported)")
    scales = b.const(f"{name}_scales", np.array([1, 1, stride, stride], np.float32))
    # asymmetric + floor is Darknet's out[i] = in[i / stride].
    b.node("Resize", [src, "", scales], name, name, mode="nearest", coordinate_transformation_mode="asymmetric",
           nearest_mode="floor")
    return name, (c, h * stride, w * stride)


def _route(b: _Builder, o: _Opts, idx: int, name: str, src: str, shape: Shape) -> tuple[str, Shape]:
    refs = [b.ref(r, idx, o) for r in o.ints("layers")]
    if not refs:
        raise o.error("option layers is required")
    shapes = [b.outs[r][1] for r in refs]
    if len({s[1:] for s in shapes}) != 1:
        raise o.error(f"routed layers {refs} have different sizes {shapes}")
    groups, group_id = o.int("groups", 1), o.int("group_id", 0)
    parts = []
    for r in refs:
        part, (pc, _, _) = b.outs[r]
        if groups > 1:  # YOLOv4-tiny's channel split: keep slice group_id of groups
            if pc % groups or not 0 <= group_id < groups:
                raise o.error(f"groups={groups} group_id={group_id} do not split {pc} channels of layer {r}")
            step = pc // groups
            sliced = f"{name}_g{r}"
            b.node("Slice", [part, b.const(f"{sliced}_s", np.array([group_id * step], np.int64)),
                             b.const(f"{sliced}_e", np.array([(group_id + 1) * step], np.int64)),
                             b.const(f"{sliced}_a", np.array([1], np.int64))], sliced, sliced)
            part = sliced
        parts.append(part)
    if len(parts) == 1:
        name = parts[0]  # a plain alias: no op, later layers read the routed tensor directly
    else:
        b.node("Concat", parts, name, name, axis=1)
    return name, (sum(s[0] for s in shapes) // groups, shapes[0][1], shapes[0][2])


def _shortcut(b: _Builder, o: _Opts, idx: int, name: str, src: str, shape: Shape) -> tuple[str, Shape]:
    refs = [b.ref(r, idx, o) for r in o.ints("from")]
    if len(refs) != 1:
        raise o.error("option from must name exactly one layer")
    other, other_shape = b.outs[refs[0]]
    if other_shape != shape:
        raise o.error(f"layer {refs[0]} has shape {other_shape}, previous layer {shape}")
    act = o.activation("linear")
    add_out = f"{name}_add" if act != "linear" else name
    b.node("Add", [src, other], add_out, f"{name}_add")
    b.activation(act, add_out, name)
    return name, shape


def _yolo(b: _Builder, o: _Opts, idx: int, name: str, src: str, shape: Shape) -> tuple[str, Shape]:
    c, h, w = shape
    classes = o.int("classes", 20)
    anchors_flat = o.floats("anchors")
    if len(anchors_flat) % 2:
        raise o.error(f"anchors must be pairs, got {len(anchors_flat)} numbers")
    pairs = [(anchors_flat[i], anchors_flat[i + 1]) for i in range(0, len(anchors_flat), 2)]
    mask = o.ints("mask") or list(range(len(pairs)))
    if any(not 0 <= m < len(pairs) for m in mask):
        raise o.error(f"mask {mask} refers past the {len(pairs)} anchors")
    if c != len(mask) * (5 + classes):
        raise o.error(f"the previous layer has {c} channels, but {len(mask)} anchors × (5 + {classes} classes) = "
                      f"{len(mask) * (5 + classes)}")
    if o.int("new_coords", 0):
        raise o.error("new_coords=1 (scaled-YOLOv4 box encoding) is not supported")
    if b.height % h or b.width % w or b.height // h != b.width // w:
        raise o.error(f"grid {w}x{h} does not divide the input {b.width}x{b.height}")
    if src == INPUT_NAME:
        raise o.error("a [yolo] layer needs a layer before it")
    out = f"yolo_{idx}"
    b.rename(src, out)
    b.heads.append(YoloLayer(out, tuple(pairs[m] for m in mask), b.width // w, classes, o.float("scale_x_y", 1.0),
                             layer=idx, grid=(h, w)))
    return out, shape


SECTION_HANDLERS: dict[str, Handler] = {
    "convolutional": _convolutional, "conv": _convolutional,
    "maxpool": _maxpool, "max": _maxpool,
    "upsample": _upsample,
    "route": _route,
    "shortcut": _shortcut,
    "yolo": _yolo,
}


def import_darknet(
    cfg: str | Path,
    weights: str | Path | None,
    *,
    size: int | tuple[int, int] | None = None,
    seed: int = 0,
) -> DarknetModel:
    """Build the ONNX graph of a Darknet network, one `SECTION_HANDLERS` entry per section.

    ``weights=None`` fills every parameter with seeded random values (structure tests). ``size`` overrides
    the cfg's width/height (an int for square input, or (width, height)); it must be a multiple of the network's
    largest stride for yolo heads to line up.
    """
    import onnx
    from onnx import TensorProto, helper

    sections = parse_cfg(cfg)
    net = _Opts(sections[0], cfg)
    width, height = net.int("width", 416), net.int("height", 416)
    if size is not None:
        width, height = (size, size) if isinstance(size, int) else size
    channels = net.int("channels", 3)
    if width <= 0 or height <= 0 or channels <= 0:
        raise net.error(f"input size {width}x{height}x{channels} is not positive")
    reader = _Weights(Path(weights) if weights is not None else None, np.random.default_rng(seed))
    b = _Builder(cfg, reader, width, height)
    cur: tuple[str, Shape] = (INPUT_NAME, (channels, height, width))
    for idx, sec in enumerate(sections[1:]):
        handler = SECTION_HANDLERS.get(sec.kind)
        o = _Opts(sec, cfg)
        if handler is None:
            raise o.error(f"layer type [{sec.kind}] is not supported by the Darknet importer")
        cur = handler(b, o, idx, f"l{idx}_{sec.kind[:5]}", *cur)
        if min(cur[1]) <= 0:
            raise o.error(f"output shape {cur[1]} is empty at input {width}x{height}")
        b.outs.append(cur)

    if weights is not None and reader.pos != reader.data.size:
        raise ModelError(f"{weights}: {reader.data.size - reader.pos} floats left over after the last layer: "
                         f"the cfg and the weights do not match")
    if not b.heads:
        raise ModelError(f"{cfg}: no [yolo] layer, so there is nothing to detect with")
    graph = helper.make_graph(
        b.nodes, Path(cfg).stem.replace("-", "_").replace(".", "_"),
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, channels, height, width])],
        [helper.make_tensor_value_info(hd.name, TensorProto.FLOAT, [1, b.outs[hd.layer][1][0], *hd.grid])
         for hd in b.heads],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="ocl_infer.detection.darknet")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return DarknetModel(model, width, height, channels, b.heads, len(b.outs), reader.pos)


def write_weights(path: str | Path, values: np.ndarray) -> None:
    """A Darknet .weights file (v0.2 header, seen = 0) holding ``values`` as float32."""
    header = np.array([0, 2, 0], "<i4").tobytes() + np.zeros(1, "<i8").tobytes()
    Path(path).write_bytes(header + np.asarray(values, "<f4").tobytes())


def head_descriptions(model: DarknetModel) -> list[dict[str, Any]]:
    """The ``head.outputs`` entries of model.json for these yolo heads."""
    return [
        {"name": hd.name, "anchors": [list(a) for a in hd.anchors], "stride": hd.stride,
         "grid": list(hd.grid), "scale_x_y": hd.scale_x_y, "classes": hd.classes}
        for hd in model.heads
    ]

