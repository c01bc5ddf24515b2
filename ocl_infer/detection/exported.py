"""An exported ONNX detector → its model.json: the head kind read from the graph's outputs, the class names from
the metadata Ultralytics writes (or a names file), the input from the graph.

Heads recognised (C classes, N boxes):
- raw YOLOv8/YOLO11 head: one output 1×(4+C)×N (or 1×N×(4+C)), boxes cx, cy, w, h in input pixels, class scores
  after sigmoid → a ``boxes_scores`` head; the detector applies NMS;
- end-to-end head (YOLOv10/YOLO26 default export): one output 1×N×6 of [x1, y1, x2, y2, score, class] →
  ``end_to_end``; no NMS;
- Darknet head: 2-3 outputs 1×A·(5+C)×h×w with anchors (``--anchors``, or metadata ``anchors``) → ``yolo``.
Anything else (segmentation, pose, several raw outputs) is refused with the output shapes named.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocl_infer.detection.description import FORMAT_VERSION
from ocl_infer.errors import ModelError

ULTRALYTICS_PAD = 114 / 255  # Ultralytics' LetterBox fills with grey 114
DARKNET_PAD = 0.5


@dataclass(frozen=True)
class Signature:
    """The graph's image input and its outputs, with static shapes."""

    input: str
    input_shape: tuple[int, ...]
    outputs: tuple[tuple[str, tuple[int, ...]], ...]
    metadata: dict[str, str]


