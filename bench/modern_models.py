"""Modern detectors (issue 18): full-size YOLOv8n / YOLO11n graphs without a model hub, and a per-step-kind
profile of our engine against onnxruntime on any model.

  export   builds the models from Ultralytics' architecture YAMLs (no .pt, nothing downloaded) in a throwaway
           torch venv, calibrates BatchNorm running statistics on random inputs, zeroes the class-logit bias (so
           outputs depend on the input), exports ONNX (opset 13, 416x416, raw head) and prepares a model folder
           from it with `ocl-infer prepare-model --onnx`; each model lands in .cache/models/modern/<name>/
           (model.onnx, model.nnef/, model.json), ready for `ocl-infer detect`, `ocl-infer bench --model` and the
           node.
  profile  for each --model (ONNX file, prepared folder with model.nnef [+ model.onnx], or NNEF folder/.tgz with
           --onnx): our engine vs onnxruntime in one process, alternating blocks of frames, median latency; the
           agreement of the two; our device time per step kind/variant (Engine.profile, minimum per step over a
           few frames); the slowest steps; optionally onnxruntime's own time per op type (--ort-ops).

    .venv/bin/python bench/modern_models.py export --torch-python /tmp/ultra/bin/python
    .venv/bin/python bench/modern_models.py profile --model .cache/models/modern/yolov8n \
        --model .cache/models/modern/yolo11n [--json out.json]

The torch venv: `python3.11 -m venv /tmp/ultra && /tmp/ultra/bin/pip install torch==2.13.0 ultralytics onnx
onnxslim onnxruntime` (torch==2.13.0 takes the CPU wheel on this machine kind; onnxslim and onnxruntime are
what Ultralytics' default `simplify=True` export wants, installed here so it never tries to install them).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the torch-export step runs in a venv without ocl_infer: its imports stay in the functions
    from ocl_infer.benchmark.models import BenchModel

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / ".cache" / "models" / "modern"
MODELS = {"yolov8n": "yolov8n.yaml", "yolo11n": "yolo11n.yaml"}


# --------------------------------------------------------------------------------------------------- export


def torch_export(arch: str, size: int, opset: int, out: Path, seed: int, calib: int, end2end: bool = False) -> None:
    """Runs inside the torch venv (imports torch and ultralytics only): YAML -> calibrated model -> ONNX at `out`."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(seed)
    yolo = YOLO(arch)  # architecture YAML: random initialisation, no weights file
    net = yolo.model
    # Ultralytics' initialisation leaves BatchNorm at mean 0 / var 1 and the class bias at about -10, which makes
    # the raw head almost independent of the input: re-estimate BatchNorm statistics on random inputs (cumulative
    # average, train mode, no grad) and zero the class-logit bias.
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    with torch.no_grad():
        for _ in range(calib):
            net(torch.rand(2, 3, size, size))
    net.eval()
    head = net.model[-1]
    zeroed = 0
    for name in ("cv3", "one2one_cv3"):
        for branch in getattr(head, name, None) or []:
            last = branch[-1] if isinstance(branch, torch.nn.Sequential) else branch
            if getattr(last, "bias", None) is not None:
                with torch.no_grad():
                    last.bias.zero_()
                zeroed += 1
    with torch.no_grad():
        a, b = (net(torch.rand(1, 3, size, size)) for _ in range(2))
        a, b = (t[0] if isinstance(t, (list, tuple)) else t for t in (a, b))
        sens = float((a - b).abs().max() / a.abs().max())
    print(f"{arch}: {len(bns)} BatchNorm layers calibrated on {calib} x 2 random inputs, {zeroed} class biases "
          f"zeroed; raw head of two random inputs differs by {sens:.3g} (relative)", flush=True)
    # defaults otherwise: nms=None (raw head), simplify=True (onnxslim), dynamic=False. nms=False: the one-to-one
    # head's end-to-end output [1, 300, 6] (TopK, GatherElements, Mod) of YOLOv10/YOLO26-class models
    extra = {"nms": False} if end2end else {}
    written = yolo.export(format="onnx", imgsz=size, opset=opset, device="cpu", **extra)
    shutil.move(str(written), out)


