"""`ocl-infer tune`: tune the conv kernels of a model on each device (blocking x work-group size, per layer
shape), save the device's tuning table under <cache>/tuning/, and print rule vs tuned per layer.

The tables are a cache that grows: an entry already there is re-tuned and replaced only with --force, and the
tables are saved (atomically) only after every device was tuned, so a failed run leaves them as they were."""

import argparse
from pathlib import Path
from typing import Any


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("tune", help="tune conv kernels per device and layer shape; cache the table on disk")
    p.add_argument("model", type=Path, nargs="?", default=None, metavar="MODEL",
                   help="NNEF folder or .tgz, or a prepared model folder (default: the prepared YOLOv3-tiny)")
    p.add_argument("--devices", nargs="+", default=None,
                   help="OpenCL devices: 'all', indices, 'cl:1', 'P:D', name parts, gpu/cpu (default: first)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all candidates (default 3)")
    p.add_argument("--reps", type=int, default=2, help="timed passes per round (default 2); the minimum counts")
    p.add_argument("--force", action="store_true", help="re-tune layers the table already has")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="storage precision to tune for")
    p.add_argument("--no-fuse", action="store_true", help="tune the plan without fusion (as Engine(fuse=False))")
    p.add_argument("--compare", type=int, default=0, metavar="FRAMES",
                   help="then run the whole network FRAMES times with the rules and with the table, interleaved "
                        "in blocks of 5, and print both medians")
    p.add_argument("--kernels", choices=("auto", "cpu", "gpu"), default="auto",
                   help="kernel family: auto (by device type), or force the CPU or the GPU family")
    p.set_defaults(func=run)


def compare_latency(path: Path, device: int, frames: int, fuse: bool, precision: str, kernels: str = "auto") -> str:
    """Whole-network wall time per frame, rules vs tuned table, on one device in one process: two engines,
    interleaved blocks of 5 frames (a neighbour's burst hits both), median and minimum of each."""
    import os
    import time

    import numpy as np

    from ocl_infer.engine import Engine

    # no disk cache: its background binary writer would compete with the first engine's frames
    engines = {name: Engine(path, devices=[device], fuse=fuse, precision=precision, kernels=kernels,
                            tuning=name == "tuned",
                            disk_cache=False) for name in ("rules", "tuned")}
    try:
        feed = {n: np.random.default_rng(0).random(s.shape, dtype=np.float32)
                for n, s in engines["rules"].inputs.items()}
        times: dict[str, list[float]] = {name: [] for name in engines}
        load0 = os.getloadavg()[0]
        while len(times["tuned"]) < frames:
            for name, engine in engines.items():
                for _ in range(5):
                    t0 = time.perf_counter()
                    engine.run(feed)
                    times[name].append(time.perf_counter() - t0)
        med = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
        low = {name: 1e3 * min(t) for name, t in times.items()}
        # per step inside the network: OpenCL event times, minimum of 10 profiled frames, interleaved
        steps: dict[str, dict[str, float]] = {name: {} for name in engines}
        for _ in range(10):
            for name, engine in engines.items():
                for step, ms in engine.profile(feed):
                    steps[name][step] = min(ms, steps[name].get(step, float("inf")))
        lines = ["| step (in the network, min of 10 frames) | rules ms | tuned ms |", "|---|---|---|"]
        for step, ms in steps["rules"].items():
            tuned = next((t for s, t in steps["tuned"].items() if s.split(" [")[0] == step.split(" [")[0]), None)
            lines.append(f"| {step} | {ms:.3f} | {'n/a' if tuned is None else f'{tuned:.3f}'} |")
        lines.append(f"| **all** | **{sum(steps['rules'].values()):.2f}** | **{sum(steps['tuned'].values()):.2f}** |")
        lines += ["", f"whole network, {len(times['tuned'])} frames each, load {load0:.2f} -> "
                  f"{os.getloadavg()[0]:.2f}: rules median {med['rules']:.2f} ms (min {low['rules']:.2f}), tuned "
                  f"median {med['tuned']:.2f} ms (min {low['tuned']:.2f}): {med['rules'] / med['tuned']:.2f}x"]
        return "\n".join(lines)
    finally:
        for engine in engines.values():
            engine.close()