def read_signature(path: Path) -> Signature:
    """Input, outputs (shapes inferred where the export left them out) and metadata_props of an ONNX file."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError, OSError, ... for a bad file
        raise ModelError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from err
    weights = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1:
        raise ModelError(f"{path}: a detector has one image input, this graph has {[i.name for i in inputs]}")
    shapes = {v.name: _static(v) for v in (*inputs, *model.graph.output)}
    if any(s is None for s in shapes.values()):
        inferred = onnx.shape_inference.infer_shapes(model)
        shapes = {v.name: _static(v) for v in (*inferred.graph.input, *inferred.graph.output) if v.name in shapes}
    for name, shape in shapes.items():
        if shape is None:
            raise ModelError(f"{path}: tensor {name!r} has no static shape; export with a fixed image size "
                             "(Ultralytics: dynamic=False)")
    inp = inputs[0].name
    in_shape = shapes[inp]
    assert in_shape is not None
    if len(in_shape) != 4 or in_shape[0] != 1 or in_shape[1] != 3:
        raise ModelError(f"{path}: input {inp!r} has shape {list(in_shape)}, expected [1, 3, H, W]")
    outputs = tuple((o.name, shapes[o.name]) for o in model.graph.output)
    return Signature(inp, in_shape, outputs, {p.key: p.value for p in model.metadata_props})  # type: ignore[arg-type]


def _static(value: Any) -> tuple[int, ...] | None:
    dims = value.type.tensor_type.shape.dim
    if not dims or any(not d.HasField("dim_value") or d.dim_value <= 0 for d in dims):
        return None
    return tuple(int(d.dim_value) for d in dims)


def metadata_names(sig: Signature, path: Path) -> list[str] | None:
    """Class names from metadata_props 'names' as Ultralytics writes them (str of a dict {0: 'person', ...});
    None when the file has none. A malformed value is an error naming the file and key."""
    text = sig.metadata.get("names")
    if text is None:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise ModelError(f"{path}: metadata 'names' is not a Python dict or list literal ({err})") from err
    if isinstance(value, dict):
        ids = sorted(value)
        if ids != list(range(len(ids))):
            raise ModelError(f"{path}: metadata 'names' has class ids {ids[:5]}..., expected 0..{len(ids) - 1}")
        return [str(value[i]) for i in ids]
    if isinstance(value, list | tuple) and value:
        return [str(v) for v in value]
    raise ModelError(f"{path}: metadata 'names' must be a non-empty dict or list, got {type(value).__name__}")


def parse_anchors(text: str, outputs: list[tuple[str, tuple[int, ...]]], where: str) -> list[list[list[float]]]:
    """Anchors (input pixels) per Darknet output, in the outputs' order. `text` is either groups separated by
    ';' in that order ("81,82, 135,169, 344,319; 10,14, 23,27, 37,58"), or one list as in a cfg's anchors= line,
    split evenly with the coarsest grid taking the last group (Darknet's usual masks)."""
    try:
        groups = [[float(v) for v in g.replace(",", " ").split()] for g in text.split(";") if g.strip()]
    except ValueError as err:
        raise ModelError(f"{where}: anchors {text!r} are not numbers ({err})") from err
    if len(groups) == 1 and len(outputs) > 1:
        flat, n = groups[0], len(outputs)
        if len(flat) % (2 * n):
            raise ModelError(f"{where}: {len(flat) // 2} anchors do not split evenly over {n} outputs")
        per = len(flat) // n
        chunks = [flat[i * per:(i + 1) * per] for i in range(n)]
        by_grid = sorted(range(n), key=lambda i: -outputs[i][1][2] * outputs[i][1][3])  # finest grid first
        groups = [[] for _ in range(n)]
        for chunk, i in zip(chunks, by_grid, strict=True):
            groups[i] = chunk
    if len(groups) != len(outputs) or any(not g or len(g) % 2 for g in groups):
        raise ModelError(f"{where}: anchors {text!r} give {len(groups)} groups of (w, h) pairs, the graph has "
                         f"{len(outputs)} outputs")
    return [[[g[i], g[i + 1]] for i in range(0, len(g), 2)] for g in groups]


def describe_onnx(path: Path, names: list[str] | None = None, anchors: str | None = None,
                  name: str | None = None) -> dict[str, Any]:
    """The model.json document for the exported detector at `path` (files: model.onnx, model.nnef)."""
    path = Path(path)
    sig = read_signature(path)
    classes = names if names is not None else metadata_names(sig, path)
    head, n_classes, pad = _head(sig, path, anchors if anchors is not None else sig.metadata.get("anchors"))
    if classes is None:
        raise ModelError(f"{path}: no class names in its metadata ('names'); pass --names FILE "
                         f"(one name per line, {n_classes or 'one per class'})")
    if n_classes is not None and len(classes) != n_classes:
        raise ModelError(f"{path}: {len(classes)} class names, but the head has {n_classes} classes")
    meta = {k: sig.metadata[k] for k in ("author", "version", "task", "date", "description") if k in sig.metadata}
    return {
        "format": FORMAT_VERSION,
        "name": name or path.stem,
        "files": {"nnef": "model.nnef", "onnx": "model.onnx"},
        "input": {"name": sig.input, "shape": list(sig.input_shape), "layout": "NCHW", "color": "RGB",
                  "scale": 1 / 255, "mean": [0.0, 0.0, 0.0], "letterbox": True, "pad_value": pad},
        "head": head,
        "classes": list(classes),
        "source": {"onnx": str(path), "metadata": meta},
    }


def _head(sig: Signature, path: Path, anchors: str | None) -> tuple[dict[str, Any], int | None, float]:
    """(head document, number of classes the head has or None when its shape does not say, pad value)."""
    outs = list(sig.outputs)
    shapes = ", ".join(f"{n} {list(s)}" for n, s in outs)
    if len(outs) == 1 and len(outs[0][1]) == 3 and outs[0][1][0] == 1:
        out, (_, a, b) = outs[0]
        if b == 6 and a > 6:
            return {"type": "end_to_end", "output": out, "box_format": "xyxy", "normalized": False}, None, \
                ULTRALYTICS_PAD
        transposed = a < b  # Ultralytics writes 1×(4+C)×N, with far more boxes than classes
        width = a if transposed else b
        if width > 4:
            return {"type": "boxes_scores", "combined": out, "transposed": transposed, "box_format": "cxcywh",
                    "normalized": False}, width - 4, ULTRALYTICS_PAD
    if 2 <= len(outs) <= 4 and all(len(s) == 4 and s[0] == 1 for _, s in outs):
        if anchors is None:
            raise ModelError(f"{path}: a Darknet head ({shapes}) needs its anchors: pass --anchors (the cfg's "
                             "anchors= line) or import the cfg with `ocl-infer import-darknet`")
        groups = parse_anchors(anchors, outs, str(path))
        h = sig.input_shape[2]
        outputs, counts = [], set()
        for (out, shape), group in zip(outs, groups, strict=True):
            per, rem = divmod(shape[1], len(group))
            if rem or per <= 5:
                raise ModelError(f"{path}: output {out} has {shape[1]} channels, not {len(group)} anchors × "
                                 "(5 + classes)")
            counts.add(per - 5)
            outputs.append({"name": out, "anchors": group, "stride": h // shape[2], "grid": [shape[2], shape[3]],
                            "scale_x_y": 1.0, "classes": per - 5})
        if len(counts) != 1:
            raise ModelError(f"{path}: the outputs disagree on the number of classes ({sorted(counts)})")
        return {"type": "yolo", "sigmoid": ["x", "y", "objectness", "classes"], "box": "darknet",
                "outputs": outputs}, counts.pop(), DARKNET_PAD
    raise ModelError(f"{path}: outputs {shapes} are not a detection head prepare-model knows: a raw YOLOv8-style "
                     "1×(4+C)×N, an end-to-end 1×N×6, or Darknet 1×A·(5+C)×h×w outputs")
