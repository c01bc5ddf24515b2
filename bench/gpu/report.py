"""Merge the GPU check's step fragments into gpu_results.json, and render that into a markdown page.

run.sh calls it after every step (so a run cut off at its time limit still leaves a complete JSON and page):

    python3 bench/gpu/report.py --collect /tmp/gpu_check/results --json $OUT/gpu_results.json --md $OUT/gpu.md

and later, on the results brought back, to write the docs page:

    python3 bench/gpu/report.py gpu_results.json -o docs/gpu.md

Standard library only (it must run before anything is installed, and anywhere). Every number in the JSON shows
up in a table; sections a step did not produce say so, and every recorded error is listed with its reason.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

FORMAT = "ocl_infer gpu check"
VERSION = 1
TITLE = "ocl_infer on an NVIDIA GPU: device check"


# ------------------------------------------------------------------------------------------------------ collect


def pytest_summary(log: Path) -> dict[str, Any]:
    """Counts from a pytest -q log: its final summary line if it got that far, else the progress characters."""
    if not log.is_file():
        return {"ran": False}
    text = log.read_text(errors="replace")
    lines = text.splitlines()
    out: dict[str, Any] = {"ran": True, "log": log.name, "lines": len(lines)}
    summary = next((ln.strip(" =") for ln in reversed(lines)
                    if re.search(r"\d+ (passed|failed|error|errors|skipped|deselected)\b", ln) and " in " in ln),
                   None)
    out["summary"] = summary
    counts: dict[str, int] = {}
    if summary:
        for n, what in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)", summary):
            counts[what.rstrip("s") if what.startswith("error") else what] = int(n)
    else:  # cut off: count the progress characters of the -q lines
        progress = "".join(ln.split(" [")[0].strip() for ln in lines if re.fullmatch(r"[.FEsxX]+( +\[ *\d+%\])?",
                                                                                      ln.strip()))
        counts = {"passed": progress.count("."), "failed": progress.count("F"), "error": progress.count("E"),
                  "skipped": progress.count("s")}
        out["cut_off"] = True
    out["counts"] = counts
    out["failed_tests"] = [ln.split(" ", 1)[1][:300] for ln in lines if ln.startswith(("FAILED ", "ERROR "))][:50]
    out["tail"] = "\n".join(lines[-25:])
    return out


def collect(results: Path, pytest_log: Path | None) -> dict[str, Any]:
    """Every fragment (*.json), text capture (*.txt) and the steps list (steps.jsonl) under `results`."""
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION,
                           "collected": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    for path in sorted(results.glob("*.json")):
        try:
            doc[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            doc[path.stem] = {"errors": {"fragment": f"unreadable {path.name}: {err}"}}
    for path in sorted(results.glob("*.txt")):
        doc[f"{path.stem}_text"] = path.read_text(errors="replace")[-20000:]
    steps = []
    if (results / "steps.jsonl").is_file():
        for line in (results / "steps.jsonl").read_text().splitlines():
            try:
                steps.append(json.loads(line))
            except ValueError:
                steps.append({"step": line[:100], "status": "unparsable"})
    doc["steps"] = steps
    if pytest_log is not None:
        doc["pytest"] = pytest_summary(pytest_log)
    return doc


# ------------------------------------------------------------------------------------------------------- render


def fmt(v: Any, digits: int = 3) -> str:
    """Numbers readable in a table: 3 significant digits for small floats, thousands separators for big ones."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10000 else str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        if v == 0:
            return "0"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"
        return f"{v:.{digits}g}"
    text = str(v).replace("|", "\\|").replace("\n", " ")
    return text


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return out


def flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted key, scalar) pairs of nested dicts/lists: the fallback that keeps every number visible."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value):
        for i, v in enumerate(value):
            yield from flatten(v, f"{prefix}[{i}]")
    elif isinstance(value, list):
        yield prefix, ", ".join(fmt(v) for v in value) if value else "(none)"
    else:
        yield prefix, value


def kv_table(value: Any, skip: Sequence[str] = ()) -> list[str]:
    rows = [(k, v) for k, v in flatten(value) if not any(k == s or k.startswith(f"{s}.") for s in skip)]
    return table(("value", ""), rows) if rows else ["(nothing recorded)"]


def code(text: str) -> list[str]:
    return ["```", text.rstrip(), "```"]