def coco_names(tmp: Path) -> list[str]:
    """`--names FILE` with the COCO names of the prepared YOLOv3-tiny (coco.names): a model built from a YAML has
    the names '0'..'79' in its metadata, and the node's default vehicle classes need the real ones."""
    from ocl_infer.paths import default_model_dir

    desc = default_model_dir() / "model.json"
    if not desc.is_file():
        return []
    names = tmp / "coco.names"
    names.write_text("\n".join(json.loads(desc.read_text())["classes"]) + "\n")
    return ["--names", str(names)]


def export(args: argparse.Namespace) -> int:
    """Each model as a prepared folder (`ocl-infer prepare-model --onnx`: model.onnx, model.nnef/, model.json with
    COCO names), so `ocl-infer detect`, `ocl-infer bench --model` and the
    node take it as it is. A folder from before model.json existed keeps its model.onnx (no torch needed)."""
    out_root: Path = args.out
    out_root.mkdir(parents=True, exist_ok=True)
    ocl_infer = Path(sys.executable).parent / "ocl-infer"
    for name in args.models:
        arch = MODELS.get(name, name)
        if Path(arch).is_file():
            arch = str(Path(arch).resolve())  # the child runs in a temporary folder
        folder = out_root / (Path(arch).stem + ("-e2e" if args.end2end else ""))
        if folder.exists():
            if (folder / "model.json").is_file() and not args.force:
                print(f"{folder} exists: skipped (--force to rebuild it)")
                continue
            if not {p.name for p in folder.iterdir()} <= {"model.onnx", "model.nnef", "model.json"}:
                raise SystemExit(f"{folder}: holds files this script did not write; not replacing it")
        with tempfile.TemporaryDirectory(prefix="modern-export-") as tmp:
            onnx = Path(tmp) / "model.onnx"
            if (folder / "model.onnx").is_file() and not args.force:
                shutil.copyfile(folder / "model.onnx", onnx)
            else:
                env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(Path(tmp) / "ultralytics-config")}
                python = str(Path(args.torch_python).absolute())  # not resolve(): the venv symlink finds its packages
                cmd = [python, str(Path(__file__).resolve()), "torch-export", "--arch", arch,
                       "--size", str(args.size), "--opset", str(args.opset), "--seed", str(args.seed),
                       "--calib", str(args.calib), "--out", str(onnx), *(["--end2end"] if args.end2end else [])]
                print("$", " ".join(cmd), flush=True)
                subprocess.run(cmd, check=True, cwd=tmp, env=env)
            stage = Path(tmp) / folder.name
            cmd = [str(ocl_infer), "prepare-model", "--onnx", str(onnx), "-o", str(stage), *coco_names(Path(tmp))]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
            if folder.exists():
                shutil.rmtree(folder)
            shutil.move(str(stage), folder)
        print(f"wrote {folder}/model.onnx, model.nnef, model.json", flush=True)
    return 0


# --------------------------------------------------------------------------------------------------- profile


def ort_ops(model: BenchModel, threads: int, feeds: dict[str, Any], frames: int, tmp: Path) -> dict[str, float]:
    """onnxruntime's own kernel time per op type (its profiler), mean ms per frame; informative only."""
    from ocl_infer.benchmark.backends import BackendOptions, OnnxRuntimeBackend

    warm = OnnxRuntimeBackend(model, BackendOptions(threads), str(tmp / "ort-profile"))
    for _ in range(3):
        warm.run(feeds)
    warm.session.end_profiling()  # drop the warm-up frames: a new session's profile starts with the next run
    ort = OnnxRuntimeBackend(model, BackendOptions(threads), str(tmp / "ort-profile2"))
    for _ in range(frames + 1):
        ort.run(feeds)
    events = json.loads(Path(ort.session.end_profiling()).read_text())
    per_op: dict[str, float] = {}
    for ev in events:
        if ev.get("cat") == "Node" and str(ev.get("name", "")).endswith("_kernel_time"):
            op = ev.get("args", {}).get("op_name", "?")
            per_op[op] = per_op.get(op, 0.0) + ev.get("dur", 0) * 1e-3
    return {k: v / (frames + 1) for k, v in sorted(per_op.items(), key=lambda kv: -kv[1])}