def model_path(model: Path | None) -> Path:
    """The NNEF model: given as is, or the `model.nnef` of a prepared model folder (default: YOLOv3-tiny)."""
    from ocl_infer import paths

    folder = paths.default_model_dir() if model is None else model
    return folder / "model.nnef" if (folder / "model.nnef").exists() else folder


def programs_of(plan: Any) -> tuple[int, int]:
    """(programs to compile, kernel launch configurations PoCL specialises) of a plan: a cold start pays for
    each program (~0.3-0.6 s here) and each local size of a kernel at its first launch."""
    from ocl_infer.engine.kernels.registry import kernel_for

    programs, configs = set(), set()
    for step in plan.steps:
        if step.variant == "alias":
            continue
        k = kernel_for(step)(step, plan.shapes)
        key = (k.source(), k.build_options())
        programs.add(key)
        attrs = step.attrs
        configs.add((key, tuple(attrs.get("local") or ()), tuple(attrs.get("in_local") or ()),
                     tuple(attrs.get("out_local") or ())))
    return len(programs), len(configs)


def run(args: argparse.Namespace) -> int:
    import os
    import time

    from ocl_infer.engine.devices.facts import facts_of
    from ocl_infer.engine.devices.selection import select_devices
    from ocl_infer.engine.graph import load_graph
    from ocl_infer.engine.plan import make_plan
    from ocl_infer.engine.tuning import TuningTable, describe, tune_graph
    from ocl_infer.errors import ConfigError

    if args.rounds < 1 or args.reps < 1:
        raise ConfigError(f"--rounds and --reps must be >= 1, got {args.rounds}, {args.reps}")
    path = model_path(args.model)
    graph = load_graph(path)
    fuse = not args.no_fuse
    # Tune every device first and save the tables only when all succeeded: a failure or Ctrl-C on any device
    # leaves every table on disk as it was (each save is atomic; entries are replaced only with --force).
    runs = []
    for info in select_devices(args.devices):
        facts = facts_of(info, args.kernels)
        table = TuningTable.load(facts.key)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        results = tune_graph(graph, info, table, rounds=args.rounds, reps=args.reps, fuse=fuse,
                             precision=args.precision, force=args.force, progress=lambda s: print(s, flush=True),
                             kernels=args.kernels)
        runs.append((info, facts, table, results, load0, time.perf_counter() - t0))
    saved_tables = [table.save() for _, _, table, _, _, _ in runs]
    for (info, facts, table, results, load0, seconds), saved in zip(runs, saved_tables, strict=True):
        rule_plan = make_plan(graph, facts, fuse=fuse, precision=args.precision)
        tuned_plan = make_plan(graph, facts, fuse=fuse, precision=args.precision, tuning=table)
        print(f"\n{info.label}: {path}, {seconds:.0f} s, load {load0:.2f} -> {os.getloadavg()[0]:.2f}, "
              f"rounds {args.rounds} x reps {args.reps}; table {saved}\n")
        print("| layer | kernel | rule | rule ms | tuned | tuned ms | speed-up |")
        print("|---|---|---|---|---|---|---|")
        rule_total = tuned_total = 0.0
        for r in results:
            name = r.layer.split(" -> ")[1].split(" ")[0] if " -> " in r.layer else r.layer
            more = f" (x{r.layers})" if r.layers > 1 else ""
            cached = " (cached)" if r.cached else ""
            print(f"| {name}{more} | {r.variant} | {describe(r.rule)} | {r.rule_ms:.3f} | {describe(r.best)} | "
                  f"{r.best_ms:.3f}{cached} | {r.speedup:.2f}x |")
            rule_total += r.rule_ms * r.layers
            tuned_total += r.best_ms * r.layers
        if tuned_total > 0:
            print(f"| **tuned steps, all** | | | **{rule_total:.2f}** | | **{tuned_total:.2f}** | "
                  f"**{rule_total / tuned_total:.2f}x** |")
        (rp, rc), (tp, tc) = programs_of(rule_plan), programs_of(tuned_plan)
        print(f"\nprograms to compile at a cold start: rule {rp}, tuned {tp}; kernel launch configurations: "
              f"rule {rc}, tuned {tc}")
        if args.compare > 0:
            print("\n" + compare_latency(path, info.index, args.compare, fuse, args.precision, args.kernels),
                  flush=True)
    return 0
