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


def _tree(root):
    """Every path under `root` with its content (None for folders): equal trees mean nothing was touched."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def _user_folder(path, nnef=False):
    """A folder someone cares about: keep.txt and a subfolder, and graph.nnef if it is to look like a model."""
    (path / "sub").mkdir(parents=True)
    (path / "keep.txt").write_text("mine")
    (path / "sub" / "notes.txt").write_text("also mine")
    if nnef:
        (path / "graph.nnef").write_text("version 1.0;\ngraph old( x ) -> ( x ) {}\n")
    return _tree(path)


def test_convert_refuses_an_existing_output_and_keeps_it(onnx_model, tmp_path, capsys):
    out = tmp_path / "photos"
    before = _user_folder(out)
    assert main(["convert", str(onnx_model), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out}: exists already, not overwriting (--force replaces an NNEF model" in err
    assert _tree(out) == before
    assert main(["convert", str(onnx_model), "-o", str(out), "--force"]) == 2  # not an NNEF model: never
    assert f"{out}: exists already and is not an NNEF model" in capsys.readouterr().err
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "photos"]  # no temporary folder left


def test_failed_conversion_leaves_the_old_model_as_it_was(tmp_path, capsys):
    """The bug of issue 17: a failed conversion over an existing folder deleted it (and exit 2)."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    out = tmp_path / "m.nnef"
    before = _user_folder(out, nnef=True)
    assert main(["convert", str(bad), "-o", str(out), "--force"]) == 2
    assert "conversion to NNEF failed" in capsys.readouterr().err
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx", "m.nnef"]


def test_force_replaces_an_nnef_model_folder_and_archive(onnx_model, tmp_path, capsys):
    out = tmp_path / "m.nnef"
    _user_folder(out, nnef=True)
    assert main(["convert", str(onnx_model), "-o", str(out), "--force", "--check"]) == 0
    assert "outputs feat[1, 5, 9, 11]" in capsys.readouterr().out
    assert not (out / "keep.txt").exists() and "graph g(" in (out / "graph.nnef").read_text()
    assert main(["convert", str(onnx_model), "-o", str(out), "--compress"]) == 0  # m.nnef.tgz: the folder stays
    archive = tmp_path / "m.nnef.tgz"
    assert archive.is_file() and (out / "graph.nnef").is_file()
    old = archive.read_bytes()
    assert main(["convert", str(onnx_model), "-o", str(archive), "--compress"]) == 2
    assert "--force replaces" in capsys.readouterr().err and archive.read_bytes() == old
    assert main(["convert", str(onnx_model), "-o", str(archive), "--compress", "--force"]) == 0
    from ocl_infer.engine.graph import load_graph

    assert load_graph(archive).outputs == ("feat",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nnef", "m.nnef.tgz", "m.onnx"]


def test_failed_check_writes_nothing(tmp_path, capsys):
    """nnef-tools converts ArgMax (to argmax_reduce), the engine's loader does not take it: --check fails and
    nothing appears, not even the parent folders the output would have needed; an old model under --force stays
    as it was."""
    erf = tmp_path / "argmax.onnx"
    nodes = [helper.make_node("ArgMax", ["img"], ["idx"], axis=1),
             helper.make_node("Cast", ["idx"], ["feat"], to=onnx.TensorProto.FLOAT)]
    onnx.save(make_model(nodes, {"img": (1, 3, 4, 4)}, ["feat"]), erf)
    out = tmp_path / "new" / "deeper" / "argmax.nnef"
    assert main(["convert", str(erf), "-o", str(out), "--check"]) == 2
    err = capsys.readouterr().err
    assert f"{out}: not written, the converted model fails the check" in err and "unsupported op 'argmax_reduce'" in err
    assert ".tmp-" not in err  # the message names the user's path, not the temporary one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["argmax.onnx"]
    old = tmp_path / "old.nnef"
    before = _user_folder(old, nnef=True)
    assert main(["convert", str(erf), "-o", str(old), "--check", "--force"]) == 2
    assert _tree(old) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["argmax.onnx", "old.nnef"]
    assert main(["convert", str(erf), "-o", str(out)]) == 0  # without --check it converts