def profile_one(path: Path, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import numpy as np

    from ocl_infer.benchmark.backends import BackendOptions, EngineBackend, OnnxRuntimeBackend
    from ocl_infer.benchmark.measure import latency_summary, load_average, rel_error, time_alternating
    from ocl_infer.benchmark.models import resolve_model

    model = resolve_model(path, tmp, parse_shapes(args.input_shape))
    if args.onnx is not None or args.no_ort:
        model = dataclasses.replace(model, onnx=None if args.no_ort else args.onnx)
    if model.nnef is None:
        raise SystemExit(f"{path}: our engine cannot run it: {model.nnef_error}")
    t0 = time.perf_counter()
    ours = EngineBackend(model, BackendOptions(args.threads, None, {
        "kernels": args.kernels, "fuse": not args.no_fuse, "tuning": not args.no_tuning, "disk_cache": False}),
        precision=args.precision)
    engine = ours.engine
    start_s = time.perf_counter() - t0
    try:
        rng = np.random.default_rng(args.seed)
        feeds = {n: rng.random(s.shape, dtype=np.float32) for n, s in engine.inputs.items()}
        other = {n: rng.random(s.shape, dtype=np.float32) for n, s in engine.inputs.items()}
        plan = engine.plans[0]
        rt = engine.runtimes[0]
        steps = [s for s in plan.steps if s.variant != "alias"]
        by_name = {s.name: s for s in steps}
        res: dict[str, Any] = {
            "model": str(path), "label": model.label, "nnef": str(model.nnef),
            "onnx": str(model.onnx) if model.onnx else None,
            "device": rt.label, "kernels": args.kernels, "precision": args.precision,
            "inputs": {n: list(s.shape) for n, s in engine.inputs.items()},
            "steps": len(steps), "alias_steps": len(plan.steps) - len(steps), "launches": len(rt.launches),
            "engine_start_s": round(start_s, 2), "memory_mib": round(engine.memory_bytes() / 2**20, 1),
        }
        for _ in range(args.warmup):
            got = ours.run(feeds)
        steps_to_time = {"ours": lambda: ours.run(feeds)}
        if model.onnx is not None:
            ort = OnnxRuntimeBackend(model, BackendOptions(args.threads))
            for _ in range(args.warmup):
                ref = ort.run(feeds)
            res["rel_error_vs_onnxruntime"] = {n: rel_error(got[n], ref[n]) for n in got if n in ref}
            # does the output depend on the input at all? (random-init heads barely do: a comparison proves little)
            ref2 = ort.run(other)
            res["output_input_sensitivity"] = {n: rel_error(ref2[n], ref[n]) for n in ref}
            steps_to_time["onnxruntime"] = lambda: ort.run(feeds)
        load0 = load_average()
        times = time_alternating(steps_to_time, args.frames, args.block, args.pause)
        load1 = load_average()
        res["latency_ms"] = {b: latency_summary(t) for b, t in times.items()}
        if model.onnx is not None:
            res["ours_over_onnxruntime"] = (res["latency_ms"]["ours"]["median"]
                                            / res["latency_ms"]["onnxruntime"]["median"])
        res["load_before_after"] = [round(load0, 2), round(load1, 2)]
        # device time per step: OpenCL profiling events, minimum per step over a few frames, spread out in time
        # so that one burst of someone else's work does not hit them all
        best: dict[str, float] = {}
        for _ in range(args.profile_frames):
            time.sleep(args.pause)
            for step_label, ms in engine.profile(feeds):
                best[step_label] = min(ms, best.get(step_label, float("inf")))
        per_step = []
        for step_label, ms in best.items():
            name, _, variant = step_label.rpartition(" [")
            step = by_name.get(name)
            kind = step.kind if step is not None else "?"
            shapes_in = [list(plan.shapes[t]) for t in step.inputs if t in plan.shapes][:1] if step else []
            shape_out = list(plan.shapes[step.outputs[0]]) if step and step.outputs[0] in plan.shapes else []
            attrs = {k: v for k, v in (step.attrs if step else {}).items()
                     if k in ("stride", "strides", "kernel", "size", "axis", "axes", "activation", "act", "groups",
                              "pool", "residual", "op")}
            per_step.append({"step": name, "kind": kind, "variant": variant.rstrip("]"), "ms": ms,
                             "in": shapes_in[0] if shapes_in else [], "out": shape_out,
                             "attrs": {k: str(v) for k, v in attrs.items()}})
        res["per_step"] = per_step
        kinds: dict[tuple[str, str], dict[str, float]] = {}
        for s in per_step:
            k = kinds.setdefault((s["kind"], s["variant"]), {"steps": 0, "ms": 0.0})
            k["steps"] += 1
            k["ms"] += s["ms"]
        total = sum(s["ms"] for s in per_step)
        res["device_ms_total"] = total
        res["per_kind"] = [{"kind": k, "variant": v, "steps": int(d["steps"]), "ms": d["ms"],
                            "share": d["ms"] / total if total else 0.0}
                           for (k, v), d in sorted(kinds.items(), key=lambda kv: -kv[1]["ms"])]
        if args.ort_ops and model.onnx is not None:
            res["onnxruntime_per_op_ms"] = ort_ops(model, args.threads, feeds, args.profile_frames, tmp)
        return res
    finally:
        ours.close()


def parse_shapes(items: list[str]) -> dict[str, tuple[int, ...]] | None:
    shapes = {}
    for item in items:
        name, _, dims = item.partition("=")
        shapes[name] = tuple(int(d) for d in dims.split(","))
    return shapes or None


def markdown(report: dict[str, Any], top: int) -> str:
    m = report["machine"]
    lines = [f"- date: {report['date']}", f"- machine: {m['cpu']}, {m['cores']} cores, {m['system']}, "
             f"Python {m['python']}", f"- OpenCL device: {report['models'][0]['device']}",
             f"- revision: {report['revision']}", f"- command: `{report['command']}`",
             f"- threads: onnxruntime {report['threads']} (intra-op), PoCL "
             f"{os.environ.get('POCL_MAX_PTHREAD_COUNT', 'all cores')}; latency: {report['frames']} frames each, "
             f"alternating blocks of {report['block']}; device time: minimum per step over "
             f"{report['profile_frames']} profiled frames", ""]
    lines += ["| model | ours median ms | onnxruntime median ms | × onnxruntime | ours min / ort min ms | steps "
              "(launches) | device ms (sum of steps) | max rel err vs ort | input sensitivity | load before/after |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["models"]:
        lat = r["latency_ms"]
        ort = lat.get("onnxruntime")
        err = max(r.get("rel_error_vs_onnxruntime", {}).values(), default=float("nan"))
        sens = min(r.get("output_input_sensitivity", {}).values(), default=float("nan"))
        lines.append(
            f"| {r['label']} | {lat['ours']['median']:.2f} | {ort['median'] if ort else float('nan'):.2f} "
            f"| {r.get('ours_over_onnxruntime', float('nan')):.2f} | {lat['ours']['min']:.2f} / "
            f"{ort['min'] if ort else float('nan'):.2f} | {r['steps']} ({r['launches']}) | "
            f"{r['device_ms_total']:.2f} | {err:.1e} | {sens:.2g} | {r['load_before_after'][0]:.2f} / "
            f"{r['load_before_after'][1]:.2f} |")
    for r in report["models"]:
        total = r["device_ms_total"]
        lines += ["", f"**{r['label']}**: device time per step kind (ms, min of "
                  f"{report['profile_frames']} frames), {r['steps']} steps, {total:.2f} ms in all",
                  "", "| kind | variant | steps | ms | share |", "|---|---|---|---|---|"]
        lines += [f"| {k['kind']} | {k['variant']} | {k['steps']} | {k['ms']:.2f} | {100 * k['share']:.1f} % |"
                  for k in r["per_kind"]]
        if top:
            lines += ["", f"slowest {top} steps:", "", "| step | kind [variant] | in → out | attrs | ms |",
                      "|---|---|---|---|---|"]
            for s in sorted(r["per_step"], key=lambda s: -s["ms"])[:top]:
                attrs = ", ".join(f"{k}={v}" for k, v in s["attrs"].items())
                lines.append(f"| {s['step'][:40]} | {s['kind']} [{s['variant']}] | {'x'.join(map(str, s['in']))} → "
                             f"{'x'.join(map(str, s['out']))} | {attrs} | {s['ms']:.3f} |")
        if r.get("onnxruntime_per_op_ms"):
            ops = r["onnxruntime_per_op_ms"]
            lines += ["", "onnxruntime's own profile (mean ms per frame by op type; its profiler adds overhead):",
                      "", "| op type | ms |", "|---|---|"]
            lines += [f"| {k} | {v:.2f} |" for k, v in ops.items()]
    return "\n".join(lines)


def profile(args: argparse.Namespace) -> int:
    from ocl_infer.benchmark.measure import machine_info, revision, wait_for_quiet

    report: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_info(),
        "command": " ".join(["python bench/modern_models.py", *sys.argv[1:]]), "revision": revision(ROOT),
        "threads": args.threads,
        "frames": args.frames, "block": args.block, "profile_frames": args.profile_frames, "models": []}
    with tempfile.TemporaryDirectory(prefix="modern-profile-") as tmp:
        for path in args.model:
            if args.wait_load:
                wait_for_quiet(args.wait_load)
            report["models"].append(profile_one(path, args, Path(tmp)))
    text = markdown(report, args.top)
    print(text)
    if args.json:
        data = json.dumps(report, indent=1)
        if args.json == "-":
            print(data)
        else:
            Path(args.json).write_text(data + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="YOLOv8n / YOLO11n from architecture YAMLs -> ONNX + NNEF (needs a torch venv)")
    e.add_argument("--models", nargs="+", default=list(MODELS), help=f"names ({', '.join(MODELS)}) or YAML files")
    e.add_argument("--torch-python", default="/tmp/ultra/bin/python",
                   help="python of a venv with torch+ultralytics (relative to the current folder)")
    e.add_argument("--out", type=Path, default=DEFAULT_OUT)
    e.add_argument("--size", type=int, default=416)
    e.add_argument("--opset", type=int, default=13)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--calib", type=int, default=8, help="BatchNorm calibration passes (batch of 2 each)")
    e.add_argument("--force", action="store_true", help="rebuild models already there")
    e.add_argument("--end2end", action="store_true",
                   help="export the end-to-end head (nms=False: [1, 300, 6]) of YOLOv10/YOLO26-class models into "
                        "<name>-e2e")
    e.set_defaults(func=export)
    t = sub.add_parser("torch-export", help="(internal: runs inside the torch venv)")
    t.add_argument("--arch", required=True)
    t.add_argument("--size", type=int, required=True)
    t.add_argument("--opset", type=int, required=True)
    t.add_argument("--seed", type=int, required=True)
    t.add_argument("--calib", type=int, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--end2end", action="store_true")
    t.set_defaults(func=lambda a: torch_export(a.arch, a.size, a.opset, a.out, a.seed, a.calib, a.end2end) or 0)
    f = sub.add_parser("profile", help="ours vs onnxruntime latency + our device time per step kind")
    f.add_argument("--model", type=Path, action="append", required=True,
                   help="ONNX file, prepared folder (model.nnef [+ model.onnx]) or NNEF folder/.tgz; repeatable")
    f.add_argument("--onnx", type=Path, default=None, help="ONNX reference for an NNEF --model")
    f.add_argument("--input-shape", action="append", default=[], metavar="NAME=1,3,416,416",
                   help="fix an input's shape when converting an ONNX with dynamic dims")
    f.add_argument("--frames", type=int, default=30, help="timed frames per backend (default 30)")
    f.add_argument("--block", type=int, default=5, help="frames per alternating block (default 5)")
    f.add_argument("--pause", type=float, default=0.1, help="seconds of pause before each block (default 0.1)")
    f.add_argument("--warmup", type=int, default=3)
    f.add_argument("--profile-frames", type=int, default=8, help="profiled frames; min per step (default 8)")
    f.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    f.add_argument("--kernels", choices=("auto", "cpu", "gpu"), default="auto")
    f.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    f.add_argument("--no-fuse", action="store_true")
    f.add_argument("--no-tuning", action="store_true", help="ignore cached/shipped tuning tables")
    f.add_argument("--no-ort", action="store_true", help="our engine only")
    f.add_argument("--ort-ops", action="store_true", help="also onnxruntime's own time per op type")
    f.add_argument("--top", type=int, default=12, help="list the N slowest steps (0: none)")
    f.add_argument("--wait-load", type=float, default=0.0, metavar="LOAD",
                   help="before each model, wait (up to 10 min) for the 1-min load average to drop below LOAD")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--json", default=None, metavar="FILE", help="write the raw numbers as JSON ('-': stdout)")
    f.set_defaults(func=profile)
    args = p.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
