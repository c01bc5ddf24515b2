"""Where prepared models and sample data live.

`make setup` fills a cache folder: ``<repo>/.cache`` in a source checkout (git-ignored), else
``~/.cache/ocl_infer``; ``OCL_INFER_CACHE`` overrides both. Every command and node defaults to the model
prepared there, so a newcomer needs no flags.
"""

import os
import shutil
import time
from pathlib import Path

DEFAULT_MODEL_NAME = "yolov3-tiny"


def repo_root() -> Path | None:
    """The source checkout this package runs from, if it runs from one (editable install)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "Makefile").is_file() and (root / "package.xml").is_file() else None


def cache_dir() -> Path:
    env = os.environ.get("OCL_INFER_CACHE")
    if env:
        return Path(env).expanduser()
    root = repo_root()
    if root is not None:
        return root / ".cache"
    return Path.home() / ".cache" / "ocl_infer"


def models_dir() -> Path:
    return cache_dir() / "models"


def data_dir() -> Path:
    """Sample footage fetched by `make setup` (darknet's images, OpenCV's vtest.avi)."""
    return cache_dir() / "data"


def downloads_dir() -> Path:
    return cache_dir() / "downloads"


def default_model_dir() -> Path:
    """The prepared default detector: a folder with model.nnef/, model.onnx and model.json."""
    return models_dir() / DEFAULT_MODEL_NAME


STALE_AFTER_S = 3600.0  # no extraction, job or binary write takes this long: an older temp entry is an orphan


def remove_stale(folder: Path, prefixes: tuple[str, ...], older_than_s: float = STALE_AFTER_S) -> int:
    """Delete entries of `folder` whose names start with one of `prefixes` and that were last modified more
    than `older_than_s` ago: temporary files and folders left by a process killed mid-write. Returns how many."""
    removed = 0
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0
    cutoff = time.time() - older_than_s
    for entry in entries:
        if not entry.name.startswith(prefixes):
            continue
        try:
            if entry.lstat().st_mtime >= cutoff:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError:  # gone already, or not ours to remove: harmless
            continue
    return removed