def lat_row(label: str, d: dict[str, Any] | None, extra: Sequence[Any] = ()) -> list[Any]:
    d = d or {}
    return [label, d.get("p50_ms"), d.get("p90_ms"), d.get("p99_ms"), d.get("mean_ms"), d.get("min_ms"),
            d.get("max_ms"), d.get("n"), d.get("cpu_us_per_frame"), *extra]


LAT_HEADER = ("what", "p50 ms", "p90 ms", "p99 ms", "mean ms", "min ms", "max ms", "frames", "host CPU µs/frame")


def section_header(doc: dict[str, Any]) -> list[str]:
    probe = (doc.get("probe") or {}).get("machine", {})
    icd = doc.get("opencl_icd") or {}
    gpus = (icd.get("nvidia_smi") or {}).get("gpus") or []
    meta = doc.get("meta") or {}
    lines = [f"# {TITLE}", ""]
    if meta.get("dry_run") or probe.get("dry_run"):
        lines += ["> **Dry run** (GPU_CHECK_DRY=1, PoCL on the CPU, small counts): these numbers only show that "
                  "the check works end to end; they say nothing about a GPU.", ""]
    lines += [f"- date: {meta.get('started', '–')} (finished {meta.get('finished') or doc.get('collected', '–')})",
              f"- command: `{meta.get('command', 'bash bench/gpu/run.sh')}`"
              f" (written by bench/gpu/report.py from gpu_results.json)"]
    for g in gpus:
        lines.append(f"- GPU: {g.get('name')}, driver {g.get('driver_version')}, {g.get('memory.total')}, "
                     f"compute capability {g.get('compute_cap')}, max SM clock {g.get('clocks.max.sm')}, "
                     f"power limit {g.get('power.limit')}")
    if not gpus and icd.get("nvidia_smi"):
        lines.append(f"- GPU: nvidia-smi gave no GPU ({icd['nvidia_smi'].get('error', '')})")
    for p in ((doc.get("probe") or {}).get("opencl") or {}).get("platforms", []):
        for d in p.get("devices", []):
            lines.append(f"- OpenCL: {p.get('name')} {p.get('version', '')} | {d.get('name')} | driver "
                         f"{d.get('driver_version')} | {d.get('opencl_c_version', '')} | {d.get('type')}")
    if probe:
        pk = probe.get("packages", {})
        lines.append(f"- host: {probe.get('cpu', '?')}, {probe.get('cores')} cores; Python {probe.get('python')}; "
                     + ", ".join(f"{k} {v}" for k, v in pk.items() if v))
    if meta.get("tree_sha256"):
        lines.append(f"- code: git {meta.get('git_commit', 'unknown')}; sha256 of ocl_infer/, test/engine/, bench/gpu/ "
                     f"sources {meta['tree_sha256'][:16]}")
    return lines


def section_summary(doc: dict[str, Any]) -> list[str]:
    """The few numbers a reader wants first, each pointing at its table below."""
    be = doc.get("bench_engine") or {}
    bt = doc.get("bench_torch") or {}
    rows: list[list[Any]] = []

    def add(label: str, d: dict[str, Any] | None, note: str = "") -> None:
        if d and d.get("p50_ms") is not None:
            rows.append([label, d.get("p50_ms"), d.get("p99_ms"), note])

    add("ours fp32, engine.run (host tensor in/out)", (be.get("fp32") or {}).get("latency"))
    add("ours fp16 storage, engine.run", (be.get("fp16") or {}).get("latency"))
    add("ours fp32, run_image (raw 768x576 frame, device letterbox)", be.get("image_path"))
    for r in bt.get("latency", []) if isinstance(bt.get("latency"), list) else []:
        if r.get("cudnn_benchmark"):
            add(f"PyTorch {r['config']}, cudnn.benchmark, end to end", r.get("e2e"))
    for r in bt.get("cuda_graph", []) if isinstance(bt.get("cuda_graph"), list) else []:
        add(f"PyTorch {r['config']}, CUDA graph, end to end", r.get("e2e"))
    add("onnxruntime CPU", be.get("onnxruntime_cpu"), f"{(be.get('onnxruntime_cpu') or {}).get('threads')} threads")
    lines = ["## Summary", ""]
    lines += table(("batch-1 latency", "p50 ms", "p99 ms", "note"), rows) if rows else ["(no latency measured)"]
    ff = be.get("first_frame") or {}
    if ff:
        lines += ["", "First frame (Engine() to first result, fresh process): cold "
                  f"{fmt((ff.get('cold') or {}).get('first_frame_s'))} s, warm "
                  f"{fmt((ff.get('warm') or {}).get('first_frame_s'))} s."]
    tp = be.get("throughput") or []
    if tp:
        best = max(tp, key=lambda r: r.get("frames_per_s", 0))
        lines.append(f"Best engine throughput at batch 1: {fmt(best.get('frames_per_s'))} frames/s "
                     f"(max_inflight {best.get('max_inflight')}).")
    corr = doc.get("correctness") or {}
    det = corr.get("detections") or {}
    verdicts = [f"{k}: {'equal' if v.get('equal') else 'DIFFERENT' if 'equal' in v else 'failed'}"
                for k, v in det.items() if k != "reference" and isinstance(v, dict)]
    if verdicts:
        lines.append("Detections against onnxruntime (boxes ≤ 0.5 px, scores ≤ 1e-3): " + "; ".join(verdicts) + ".")
    py = doc.get("pytest") or {}
    if py.get("ran"):
        lines.append(f"Op tests on the GPU: {py.get('summary') or py.get('counts')}"
                     f"{' (cut off by its timeout)' if py.get('cut_off') else ''}.")
    return lines


