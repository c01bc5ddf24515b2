"""model.json: the prepared default, schema errors naming the file and key, class selection."""

import json
import re
from pathlib import Path

import pytest

from ocl_infer.detection.description import BoxesScoresHead, YoloHead, load_description, parse_description
from ocl_infer.errors import DetectionError

GOOD = {
    "format": 1,
    "input": {"name": "image", "shape": [1, 3, 64, 64]},
    "head": {"type": "yolo", "outputs": [{"name": "o", "anchors": [[1, 2]], "stride": 32}]},
    "classes": ["person", "bicycle", "car", "motorbike"],
}


def test_prepared_default_model_describes_yolov3_tiny(model_dir: Path) -> None:
    d = load_description(model_dir)
    assert d.input.name == "image" and d.input.shape == (1, 3, 416, 416) and d.input.color == "RGB"
    assert d.input.letterbox and d.input.pad_value == 0.5 and d.input.scale == pytest.approx(1 / 255)
    assert isinstance(d.head, YoloHead)
    assert [(o.name, o.stride, o.anchors) for o in d.head.outputs] == [
        ("yolo_16", 32, ((81, 82), (135, 169), (344, 319))), ("yolo_23", 16, ((10, 14), (23, 27), (37, 58)))]
    assert len(d.classes) == 80 and d.classes[2] == "car"
    assert d.onnx_path.is_file() and (d.nnef_path / "graph.nnef").is_file()
    assert d.class_ids(None) == [1, 2, 3, 5, 6, 7]  # bicycle car motorbike bus train truck


def test_folder_without_model_json_is_named(tmp_path: Path) -> None:
    with pytest.raises(DetectionError, match=re.escape(f"{tmp_path} has no model.json")):
        load_description(tmp_path)
    with pytest.raises(DetectionError, match="does not exist"):
        load_description(tmp_path / "nope")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(DetectionError, match=r"model\.json: not readable JSON"):
        load_description(tmp_path)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d.pop("classes"), "missing key 'classes'"),
        (lambda d: d["input"].update(shape=[1, 3, 64]), "input.shape"),
        (lambda d: d["input"].update(color="YUV"), "input.color"),
        (lambda d: d["head"].update(type="ssd"), "head.type 'ssd'"),
        (lambda d: d["head"]["outputs"][0].pop("stride"), "head.outputs[0]: missing key 'stride'"),
        (lambda d: d["head"]["outputs"][0].update(classes=80), "80 classes"),
        (lambda d: d.update(head={"type": "boxes_scores", "boxes": "b"}), "needs 'boxes' and 'scores'"),
        (lambda d: d.update(format=7), "format 7"),
        (lambda d: d["input"].update(layout="NHWC"), "input.layout 'NHWC'"),
    ],
)
def test_schema_errors_name_the_key(tmp_path: Path, change, needle: str) -> None:
    doc = json.loads(json.dumps(GOOD))
    change(doc)
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(DetectionError) as err:
        load_description(tmp_path)
    assert needle in str(err.value) and "model.json" in str(err.value)


def test_boxes_scores_head_is_describable(tmp_path: Path) -> None:
    doc = dict(GOOD, head={"type": "boxes_scores", "combined": "output0", "transposed": True,
                          "box_format": "cxcywh"})
    d = parse_description(doc, tmp_path)
    assert isinstance(d.head, BoxesScoresHead) and d.output_names == ["output0"]


def test_class_selection_by_name_id_alias_and_all(tmp_path: Path) -> None:
    d = parse_description(GOOD, tmp_path)
    assert d.class_ids(None) == [1, 2, 3]  # the vehicles this model knows
    assert d.class_ids(["car", 0, "2", "Motorcycle"]) == [2, 0, 3]
    assert d.class_ids(["all"]) == [0, 1, 2, 3]
    with pytest.raises(DetectionError) as err:
        d.class_ids(["tractor"])
    assert "unknown class 'tractor'" in str(err.value) and "person, bicycle, car, motorbike" in str(err.value)
    with pytest.raises(DetectionError, match="class id 9"):
        d.class_ids([9])
    no_vehicles = parse_description(dict(GOOD, classes=["cat", "dog"]), tmp_path)
    with pytest.raises(DetectionError, match="none of the default vehicle classes"):
        no_vehicles.class_ids(None)


def test_output_names_must_exist_in_the_network(tmp_path: Path, model_dir: Path) -> None:
    from ocl_infer.detection import Detector
    from ocl_infer.errors import ModelError

    doc = json.loads((model_dir / "model.json").read_text())
    doc["files"] = {"onnx": str(model_dir / "model.onnx"), "nnef": str(model_dir / "model.nnef")}
    doc["head"]["outputs"][0]["name"] = "nope"
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=r"outputs \['nope'\] named in model\.json are not in the ONNX graph"):
        Detector(tmp_path, backend="onnxruntime")
