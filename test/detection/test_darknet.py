"""The Darknet importer: cfg parsing, weights layout, every supported layer against a float64 numpy Darknet."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ocl_infer.detection.darknet import import_darknet, parse_cfg, write_weights
from ocl_infer.errors import ModelError

from .reference import darknet_forward

HERE = Path(__file__).resolve().parent
V4_LIKE = HERE / "yolov4_tiny_like.cfg"


def _run(model, x: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {"image": x}), strict=True))


def _weights_with_positive_variances(cfg: Path, path: Path, seed: int = 1) -> Path:
    """Random weights laid out as Darknet reads them, with variances in [0.5, 1.5]."""
    rng = np.random.default_rng(seed)
    sections = parse_cfg(cfg)
    chans = [int(sections[0].options.get("channels", 3))]
    values: list[np.ndarray] = []
    outs: list[int] = []
    for i, s in enumerate(sections[1:]):
        c = chans[-1]
        o = s.options
        if s.kind == "convolutional":
            f, k = int(o["filters"]), int(o.get("size", 1))
            values.append(rng.normal(0, 0.2, f))
            if int(o.get("batch_normalize", 0)):
                values += [rng.uniform(0.5, 1.5, f), rng.normal(0, 0.2, f), rng.uniform(0.5, 1.5, f)]
            values.append(rng.normal(0, 1.0 / np.sqrt(c * k * k), f * c * k * k))
            c = f
        elif s.kind == "route":
            refs = [int(v) for v in o["layers"].split(",")]
            c = sum(outs[r if r >= 0 else i + r] for r in refs) // int(o.get("groups", 1))
        outs.append(c)
        chans.append(c)
    write_weights(path, np.concatenate(values))
    return path


def test_parse_cfg_reads_sections_options_and_lines(tmp_path: Path) -> None:
    cfg = tmp_path / "a.cfg"
    cfg.write_text("# comment\n[net]\nwidth = 32 ; trailing\nheight=32\n\n[convolutional]\nfilters=4 # x\n")
    secs = parse_cfg(cfg)
    assert [s.kind for s in secs] == ["net", "convolutional"]
    assert secs[0].options == {"width": "32", "height": "32"} and secs[1].line == 6
    assert secs[1].options["filters"] == "4"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[convolutional]\nfilters=4\n", "must start with a [net]"),
        ("[net]\nwidth\n", "expected key=value"),
        ("[net]\n[convolutional]\nfilters=four\n", "filters='four' is not an integer"),
        ("[net]\n[crnn]\n", "[crnn] is not supported"),
        ("[net]\n[convolutional]\nfilters=4\nactivation=swish\n", "activation 'swish'"),
        ("[net]\n[route]\nlayers=-5\n", "layer reference -5"),
        ("[net]\n[convolutional]\nfilters=4\n", "no [yolo] layer"),
        ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=20\n[yolo]\nmask=0\nanchors=1,2\nclasses=80\n",
         "20 channels"),
    ],
)
def test_bad_cfg_gives_a_clear_error_naming_the_line(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(text)
    with pytest.raises(ModelError) as err:
        import_darknet(cfg, None)
    assert needle in str(err.value) and "bad.cfg" in str(err.value)


def test_yolov4_tiny_like_matches_a_float64_darknet_forward(tmp_path: Path) -> None:
    weights = _weights_with_positive_variances(V4_LIKE, tmp_path / "v4.weights")
    model = import_darknet(V4_LIKE, weights)
    assert [(h.output, h.stride, h.grid, h.scale_x_y) for h in model.heads] == [
        ("yolo_9", 4, (16, 16), 1.05), ("yolo_16", 2, (32, 32), 1.05)]
    assert model.heads[0].anchors == ((81, 82), (135, 169), (344, 319))
    ops = {n.op_type for n in model.onnx_model.graph.node}
    assert {"Slice", "Add", "Concat", "MaxPool", "Resize", "Softplus", "Sigmoid", "Relu", "LeakyRelu"} <= ops
    x = np.random.default_rng(3).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    got = _run(model, x)
    ref = darknet_forward(V4_LIKE, weights, x[0])
    for layer, want in ref.items():
        np.testing.assert_allclose(got[f"yolo_{layer}"][0], want, rtol=1e-4, atol=1e-4)


def test_maxpool_size2_stride1_pads_bottom_right_only() -> None:
    model = import_darknet(V4_LIKE, None)
    pool = [n for n in model.onnx_model.graph.node if n.op_type == "MaxPool"][1]
    attrs = {a.name: list(a.ints) for a in pool.attribute}
    assert attrs["kernel_shape"] == [2, 2] and attrs["strides"] == [1, 1] and attrs["pads"] == [0, 0, 1, 1]


def test_weights_that_do_not_match_the_cfg_are_refused(tmp_path: Path) -> None:
    n = import_darknet(V4_LIKE, None).weights_count
    write_weights(tmp_path / "short.weights", np.zeros(n - 1, np.float32))
    with pytest.raises(ModelError, match="weights end after"):
        import_darknet(V4_LIKE, tmp_path / "short.weights")
    write_weights(tmp_path / "long.weights", np.zeros(n + 3, np.float32))
    with pytest.raises(ModelError, match="3 floats left over"):
        import_darknet(V4_LIKE, tmp_path / "long.weights")
    with pytest.raises(ModelError, match="cannot read Darknet weights"):
        import_darknet(V4_LIKE, tmp_path / "missing.weights")


def test_debian_yolov3_tiny_cfg_structure_at_two_sizes(data_dir: Path) -> None:
    cfg = data_dir / "darknet" / "cfg" / "yolov3-tiny.cfg"
    m416 = import_darknet(cfg, None)
    assert m416.weights_count == 8858734  # the official weights file holds exactly this many floats
    assert [(h.grid, h.stride) for h in m416.heads] == [((13, 13), 32), ((26, 26), 16)]
    m320 = import_darknet(cfg, None, size=320)
    out = _run(m320, np.full((1, 3, 320, 320), 0.5, np.float32))
    assert {k: v.shape for k, v in out.items()} == {"yolo_16": (1, 255, 10, 10), "yolo_23": (1, 255, 20, 20)}


def test_debian_yolov3_cfg_structure_with_shortcuts(data_dir: Path) -> None:
    cfg = data_dir / "darknet" / "cfg" / "yolov3.cfg"
    model = import_darknet(cfg, None, size=128)
    assert model.layers == 107
    assert [(h.output, h.grid, h.stride) for h in model.heads] == [
        ("yolo_82", (4, 4), 32), ("yolo_94", (8, 8), 16), ("yolo_106", (16, 16), 8)]
    assert sum(n.op_type == "Add" for n in model.onnx_model.graph.node) == 23
    out = _run(model, np.full((1, 3, 128, 128), 0.5, np.float32))
    assert [v.shape for v in out.values()] == [(1, 255, 4, 4), (1, 255, 8, 8), (1, 255, 16, 16)]