def section_steps(doc: dict[str, Any]) -> list[str]:
    rows = [[s.get("step"), s.get("status"), s.get("rc"), s.get("seconds"), s.get("timeout_s"), s.get("note", "")]
            for s in doc.get("steps", [])]
    return ["## Steps", "", *table(("step", "status", "exit", "seconds", "timeout s", "note"), rows)]


def section_opencl(doc: dict[str, Any]) -> list[str]:
    icd = doc.get("opencl_icd") or {}
    lines = ["## OpenCL driver registration", ""]
    if not icd:
        return [*lines, "(not run: dry run on the existing platform, or the step did not start)"]
    reg = icd.get("registered")
    lines.append(f"Pattern `{icd.get('pattern')}`; registered: "
                 + (f"`{reg['library']}` via OCL_ICD_VENDORS={reg['icd_dir']}" if reg else "**nothing**"))
    lines += ["", *table(("searched", "result"), (icd.get("searched") or {}).items())]
    if icd.get("ldd"):
        missing = icd["ldd"].get("not_found")
        said = icd["ldd"].get("error") or ("missing " + ", ".join(missing) if missing else "every dependency found")
        lines.append(f"\n`ldd` of the library: {said}.")
    if icd.get("related_libraries"):
        lines += ["", *table(("related library", "found"),
                             [[k, ", ".join(v) or "(none)"] for k, v in icd["related_libraries"].items()])]
    if icd.get("etc_vendors") is not None:
        lines.append(f"\n/etc/OpenCL/vendors: {', '.join(icd['etc_vendors']) or '(none)'}")
    if not reg and icd.get("nvidia_folder"):
        lines += ["", "Files under /usr/local/nvidia:", *code("\n".join(icd["nvidia_folder"]))]
    if doc.get("probe_filenames"):  # run.sh's second try, when the vendor folder gave no GPU platform
        worked = not doc["probe_filenames"].get("errors")
        lines.append(f"\nFallback with OCL_ICD_FILENAMES (library named directly): {'worked' if worked else 'failed'}")
    if doc.get("devices_text"):
        lines += ["", "`python3 -m ocl_infer.cli devices`:", *code(doc["devices_text"])]
    return lines


