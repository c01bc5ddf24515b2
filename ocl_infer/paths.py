"""Where prepared models and sample data live.

`make setup` fills a cache folder: ``<repo>/.cache`` in a source checkout (git-ignored), else
``~/.cache/ocl_infer``; ``OCL_INFER_CACHE`` overrides both. Every command and node defaults to the model
prepared there, so a newcomer needs no flags.
"""

import os
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
