"""`ocl-infer convert`, `ocl-infer run` and `ocl-infer devices --select`, run as a user runs them (main())."""

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_models import make_model, run_onnx

from ocl_infer.cli.main import main


@pytest.fixture
def onnx_model(tmp_path):
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Conv", ["img", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["feat"])]
    model = make_model(nodes, {"img": (1, 3, 9, 11)}, ["feat"],
                       {"w": rng.standard_normal((5, 3, 3, 3)).astype(np.float32),
                        "b": rng.standard_normal(5).astype(np.float32)})
    onnx.save(model, tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


def test_convert_then_run_saves_outputs(onnx_model, tmp_path, capsys):
    out = tmp_path / "m.nnef"
    assert main(["convert", str(onnx_model), "-o", str(out), "--check"]) == 0
    assert (out / "graph.nnef").is_file()
    assert "inputs img[1, 3, 9, 11]; outputs feat[1, 5, 9, 11]" in capsys.readouterr().out
    x = np.random.default_rng(0).random((1, 3, 9, 11), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(out), "--input", f"img={tmp_path / 'x.npy'}", "--output-dir", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "feat: shape [1, 5, 9, 11]" in printed and "cl:0" in printed
    got = np.load(tmp_path / "o" / "feat.npy")
    want = run_onnx(onnx_model, {"img": x})["feat"]
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))


def test_convert_compressed_archive_runs(onnx_model, tmp_path, capsys):
    assert main(["convert", str(onnx_model), "-o", str(tmp_path / "m.nnef"), "--compress"]) == 0
    archive = tmp_path / "m.nnef.tgz"
    assert archive.is_file()
    assert main(["run", str(archive), "--repeat", "2"]) == 0
    assert "input img: random [1, 3, 9, 11]" in capsys.readouterr().out


def test_convert_errors_are_one_line(onnx_model, tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x.nnef")]) == 2
    assert "missing.onnx: model file not found" in capsys.readouterr().err
    assert main(["convert", str(onnx_model), "-o", str(tmp_path / "x.nnef"), "--input-shape", "img=1,a"]) == 2
    assert "--input-shape 'img=1,a'" in capsys.readouterr().err
    (tmp_path / "m.txt").write_text("x")
    assert main(["convert", str(tmp_path / "m.txt"), "-o", str(tmp_path / "x.nnef")]) == 2
    assert "cannot convert" in capsys.readouterr().err


def test_run_errors_name_the_input(onnx_model, tmp_path, capsys):
    out = tmp_path / "m.nnef"
    main(["convert", str(onnx_model), "-o", str(out)])
    np.save(tmp_path / "bad.npy", np.zeros((1, 3, 9, 10), np.float32))
    assert main(["run", str(out), "--input", f"img={tmp_path / 'bad.npy'}"]) == 2
    assert "input 'img' has shape [1, 3, 9, 10]" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nope.nnef")]) == 2
    assert "model not found" in capsys.readouterr().err


def test_devices_select(capsys):
    assert main(["devices", "--select", "cpu"]) == 0
    assert "cl:0" in capsys.readouterr().out
    assert main(["devices", "--select", "no-such-device"]) == 2
    assert "matches no OpenCL device" in capsys.readouterr().err


def test_convert_fixes_a_dynamic_input_shape(onnx_model, tmp_path, capsys):
    model = onnx.load(onnx_model)
    for vi in (model.graph.input[0], model.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_param = "batch"  # a dynamic batch dim
    onnx.save(model, tmp_path / "dyn.onnx")
    out = tmp_path / "dyn.nnef"
    assert main(["convert", str(tmp_path / "dyn.onnx"), "-o", str(out), "--input-shape", "img=2,3,9,11",
                 "--check"]) == 0
    assert "inputs img[2, 3, 9, 11]; outputs feat[2, 5, 9, 11]" in capsys.readouterr().out


def test_convert_tflite(onnx_model, tmp_path):
    """A TFLite model (written by nnef-tools from our NNEF, NHWC) converts back and runs with the same numbers."""
    import subprocess
    import sys

    from ocl_infer.engine import Engine

    nnef_dir = tmp_path / "m.nnef"
    assert main(["convert", str(onnx_model), "-o", str(nnef_dir)]) == 0
    tflite = tmp_path / "m.tflite"
    subprocess.run([sys.executable, "-m", "nnef_tools.convert", "--input-format", "nnef", "--output-format",
                    "tflite", "--input-model", str(nnef_dir), "--output-model", str(tflite), "--io-transpose"],
                   check=True, capture_output=True, timeout=120)
    back = tmp_path / "back.nnef"
    assert main(["convert", str(tflite), "-o", str(back)]) == 0
    x = np.random.default_rng(1).random((1, 3, 9, 11), dtype=np.float32)
    with Engine(nnef_dir) as a, Engine(back) as b:
        (name_b,) = b.inputs
        (out_b,) = b.outputs
        want = a.run({"img": x})["feat"]
        got = b.run({name_b: x.transpose(0, 2, 3, 1).copy()})[out_b].transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