def section_correctness(doc: dict[str, Any]) -> list[str]:
    c = doc.get("correctness") or {}
    lines = ["## Correctness against onnxruntime (CPU)", ""]
    if not c:
        return [*lines, "(not run)"]
    lines.append(f"Images: {', '.join(c.get('images', []))}; input letterboxed as Detector(preprocess='host').")
    for precision in ("fp32", "fp16"):
        e = c.get(f"engine_{precision}")
        if not e:
            continue
        lines += ["", f"### Engine {precision}: raw outputs", "",
                  f"Device {', '.join(e.get('device', []))}; kernels {', '.join(e.get('kernels', []))}; "
                  f"{e.get('launches_per_frame')} launches per frame; {e.get('tuned_steps')} tuned steps.", ""]
        rows = [[img, out, v.get("max_abs"), v.get("ref_max_abs"), v.get("rel")]
                for img, outs in (e.get("images") or {}).items() for out, v in outs.items()]
        lines += table(("image", "output", "max abs error", "max abs of reference", "relative"), rows)
        dev = e.get("device_preprocess_vs_host")
        if dev:
            lines += ["", "Device pre-processing (`run_image`, raw frame) against the host tensor, same engine:", ""]
            rows = [[img, out, v.get("max_abs"), v.get("rel")] for img, outs in dev.items() for out, v in outs.items()]
            lines += table(("image", "output", "max abs difference", "relative"), rows)
    det = c.get("detections") or {}
    if det:
        tol = c.get("tolerances", {})
        lines += ["", f"### Detections (all 80 classes; equal = same classes, boxes ≤ {tol.get('box_px')} px, "
                  f"scores ≤ {tol.get('score')})", ""]
        rows = []
        for variant, v in det.items():
            if variant == "reference" or not isinstance(v, dict):
                continue
            if "error" in v:
                rows.append([variant, "–", "failed", "", "", "", "", v["error"]])
                continue
            for img, r in (v.get("images") or {}).items():
                rows.append([variant, img, r.get("equal"), f"{r.get('reference')}/{r.get('got')}", r.get("paired"),
                             r.get("max_box_diff_px"), r.get("max_score_diff"),
                             "; ".join([*(f"missing {m}" for m in r.get("missing", [])),
                                        *(f"extra {x}" for x in r.get("extra", []))])])
        lines += table(("variant", "image", "equal", "ref/got", "paired", "max box diff px", "max score diff",
                        "unpaired"), rows)
        ref = det.get("reference") or {}
        if ref:
            lines += ["", "Reference detections (onnxruntime):", ""]
            lines += table(("image", "detections"), [[img, "; ".join(d) or "(none)"] for img, d in ref.items()])
    return lines


def section_tune(doc: dict[str, Any]) -> list[str]:
    t = doc.get("tune") or {}
    lines = ["## Tuning (`ocl-infer tune`, time-limited)", ""]
    res = t.get("tune")
    if not res and t.get("progress"):
        return [*lines, "Cut off by the step's timeout after these layers (the table is saved after each one):",
                *code("\n".join(t["progress"]))]
    if not res:
        return [*lines, "(not run)"]
    lines.append(f"{res.get('device')}: {res.get('tuned_layer_shapes')} of {res.get('layer_shapes')} layer shapes "
                 f"tuned in {fmt(res.get('seconds'))} s (limit {fmt(res.get('limit_s'))} s, rounds "
                 f"{res.get('rounds')} x reps {res.get('reps')}, {'complete' if res.get('complete') else 'CUT OFF'}); "
                 f"table with {res.get('entries')} entries copied to tuning_table.json.")
    rows = [[r.get("layer"), r.get("variant"), r.get("layers"), r.get("rule"), r.get("rule_ms"), r.get("best"),
             r.get("best_ms"), r.get("speedup"), f"{r.get('tried')}/{r.get('dropped')}"]
            for r in res.get("results", [])]
    if rows:
        lines += ["", *table(("layer", "kernel", "layers", "rule", "rule ms", "tuned", "tuned ms", "speed-up",
                              "tried/dropped"), rows)]
    elif res.get("progress"):
        lines += ["", *code("\n".join(res["progress"]))]
    cli = t.get("cli_compare") or {}
    if cli.get("stdout"):
        lines += ["", f"`{cli.get('command')}` (exit {cli.get('rc')}, {fmt(cli.get('seconds'))} s):", "",
                  cli["stdout"].strip()]
    elif cli.get("skipped"):
        lines += ["", f"CLI comparison skipped: {cli['skipped']}"]
    return lines


