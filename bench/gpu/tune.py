"""`ocl-infer tune` on the GPU, within a time limit, keeping whatever was tuned when the limit comes.

The CLI saves its table only at the end and has no time limit, so a `timeout` around it would lose everything.
This drives the same `tune_graph` the CLI uses, saves the table after every tuned layer and stops at the limit.
When every layer got tuned, the CLI itself then runs on the filled table (all entries cached, nothing re-tuned):
its rule-vs-tuned table and its `--compare` whole-network medians go into the results verbatim.

    python3 bench/gpu/tune.py --limit 45 --copy-to "$OUT/tuning_table.json"
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import DRY, Fragment, count, log, model_dir


class OutOfTime(Exception):
    """Raised from the progress hook once the limit has passed (the table is saved first)."""


def tune(limit_s: float, rounds: int, reps: int, frag: Fragment, copy_to: Path | None) -> dict[str, Any]:
    from ocl_infer.engine.devices.selection import select_devices
    from ocl_infer.engine.engine import facts_of
    from ocl_infer.engine.graph import load_graph
    from ocl_infer.engine.plan import make_plan
    from ocl_infer.engine.tuning import TuningTable, describe, tunable_steps, tune_graph

    graph = load_graph(model_dir(1) / "model.nnef")
    info = select_devices(None)[0]
    facts = facts_of(info)
    try:  # our own measurement, never a table shipped for the same device name
        table = TuningTable.load(facts.key, shipped=None)
    except TypeError:
        table = TuningTable.load(facts.key)
    groups = {(cls.variant, sig) for _, cls, sig in tunable_steps(make_plan(graph, facts))}
    deadline = time.monotonic() + limit_s
    lines: list[str] = []
    last = [time.monotonic()]  # when the previous layer finished

    def progress(line: str) -> None:
        """After each tuned layer: save (and copy out) the table, so a kill by the step's timeout loses nothing."""
        log(f"tune: {line}")
        lines.append(line)
        frag.put("progress", lines)
        saved = table.save()
        if copy_to is not None:
            shutil.copyfile(saved, copy_to)
        now = time.monotonic()
        took, last[0] = now - last[0], now
        if now + took > deadline:  # the next layer would likely end past the limit (the check comes after it)
            raise OutOfTime

    t0 = time.perf_counter()
    complete = True
    results = []
    try:
        results = tune_graph(graph, info, table, rounds=rounds, reps=reps, force=True, progress=progress)
    except OutOfTime:
        complete = False
        log(f"tune: time limit of {limit_s:.0f} s reached after {len(lines)} of {len(groups)} layer shapes")
    path = table.save()
    return {"device": info.label, "device_key": facts.key, "seconds": time.perf_counter() - t0,
            "limit_s": limit_s, "rounds": rounds, "reps": reps, "complete": complete,
            "layer_shapes": len(groups), "tuned_layer_shapes": len(lines), "table": str(path),
            "entries": len(table), "progress": lines,
            "results": [{"layer": r.layer, "variant": r.variant, "signature": r.signature, "layers": r.layers,
                         "rule": describe(r.rule), "rule_ms": r.rule_ms, "best": describe(r.best),
                         "best_ms": r.best_ms, "speedup": r.speedup, "tried": r.tried, "dropped": r.dropped}
                        for r in results]}


def cli_compare(frames: int, timeout_s: float) -> dict[str, Any]:
    """`ocl-infer tune MODEL --compare FRAMES` on the filled table: its printed tables, verbatim."""
    cmd = [sys.executable, "-m", "ocl_infer.cli", "tune", str(model_dir(1)), "--compare", str(frames)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False, env=os.environ)
    print(proc.stdout[-6000:], proc.stderr[-3000:], sep="\n", flush=True)
    return {"command": " ".join(["ocl-infer", *cmd[3:]]), "rc": proc.returncode,
            "seconds": time.perf_counter() - t0, "stdout": proc.stdout[-12000:], "stderr": proc.stderr[-3000:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=float, default=45.0, help="seconds of tuning (default 45)")
    parser.add_argument("--compare-timeout", type=float, default=40.0)
    parser.add_argument("--copy-to", type=Path, default=None, help="copy the saved table here")
    args = parser.parse_args()
    frag = Fragment("tune")
    rounds, reps = (1, 1) if DRY else (3, 2)  # the CLI's defaults on the GPU
    res = frag.attempt("tune", lambda: tune(args.limit, rounds, reps, frag, args.copy_to))
    if res is None:
        return 1
    if args.copy_to is not None and Path(res["table"]).is_file():
        shutil.copyfile(res["table"], args.copy_to)
        frag.put("copied_to", str(args.copy_to))
    if res["complete"]:
        frag.attempt("cli_compare", lambda: cli_compare(count(50, 5), args.compare_timeout))
    else:
        frag.put("cli_compare", {"skipped": "tuning did not finish within the limit; the CLI would tune the rest"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
