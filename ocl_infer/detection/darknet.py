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

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

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
class YoloHead:
    """What a ``[yolo]`` layer tells the decoder: anchors in input pixels for its masked subset."""

    layer: int
    output: str
    anchors: tuple[tuple[float, float], ...]
    classes: int
    stride: int
    grid: tuple[int, int]  # (h, w)
    scale_x_y: float


@dataclass
class DarknetModel:
    """The imported network: the ONNX model, its input size and its yolo heads in cfg order."""

    onnx_model: onnx.ModelProto
    width: int
    height: int
    channels: int
    heads: list[YoloHead]
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


def import_darknet(
    cfg: str | Path,
    weights: str | Path | None,
    *,
    size: int | tuple[int, int] | None = None,
    seed: int = 0,
) -> DarknetModel:
    """Build the ONNX graph of a Darknet network.

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
        raise ModelError(f"{sections[0].where(cfg)}: input size {width}x{height}x{channels} is not positive")
    reader = _Weights(Path(weights) if weights is not None else None, np.random.default_rng(seed))

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    # Per layer: output tensor name and shape (C, H, W).
    outs: list[tuple[str, tuple[int, int, int]]] = []
    heads: list[YoloHead] = []
    cur = (INPUT_NAME, (channels, height, width))

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(onnx.numpy_helper.from_array(arr, name))
        return name

    for idx, sec in enumerate(sections[1:]):
        o = _Opts(sec, cfg)
        name = f"l{idx}_{sec.kind[:5]}"
        src, (c, h, w) = cur
        if sec.kind in ("convolutional", "conv"):
            filters, k, stride = o.int("filters", 1), o.int("size", 1), o.int("stride", 1)
            groups = o.int("groups", 1)
            pad = k // 2 if o.int("pad", 0) else o.int("padding", 0)
            act = o.str("activation", "logistic")
            if act not in ACTIVATIONS:
                raise ModelError(f"{sec.where(cfg)}: activation {act!r} is not supported (one of {ACTIVATIONS})")
            if filters <= 0 or k <= 0 or stride <= 0 or groups <= 0 or c % groups or filters % groups:
                raise ModelError(f"{sec.where(cfg)}: filters={filters} size={k} stride={stride} groups={groups} "
                                 f"do not fit {c} input channels")
            bias = reader.take(filters, f"layer {idx} biases")
            if o.int("batch_normalize", 0):
                scale = reader.take(filters, f"layer {idx} bn scales", "scale")
                mean = reader.take(filters, f"layer {idx} bn means")
                var = reader.take(filters, f"layer {idx} bn variances", "var")
            wt = reader.take(filters * (c // groups) * k * k, f"layer {idx} weights")
            wt = wt.reshape(filters, c // groups, k, k).astype(np.float64)
            b = bias.astype(np.float64)
            if o.int("batch_normalize", 0):
                if np.any(var < 0) or not np.all(np.isfinite(var)):
                    raise ModelError(f"{sec.where(cfg)}: layer {idx} has negative or non-finite batch-norm variances "
                                     f"in {weights}: the weights do not match the cfg")
                factor = scale.astype(np.float64) / (np.sqrt(var.astype(np.float64)) + BN_EPS)
                wt = wt * factor[:, None, None, None]
                b = b - mean.astype(np.float64) * factor
            conv_out = f"{name}_conv" if act != "linear" else name
            nodes.append(helper.make_node(
                "Conv", [src, const(f"{name}_w", wt.astype(np.float32)), const(f"{name}_b", b.astype(np.float32))],
                [conv_out], name=f"{name}_conv", kernel_shape=[k, k], strides=[stride, stride],
                pads=[pad, pad, pad, pad], group=groups))
            _append_activation(nodes, act, conv_out, name)
            oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
            cur = (name, (filters, oh, ow))
        elif sec.kind in ("maxpool", "max"):
            k = o.int("size", 1)
            stride = o.int("stride", k)
            padding = o.int("padding", k - 1)
            if k <= 0 or stride <= 0 or padding < 0:
                raise ModelError(f"{sec.where(cfg)}: size={k} stride={stride} padding={padding} are invalid")
            lo, hi = padding // 2, padding - padding // 2
            if hi >= k:
                raise ModelError(f"{sec.where(cfg)}: padding={padding} is too large for size={k}")
            oh, ow = (h + padding - k) // stride + 1, (w + padding - k) // stride + 1
            # Padding no window reaches (e.g. size 2 stride 2 on even sizes) is dropped: same result, simpler op.
            hi_h, hi_w = (max(0, min(hi, (n - 1) * stride + k - d - lo)) for n, d in ((oh, h), (ow, w)))
            nodes.append(helper.make_node("MaxPool", [src], [name], name=name, kernel_shape=[k, k],
                                          strides=[stride, stride], pads=[lo, lo, hi_h, hi_w]))
            cur = (name, (c, oh, ow))
        elif sec.kind == "upsample":
            stride = o.int("stride", 2)
            if stride <= 0:
                raise ModelError(f"{sec.where(cfg)}: stride={stride} must be positive (downsampling is unsupported)")
            scales = const(f"{name}_scales", np.array([1, 1, stride, stride], np.float32))
            # asymmetric + floor is Darknet's out[i] = in[i / stride].
            nodes.append(helper.make_node("Resize", [src, "", scales], [name], name=name, mode="nearest",
                                          coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
            cur = (name, (c, h * stride, w * stride))
        elif sec.kind == "route":
            refs = [_layer_ref(r, idx, len(outs), sec, cfg) for r in o.ints("layers")]
            if not refs:
                raise ModelError(f"{sec.where(cfg)}: option layers is required")
            shapes = [outs[r][1] for r in refs]
            if len({s[1:] for s in shapes}) != 1:
                raise ModelError(f"{sec.where(cfg)}: routed layers {refs} have different sizes {shapes}")
            groups, group_id = o.int("groups", 1), o.int("group_id", 0)
            parts = []
            for r in refs:
                part_name, (pc, _, _) = outs[r]
                if groups > 1:
                    if pc % groups or not 0 <= group_id < groups:
                        raise ModelError(f"{sec.where(cfg)}: groups={groups} group_id={group_id} do not split "
                                         f"{pc} channels of layer {r}")
                    step = pc // groups
                    sliced = f"{name}_g{r}"
                    nodes.append(helper.make_node(
                        "Slice", [part_name, const(f"{sliced}_s", np.array([group_id * step], np.int64)),
                                  const(f"{sliced}_e", np.array([(group_id + 1) * step], np.int64)),
                                  const(f"{sliced}_a", np.array([1], np.int64))], [sliced], name=sliced))
                    part_name = sliced
                parts.append(part_name)
            total = sum(s[0] for s in shapes) // groups
            if len(parts) == 1:
                name = parts[0]  # a plain alias: no op, later layers read the routed tensor directly
            else:
                nodes.append(helper.make_node("Concat", parts, [name], name=name, axis=1))
            cur = (name, (total, shapes[0][1], shapes[0][2]))
        elif sec.kind == "shortcut":
            refs = [_layer_ref(r, idx, len(outs), sec, cfg) for r in o.ints("from")]
            if len(refs) != 1:
                raise ModelError(f"{sec.where(cfg)}: option from must name exactly one layer")
            other, oshape = outs[refs[0]]
            if oshape != (c, h, w):
                raise ModelError(f"{sec.where(cfg)}: layer {refs[0]} has shape {oshape}, previous layer {(c, h, w)}")
            act = o.str("activation", "linear")
            if act not in ACTIVATIONS:
                raise ModelError(f"{sec.where(cfg)}: activation {act!r} is not supported (one of {ACTIVATIONS})")
            add_out = f"{name}_add" if act != "linear" else name
            nodes.append(helper.make_node("Add", [src, other], [add_out], name=f"{name}_add"))
            _append_activation(nodes, act, add_out, name)
            cur = (name, (c, h, w))
        elif sec.kind == "yolo":
            classes = o.int("classes", 20)
            anchors_flat = o.floats("anchors")
            if len(anchors_flat) % 2:
                raise ModelError(f"{sec.where(cfg)}: anchors must be pairs, got {len(anchors_flat)} numbers")
            pairs = [(anchors_flat[i], anchors_flat[i + 1]) for i in range(0, len(anchors_flat), 2)]
            mask = o.ints("mask") or list(range(len(pairs)))
            if any(not 0 <= m < len(pairs) for m in mask):
                raise ModelError(f"{sec.where(cfg)}: mask {mask} refers past the {len(pairs)} anchors")
            if c != len(mask) * (5 + classes):
                raise ModelError(f"{sec.where(cfg)}: the previous layer has {c} channels, but {len(mask)} anchors "
                                 f"× (5 + {classes} classes) = {len(mask) * (5 + classes)}")
            if o.int("new_coords", 0):
                raise ModelError(f"{sec.where(cfg)}: new_coords=1 (scaled-YOLOv4 box encoding) is not supported")
            if height % h or width % w or height // h != width // w:
                raise ModelError(f"{sec.where(cfg)}: grid {w}x{h} does not divide the input {width}x{height}")
            out_name = f"yolo_{idx}"
            if src == INPUT_NAME:
                raise ModelError(f"{sec.where(cfg)}: a [yolo] layer needs a layer before it")
            _rename_tensor(nodes, outs, src, out_name)  # the head is the conv output itself, no copy op
            heads.append(YoloHead(idx, out_name, tuple(pairs[m] for m in mask), classes, width // w, (h, w),
                                  o.float("scale_x_y", 1.0)))
            cur = (out_name, (c, h, w))
        else:
            raise ModelError(f"{sec.where(cfg)}: layer type [{sec.kind}] is not supported by the Darknet importer")
        if min(cur[1]) <= 0:
            raise ModelError(f"{sec.where(cfg)}: output shape {cur[1]} is empty at input {width}x{height}")
        outs.append(cur)

    if weights is not None and reader.pos != reader.data.size:
        raise ModelError(f"{weights}: {reader.data.size - reader.pos} floats left over after the last layer: "
                         f"the cfg and the weights do not match")
    if not heads:
        raise ModelError(f"{cfg}: no [yolo] layer, so there is nothing to detect with")
    graph = helper.make_graph(
        nodes, Path(cfg).stem.replace("-", "_").replace(".", "_"),
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, channels, height, width])],
        [helper.make_tensor_value_info(hd.output, TensorProto.FLOAT, [1, outs[hd.layer][1][0], *hd.grid])
         for hd in heads],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="ocl_infer.detection.darknet")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return DarknetModel(model, width, height, channels, heads, len(outs), reader.pos)


def _rename_tensor(nodes: list[Any], outs: list[tuple[str, tuple[int, int, int]]], old: str, new: str) -> None:
    for node in nodes:
        for seq in (node.input, node.output):
            for i, n in enumerate(seq):
                if n == old:
                    seq[i] = new
    for i, (n, shape) in enumerate(outs):
        if n == old:
            outs[i] = (new, shape)


def _layer_ref(ref: int, idx: int, count: int, sec: Section, cfg: str | Path) -> int:
    absolute = idx + ref if ref < 0 else ref
    if not 0 <= absolute < count:
        raise ModelError(f"{sec.where(cfg)}: layer reference {ref} is outside layers 0..{count - 1}")
    return absolute


def _append_activation(nodes: list[Any], act: str, src: str, out: str) -> None:
    from onnx import helper

    if act == "linear":
        return
    if act == "leaky":
        nodes.append(helper.make_node("LeakyRelu", [src], [out], name=f"{out}_act", alpha=0.1))
    elif act == "relu":
        nodes.append(helper.make_node("Relu", [src], [out], name=f"{out}_act"))
    elif act == "logistic":
        nodes.append(helper.make_node("Sigmoid", [src], [out], name=f"{out}_act"))
    elif act == "mish":  # x · tanh(softplus(x)), spelled out for opsets without Mish
        nodes.append(helper.make_node("Softplus", [src], [f"{out}_sp"], name=f"{out}_sp"))
        nodes.append(helper.make_node("Tanh", [f"{out}_sp"], [f"{out}_th"], name=f"{out}_th"))
        nodes.append(helper.make_node("Mul", [src, f"{out}_th"], [out], name=f"{out}_act"))


def write_weights(path: str | Path, values: np.ndarray) -> None:
    """A Darknet .weights file (v0.2 header, seen = 0) holding ``values`` as float32."""
    header = np.array([0, 2, 0], "<i4").tobytes() + np.zeros(1, "<i8").tobytes()
    Path(path).write_bytes(header + np.asarray(values, "<f4").tobytes())


def head_descriptions(model: DarknetModel) -> list[dict[str, Any]]:
    """The ``head.outputs`` entries of model.json for these yolo heads."""
    return [
        {"name": hd.output, "anchors": [list(a) for a in hd.anchors], "stride": hd.stride,
         "grid": list(hd.grid), "scale_x_y": hd.scale_x_y, "classes": hd.classes}
        for hd in model.heads
    ]