def section_engine(doc: dict[str, Any]) -> list[str]:
    be = doc.get("bench_engine") or {}
    lines = ["## Engine benchmark", ""]
    if not be or set(be) <= {"errors"}:
        return [*lines, "(not run)"]
    lines.append(f"Input: {be.get('input', '–')}.")
    ff = be.get("first_frame") or {}
    if ff:
        rows = [[label, d.get("first_frame_s"), d.get("engine_init_s"), d.get("import_s"), d.get("process_s"),
                 d.get("compiled"), d.get("from_disk"), d.get("cache_written_s"), d.get("error", "")]
                for label, d in ff.items() if isinstance(d, dict)]
        lines += ["", f"### First frame ({ff.get('caches', '')})", "",
                  *table(("start", "Engine() → first result s", "Engine() s", "imports s", "whole process s",
                          "programs compiled", "programs from disk", "cache written s (after)", "error"), rows)]
    lat_rows = []
    for key, label in (("fp32", "engine.run fp32"), ("fp16", "engine.run fp16 storage")):
        if (be.get(key) or {}).get("latency"):
            e = be[key]
            lat_rows.append(lat_row(label, e["latency"], [e.get("plan", {}).get("launches_per_frame"),
                                                          e.get("max_abs_vs_onnxruntime")]))
    if be.get("image_path"):
        lat_rows.append(lat_row("engine.run_image fp32 (raw frame)", be["image_path"],
                                ["+1 (image kernel)", None]))
    if (be.get("batch8") or {}).get("latency"):
        b = be["batch8"]
        lat_rows.append(lat_row("engine.run fp32, batch 8 (per call)", b["latency"],
                                [b.get("plan", {}).get("launches_per_frame"), b.get("max_abs_vs_onnxruntime")]))
    if be.get("onnxruntime_cpu"):
        o = be["onnxruntime_cpu"]
        lat_rows.append(lat_row(f"onnxruntime {o.get('version')} CPU, {o.get('threads')} threads", o,
                                ["–", "(the reference)"]))
    if lat_rows:
        lines += ["", "### Latency (batch 1 unless said; blocking calls, after warm-up)", "",
                  *table((*LAT_HEADER, "kernel launches/frame", "max abs vs onnxruntime"), lat_rows)]
    tp = list(be.get("throughput") or [])
    if be.get("batch8_throughput"):
        tp.append(be["batch8_throughput"])
    if tp:
        rows = [[r.get("batch"), r.get("max_inflight"), r.get("calls"), r.get("frames_per_s"), r.get("wall_s"),
                 r.get("cpu_us_per_frame"), r.get("submit_call_us_p50"), r.get("submit_call_us_p99")] for r in tp]
        lines += ["", "### Throughput (`engine.submit`, as many frames outstanding as max_inflight)", "",
                  *table(("batch", "max_inflight", "calls", "frames/s", "wall s", "host CPU µs/frame",
                          "submit() µs p50", "submit() µs p99"), rows)]
    for key in ("fp32", "fp16", "batch8"):
        plan = (be.get(key) or {}).get("plan")
        if plan:
            lines += ["", f"Plan {key}: {plan.get('steps')} steps, {plan.get('launches_per_frame')} kernel launches "
                      f"+ {plan.get('copies_per_frame')} copies per call, {plan.get('tuned_steps')} tuned steps, "
                      f"{fmt(plan.get('memory_bytes', 0) / 2**20)} MiB device memory; kernels "
                      + ", ".join(f"{k} x{v}" for k, v in (plan.get("kernels") or {}).items())]
    for key in ("fp32", "fp16"):
        prof = (be.get(key) or {}).get("profile") or {}
        if prof.get("steps"):
            lines += ["", f"### Device time per step, {key} (OpenCL events, min of {prof.get('frames')} frames; "
                      f"sum {fmt(prof.get('device_ms_sum'))} ms)", "",
                      *table(("step", "device ms"), [[s["step"], s["ms"]] for s in prof["steps"]])]
        elif prof.get("error"):
            lines += ["", f"Profile {key} failed: {prof['error']}"]
    return lines


def section_torch(doc: dict[str, Any]) -> list[str]:
    bt = doc.get("bench_torch") or {}
    lines = ["## PyTorch on the same GPU, same network (model.onnx through bench/gpu/torch_onnx.py)", ""]
    if not bt or set(bt) <= {"errors"}:
        return [*lines, "(not run)"]
    if bt.get("skipped"):
        return [*lines, f"Skipped: {bt['skipped']}"]
    t = bt.get("torch") or {}
    lines.append(f"torch {t.get('version')}, CUDA {t.get('cuda')}, cuDNN {t.get('cudnn')}, {t.get('gpu')}; "
                 f"TF32 by default: {t.get('tf32_default')}. Input: {bt.get('input', '–')}.")
    same = bt.get("same_network")
    if same:
        lines += ["", *table(("same network?", "max abs error vs onnxruntime"),
                             [["fp32 (TF32 off)", same.get("fp32_max_abs_vs_onnxruntime")],
                              ["fp32 (TF32 on)", same.get("fp32_tf32_max_abs_vs_onnxruntime")],
                              ["fp16", same.get("fp16_max_abs_vs_onnxruntime")],
                              ["(max abs of the reference)", same.get("ref_max_abs")]])]
    rows = []
    for r in bt.get("latency", []) if isinstance(bt.get("latency"), list) else []:
        for mode in ("e2e", "resident"):
            rows.append(lat_row(f"{r['config']}, cudnn.benchmark={r['cudnn_benchmark']}, {mode}", r.get(mode)))
    for r in bt.get("cuda_graph", []) if isinstance(bt.get("cuda_graph"), list) else []:
        for mode in ("e2e", "resident"):
            rows.append(lat_row(f"{r['config']}, CUDA graph, {mode}", r.get(mode)))
    if rows:
        lines += ["", "### Latency, batch 1 (synchronize per frame; e2e = numpy in, numpy out; resident = on the "
                  "GPU)", "", *table(LAT_HEADER, rows)]
    tp = bt.get("throughput") if isinstance(bt.get("throughput"), list) else []
    if tp:
        lines += ["", "### Throughput (input resident, cudnn.benchmark on)", "",
                  *table(("config", "batch", "calls", "frames/s", "ms per batch", "wall s"),
                         [[r["config"], r.get("batch"), r.get("calls"), r.get("frames_per_s"), r.get("ms_per_batch"),
                           r.get("wall_s")] for r in tp])]
    return lines


