"""First-frame time of the engine: Engine() + first run in fresh processes, with empty program caches (cold) and
then with the caches the first one filled (warm). The child is this module run as a script."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def first_frame_times(nnef_dir: Path, devices: str | None, threads: int) -> dict[str, float | str]:
    """{"cold": s, "cache_written": s, "warm": s}, or a "failed: ..." string in place of a number."""
    out: dict[str, float | str] = {}
    with tempfile.TemporaryDirectory(prefix="ocl-infer-bench-") as tmp:
        env = {
            **os.environ,
            "POCL_CACHE_DIR": str(Path(tmp) / "pocl"),
            "XDG_CACHE_HOME": str(Path(tmp) / "xdg"),  # pyopencl's binary cache
            "OCL_INFER_CACHE": str(Path(tmp) / "ocl_infer"),  # the engine's program cache lives under it
            "POCL_MAX_PTHREAD_COUNT": str(threads),
        }
        cmd = [sys.executable, "-m", "ocl_infer.benchmark.first_frame", str(nnef_dir)]
        if devices:
            cmd += ["--devices", devices]
        for label in ("cold", "warm"):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                out[label] = f"failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1][:100]}"
                break
            reply = json.loads(lines[-1])
            out[label] = float(reply["first_frame_s"])
            if label == "cold":  # the binaries are written in the background after the first frame
                out["cache_written"] = float(reply["cache_written_s"])
    return out


def main(argv: list[str] | None = None) -> int:
    """In a fresh process: seconds from Engine() to the first outputs (program builds included)."""
    import numpy as np

    from ocl_infer.engine import Engine

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("nnef", type=Path)
    p.add_argument("--devices", default=None)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    with Engine(args.nnef, devices=args.devices) as engine:
        feed = {name: np.zeros(spec.shape, np.float32) for name, spec in engine.inputs.items()}
        engine.run(feed)
        elapsed = time.perf_counter() - t0
        engine.wait_for_program_cache(timeout=300)  # so the warm child finds the binaries
        written = time.perf_counter() - t0
    print(json.dumps({"first_frame_s": elapsed, "cache_written_s": written}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
