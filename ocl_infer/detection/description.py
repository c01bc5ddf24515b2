"""``model.json``: what a detector needs to know about a model folder besides its network.

A prepared model folder holds ``model.nnef/`` (the network for the OpenCL engine), ``model.onnx`` (the same
network, the reference) and ``model.json``. Schema (``format`` = 1; every key below is read, unknown keys are
ignored so later versions can add some)::

    {
      "format": 1,
      "name": "yolov3-tiny",                    # free text
      "files": {"nnef": "model.nnef", "onnx": "model.onnx"},    # relative to the folder (these defaults)
      "input": {
        "name": "image",                        # the network's input tensor
        "shape": [1, 3, 416, 416],              # N, C, H, W
        "layout": "NCHW",                       # the only layout supported
        "color": "RGB",                         # channel order the network wants: "RGB" or "BGR"
        "scale": 0.00392156862745098,           # pixel value (0..255) × scale ...
        "mean": [0.0, 0.0, 0.0],                # ... − mean (per channel, after scale)
        "letterbox": true,                      # keep aspect ratio and pad (false: stretch to H×W)
        "pad_value": 0.5                        # the pad's value after scale/mean (Darknet: 0.5)
      },
      "head": {                                 # either a YOLO head ...
        "type": "yolo",
        "sigmoid": ["x", "y", "objectness", "classes"],   # Darknet's yolo layer: logistic on these
        "box": "darknet",                       # x=(col+σ(tx)·s−(s−1)/2)/grid_w, w=exp(tw)·anchor_w/input_w
        "outputs": [                            # one per raw output tensor, 1×A·(5+C)×h×w
          {"name": "yolo_16", "anchors": [[81, 82], [135, 169], [344, 319]],  # input pixels, per anchor
           "stride": 32, "grid": [13, 13], "scale_x_y": 1.0, "classes": 80}
        ]
      },
      "head": {                                 # ... or a decoded layout (common in exported ONNX YOLOs)
        "type": "boxes_scores",
        "boxes": "boxes", "scores": "scores",   # N×4 and N×C (a leading batch dim of 1 is allowed), or
        "combined": "output0",                  # one N×(4+C) tensor (N×(5+C) with "objectness": true)
        "transposed": false,                    # true: the tensor is (4+C)×N (YOLOv8 style)
        "box_format": "xyxy",                   # or "cxcywh"
        "normalized": false                     # true: boxes in 0..1 of the input, else input pixels
      },                                        # (a raw YOLOv8/YOLO11 head: combined 1×(4+C)×N, transposed,
                                                #  cxcywh, input pixels)
      "head": {                                 # ... or an end-to-end head (YOLOv10/YOLO26 default export):
        "type": "end_to_end",                   # rows [x1, y1, x2, y2, score, class id], best first, already
        "output": "output0",                    # free of duplicates (no NMS); 1×N×6 or N×6
        "box_format": "xyxy",                   # or "cxcywh"
        "normalized": false
      },
      "classes": ["person", "bicycle", "car", ...],          # index = class id
      "source": {...}                            # provenance, free form
    }
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocl_infer.errors import DetectionError

FORMAT_VERSION = 1
VEHICLE_CLASSES = ("bicycle", "car", "motorbike", "bus", "train", "truck")
# COCO spells it "motorbike" in Darknet's coco.names and "motorcycle" elsewhere; both mean the same class.
CLASS_ALIASES = {"motorcycle": "motorbike", "motorbike": "motorcycle"}


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, int, int, int]
    color: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    letterbox: bool = True
    pad_value: float = 0.5

    @property
    def height(self) -> int:
        return self.shape[2]

    @property
    def width(self) -> int:
        return self.shape[3]


@dataclass(frozen=True)
class YoloOutput:
    name: str
    anchors: tuple[tuple[float, float], ...]
    stride: int
    classes: int
    scale_x_y: float = 1.0


@dataclass(frozen=True)
class YoloHead:
    outputs: tuple[YoloOutput, ...]
    type: str = "yolo"


@dataclass(frozen=True)
class BoxesScoresHead:
    boxes: str | None = None
    scores: str | None = None
    combined: str | None = None
    objectness: bool = False
    transposed: bool = False
    box_format: str = "xyxy"
    normalized: bool = False
    type: str = "boxes_scores"


@dataclass(frozen=True)
class EndToEndHead:
    """Rows [x1, y1, x2, y2, score, class id] from a one-to-one head: the network has already removed
    duplicates, so the detector applies no NMS."""

    output: str
    box_format: str = "xyxy"
    normalized: bool = False
    type: str = "end_to_end"


Head = YoloHead | BoxesScoresHead | EndToEndHead


@dataclass(frozen=True)
class ModelDescription:
    folder: Path
    name: str
    input: InputSpec
    head: Head
    classes: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)

    @property
    def onnx_path(self) -> Path:
        return self.folder / self.files.get("onnx", "model.onnx")

    @property
    def nnef_path(self) -> Path:
        return self.folder / self.files.get("nnef", "model.nnef")

    @property
    def output_names(self) -> list[str]:
        if isinstance(self.head, YoloHead):
            return [o.name for o in self.head.outputs]
        if isinstance(self.head, EndToEndHead):
            return [self.head.output]
        names = [self.head.combined] if self.head.combined else [self.head.boxes, self.head.scores]
        return [n for n in names if n]

    def class_ids(self, classes: list[str | int] | tuple[str | int, ...] | None) -> list[int]:
        """Resolve names or ids; ``None`` → the vehicle classes this model knows; ``["all"]`` → every class.
        Unknown names → DetectionError listing the valid ones."""
        if classes is None:
            wanted: list[str | int] = [c for c in VEHICLE_CLASSES if self._index(c) is not None]
            if not wanted:
                raise DetectionError(
                    f"model {self.folder} knows none of the default vehicle classes {list(VEHICLE_CLASSES)}: "
                    "pass classes explicitly"
                )
        elif [str(c).lower() for c in classes] == ["all"] and self._index("all") is None:
            wanted = list(range(len(self.classes)))
        else:
            wanted = list(classes)
        ids: list[int] = []
        for c in wanted:
            if isinstance(c, int) or (isinstance(c, str) and c.strip().isdigit()):
                i = int(c)
                if not 0 <= i < len(self.classes):
                    raise DetectionError(f"class id {i} is outside 0..{len(self.classes) - 1} of model {self.folder}")
            else:
                found = self._index(str(c))
                if found is None:
                    raise DetectionError(
                        f"unknown class {c!r} for model {self.folder}; valid: {', '.join(self.classes)}")
                i = found
            if i not in ids:
                ids.append(i)
        return ids

    def _index(self, name: str) -> int | None:
        key = name.strip().lower()
        lowered = [c.lower() for c in self.classes]
        for candidate in (key, CLASS_ALIASES.get(key)):
            if candidate in lowered:
                return lowered.index(candidate)
        return None


def _need(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise DetectionError(f"{where}: missing key {key!r}")
    return obj[key]


def load_description(folder: str | Path) -> ModelDescription:
    """Read and check ``folder/model.json``. Errors name the file and the key."""
    folder = Path(folder)
    path = folder / "model.json"
    if not folder.is_dir():
        raise DetectionError(f"model folder {folder} does not exist (prepare one with `ocl-infer prepare-model`)")
    if not path.is_file():
        raise DetectionError(f"model folder {folder} has no model.json (prepare it with `ocl-infer prepare-model` "
                             f"or `ocl-infer import-darknet`)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DetectionError(f"{path}: not readable JSON ({err})") from err
    return parse_description(doc, folder, str(path))


def parse_description(doc: Any, folder: Path, where: str = "model.json") -> ModelDescription:
    if not isinstance(doc, dict):
        raise DetectionError(f"{where}: top level must be an object")
    if doc.get("format", FORMAT_VERSION) != FORMAT_VERSION:
        raise DetectionError(f"{where}: format {doc.get('format')!r} is not supported (expected {FORMAT_VERSION})")
    try:
        inp = _need(doc, "input", where)
        shape = tuple(int(v) for v in _need(inp, "shape", f"{where} input"))
        if len(shape) != 4 or shape[1] != 3 or min(shape) <= 0:
            raise DetectionError(f"{where}: input.shape {list(shape)} must be [N, 3, H, W]")
        if str(inp.get("layout", "NCHW")).upper() != "NCHW":
            raise DetectionError(f"{where}: input.layout {inp.get('layout')!r} is not supported (only NCHW)")
        color = str(inp.get("color", "RGB")).upper()
        if color not in ("RGB", "BGR"):
            raise DetectionError(f"{where}: input.color {color!r} must be RGB or BGR")
        mean = tuple(float(v) for v in inp.get("mean", (0.0, 0.0, 0.0)))
        if len(mean) != 3:
            raise DetectionError(f"{where}: input.mean must have 3 values")
        spec = InputSpec(str(_need(inp, "name", f"{where} input")), shape, color,  # type: ignore[arg-type]
                         float(inp.get("scale", 1 / 255)), mean, bool(inp.get("letterbox", True)),  # type: ignore[arg-type]
                         float(inp.get("pad_value", 0.5)))
        classes = tuple(str(c) for c in _need(doc, "classes", where))
        if not classes:
            raise DetectionError(f"{where}: classes is empty")
        head_doc = _need(doc, "head", where)
        kind = _need(head_doc, "type", f"{where} head")
        head: Head
        if kind == "yolo":
            outs = []
            for i, o in enumerate(_need(head_doc, "outputs", f"{where} head")):
                at = f"{where} head.outputs[{i}]"
                anchors = tuple((float(a[0]), float(a[1])) for a in _need(o, "anchors", at))
                n_cls = int(o.get("classes", len(classes)))
                if n_cls != len(classes):
                    raise DetectionError(f"{at}: {n_cls} classes, but the classes list has {len(classes)}")
                outs.append(YoloOutput(str(_need(o, "name", at)), anchors, int(_need(o, "stride", at)), n_cls,
                                       float(o.get("scale_x_y", 1.0))))
            if not outs:
                raise DetectionError(f"{where}: head.outputs is empty")
            head = YoloHead(tuple(outs))
        elif kind == "boxes_scores":
            head = BoxesScoresHead(head_doc.get("boxes"), head_doc.get("scores"), head_doc.get("combined"),
                                   bool(head_doc.get("objectness", False)), bool(head_doc.get("transposed", False)),
                                   str(head_doc.get("box_format", "xyxy")), bool(head_doc.get("normalized", False)))
            if not head.combined and not (head.boxes and head.scores):
                raise DetectionError(f"{where}: a boxes_scores head needs 'boxes' and 'scores', or 'combined'")
        elif kind == "end_to_end":
            head = EndToEndHead(str(_need(head_doc, "output", f"{where} head")),
                                str(head_doc.get("box_format", "xyxy")), bool(head_doc.get("normalized", False)))
        else:
            raise DetectionError(f"{where}: head.type {kind!r} is not one of 'yolo', 'boxes_scores', 'end_to_end'")
        if not isinstance(head, YoloHead) and head.box_format not in ("xyxy", "cxcywh"):
            raise DetectionError(f"{where}: head.box_format {head.box_format!r} must be xyxy or cxcywh")
    except (TypeError, ValueError, IndexError, AttributeError) as err:
        raise DetectionError(f"{where}: malformed ({err})") from err
    files = {str(k): str(v) for k, v in dict(doc.get("files", {})).items()}
    return ModelDescription(folder, str(doc.get("name", folder.name)), spec, head, classes, files)


def yolo_description(name: str, input_shape: tuple[int, int, int, int], outputs: list[dict[str, Any]],
                     classes: list[str], source: dict[str, Any] | None = None,
                     input_name: str = "image") -> dict[str, Any]:
    """The model.json document of an imported Darknet YOLO (RGB, /255, letterbox padded with 0.5)."""
    return {
        "format": FORMAT_VERSION,
        "name": name,
        "files": {"nnef": "model.nnef", "onnx": "model.onnx"},
        "input": {"name": input_name, "shape": list(input_shape), "layout": "NCHW", "color": "RGB",
                  "scale": 1 / 255, "mean": [0.0, 0.0, 0.0], "letterbox": True, "pad_value": 0.5},
        "head": {"type": "yolo", "sigmoid": ["x", "y", "objectness", "classes"], "box": "darknet",
                 "outputs": outputs},
        "classes": list(classes),
        "source": source or {},
    }