def section_pytest(doc: dict[str, Any]) -> list[str]:
    py = doc.get("pytest") or {}
    lines = ["## Op tests on the GPU (test/engine)", ""]
    if not py.get("ran"):
        return [*lines, "(not run)"]
    if doc.get("pytest_command_text"):
        lines += [f"`{doc['pytest_command_text'].strip()}` (the engine's default device: the first, the GPU)", ""]
    lines.append(f"Summary: {py.get('summary') or 'none (cut off)'}; counts "
                 + ", ".join(f"{k} {v}" for k, v in (py.get("counts") or {}).items()) + f"; full log {py.get('log')}.")
    if py.get("failed_tests"):
        lines += ["", *table(("failed",), [[t] for t in py["failed_tests"]])]
    if py.get("tail"):
        lines += ["", "Last lines:", *code(py["tail"])]
    return lines


def section_errors(doc: dict[str, Any]) -> list[str]:
    rows = [[name, key, text] for name, frag in doc.items() if isinstance(frag, dict)
            for key, text in (frag.get("errors") or {}).items()]
    rows += [[s.get("step"), "step", f"skipped: {s.get('note', '')}" if s.get("status") == "skipped"
              else f"{s.get('status')} (exit {s.get('rc')}) {s.get('note', '')}".strip()]
             for s in doc.get("steps", []) if s.get("status") not in ("ok", None)]
    lines = ["## What failed, and why", ""]
    return [*lines, *(table(("step", "part", "error"), rows) if rows else ["Nothing failed."])]


SECTIONS: tuple[Callable[[dict[str, Any]], list[str]], ...] = (
    section_header, section_summary, section_steps, section_opencl, section_correctness, section_tune,
    section_engine, section_torch, section_pytest, section_errors)


def render(doc: dict[str, Any]) -> str:
    out: list[str] = []
    for section in SECTIONS:
        try:
            out += section(doc)
        except Exception as err:  # a malformed fragment must not cost the rest of the page
            out += [f"(section {section.__name__} could not be rendered: {type(err).__name__}: {err})"]
        out.append("")
    probe = doc.get("probe") or {}
    if probe.get("opencl"):
        out += ["## Appendix: OpenCL device facts", "", *kv_table(probe["opencl"]), ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="?", help="gpu_results.json to render")
    parser.add_argument("-o", "--output", type=Path, help="markdown page to write (default: stdout)")
    parser.add_argument("--collect", type=Path, help="fragments folder to merge first")
    parser.add_argument("--json", type=Path, help="where to write the merged gpu_results.json")
    parser.add_argument("--md", type=Path, help="where to write the page (with --collect)")
    parser.add_argument("--pytest-log", type=Path, default=None)
    args = parser.parse_args()
    if args.collect:
        doc = collect(args.collect, args.pytest_log)
        if args.json:
            tmp = args.json.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
            tmp.replace(args.json)
        target = args.md
    elif args.results:
        doc = json.loads(args.results.read_text())
        target = args.output
    else:
        parser.error("give gpu_results.json or --collect DIR")
    page = render(doc)
    if target:
        tmp = target.with_suffix(".tmp")
        tmp.write_text(page)
        tmp.replace(target)
    else:
        print(page, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
