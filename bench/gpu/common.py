"""Shared pieces of the GPU device check (bench/gpu/run.sh): paths, dry-run switch, progress lines, result
fragments and statistics.

Each step is its own process and writes one JSON fragment under ``$GPU_CHECK_WORK/results``; `report.py` merges
them into ``$OUT/gpu_results.json`` after every step, so a run killed at its time limit still brings back what it
measured. Fragments are rewritten after every sub-measurement (`Fragment.put`) for the same reason.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CARRY = ROOT / ".gpu_carry"
WORK = Path(os.environ.get("GPU_CHECK_WORK", "/tmp/gpu_check"))
RESULTS = WORK / "results"
MODELS = WORK / "models"
DRY = os.environ.get("GPU_CHECK_DRY", "0") == "1"  # PoCL dry run here: small counts, no NVIDIA search
_T0 = float(os.environ.get("GPU_CHECK_T0", time.time()))

if str(ROOT) not in sys.path:  # the check runs from a plain checkout (PYTHONPATH may lack it)
    sys.path.insert(1, str(ROOT))


def log(msg: str) -> None:
    """A progress line with wall-clock time and seconds since the check started (run.sh sets GPU_CHECK_T0)."""
    print(f"[{time.strftime('%H:%M:%S')} +{time.time() - _T0:5.0f}s] {msg}", flush=True)


def count(full: int, dry: int) -> int:
    """Iteration counts: the real ones on the GPU, small ones for a PoCL dry run on a 2-core CPU."""
    return dry if DRY else full


def model_dir(batch: int = 1) -> Path:
    """Prepared model folders (prepare.py): batch 1 is a full model folder, batch 8 has model.onnx + model.nnef."""
    return MODELS / ("yolov3-tiny" if batch == 1 else f"yolov3-tiny-b{batch}")


def error_text(err: BaseException) -> str:
    """One line for the report plus the innermost frame, so a failure on the remote is readable without logs."""
    tb = traceback.extract_tb(err.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(err).__name__}: {str(err).strip()[:600]}{where}"


class Fragment:
    """One step's results, written to disk after every change."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = RESULTS / f"{name}.json"
        self.data: dict[str, Any] = {"errors": {}}
        self.save()

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def fail(self, key: str, err: BaseException | str) -> None:
        text = err if isinstance(err, str) else error_text(err)
        self.data["errors"][key] = text
        log(f"{self.name}: {key} FAILED: {text}")
        if isinstance(err, BaseException):
            traceback.print_exception(err)
        self.save()

    def attempt(self, key: str, fn: Callable[[], Any], store: bool = True) -> Any:
        """Run one sub-measurement; its result goes under `key` (unless not `store`), an exception under
        errors[key]; never raises (except KeyboardInterrupt/SystemExit), so one failure does not cost the rest."""
        t0 = time.perf_counter()
        log(f"{self.name}: {key} ...")
        try:
            value = fn()
        except Exception as err:
            self.fail(key, err)
            return None
        if value is not None and store:
            self.put(key, value)
        log(f"{self.name}: {key} done in {time.perf_counter() - t0:.1f} s")
        return value

    def save(self) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_jsonable))
        tmp.replace(self.path)


def _jsonable(v: Any) -> Any:
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
    except ImportError:
        pass
    if isinstance(v, Path):
        return str(v)
    return repr(v)


def stats_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    """Latency summary in milliseconds: n, p50, p90, p99, mean, min, max."""
    import numpy as np

    a = np.asarray(seconds, dtype=np.float64) * 1e3
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "min_ms": float(a.min()),
            "max_ms": float(a.max())}


def load_images() -> list[tuple[str, Any]]:
    """The carried real frames as BGR uint8: dog.jpg (car, truck, bicycle) and vtest.avi street frames."""
    import cv2

    out = []
    for path in sorted(CARRY.glob("*.jpg")) + sorted(CARRY.glob("vtest_*.png")):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read {path}")
        out.append((path.name, img))
    if not out:
        raise FileNotFoundError(f"no images in {CARRY}: run bench/gpu/make_carry.py")
    return out


def preprocessed(model: Path, images: Sequence[tuple[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Each image letterboxed into the network input exactly as Detector(preprocess="host") does."""
    from ocl_infer.detection.description import load_description
    from ocl_infer.detection.preprocess import preprocess

    spec = load_description(model).input
    return [(name, {spec.name: preprocess(img, spec)[0]}) for name, img in images]
