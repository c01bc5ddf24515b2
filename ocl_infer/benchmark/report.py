"""The benchmark report in markdown (metadata, latency table, first-frame and memory table, fp16 table, tuning
notes, per-step profile), and the section of a docs file it replaces between two markers."""

from __future__ import annotations

from pathlib import Path

from ocl_infer.benchmark.suite import ModelResult

BEGIN_MARK = "<!-- bench:begin (written by `ocl-infer bench --write`; edits inside are overwritten) -->"
END_MARK = "<!-- bench:end -->"


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def _cell(text: str | None) -> str:
    """One table cell: a multi-line message (nnef-tools writes some) on one line, no column breaks."""
    return " ".join(str(text).split()).replace("|", "/")


def _fmt_any(v: float | str) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def render_report(results: list[ModelResult], ceiling: float, meta: dict[str, str]) -> str:
    """Metadata lines, then the tables. A `model` column leads the tables when the run covers several models."""
    several = len({r.model for r in results}) > 1

    def key(r: ModelResult) -> str:
        return f"| {r.model} | {r.size} |" if several else f"| {r.size} |"

    head = "| model | size |" if several else "| size |"
    rule = "|---|---|" if several else "|---|"
    lines = [
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- OpenCL devices: {meta['devices']}",
        f"- command: `{meta['command']}`",
        f"- threads per backend: {meta['threads']}; frames: {meta['frames']} timed after {meta['warmup']} warm-up"
        + (f", the backends alternating in {meta['blocks']}" if meta.get("blocks") else ""),
        f"- load average (1 min) at start / end: {meta['load_start']} / {meta['load_end']}",
        f"- sgemm ceiling (numpy float32 1024³, all cores, best of start and end): {ceiling:.0f} GFLOP/s",
        "",
        f"{head} backend | median ms | p99 ms | GFLOP/s | % of sgemm | × onnxruntime | load before/after |",
        f"{rule}---|---|---|---|---|---|---|",
    ]
    for r in results:
        ort = next((t for t in r.timings if t.backend == "onnxruntime" and t.median_ms), None)
        for t in r.timings:
            if t.error or t.median_ms is None:
                lines.append(f"{key(r)} {t.backend} | n/a | n/a | n/a | n/a | n/a | {_cell(t.error)} |")
                continue
            gf = None if r.gflop is None else r.gflop / (t.median_ms / 1e3)
            ratio = f"{t.median_ms / ort.median_ms:.2f}" if ort and ort.median_ms else "n/a"
            share = "n/a" if gf is None else f"{100 * gf / ceiling:.0f} %"
            lines.append(f"{key(r)} {t.backend} | {t.median_ms:.2f} | {_fmt(t.p99_ms)} | {_fmt(gf, '.0f')} "
                         f"| {share} | {ratio} | {t.load[0]:.2f} / {t.load[1]:.2f} |")
    lines += ["", f"{head} model GFLOP | pre-process ms (letterbox+convert) | first frame cold s "
              "| program cache written s | first frame warm s | peak device memory MiB | max abs diff vs onnxruntime |",
              f"{rule}---|---|---|---|---|---|---|"]
    for r in results:
        cold, written, warm = (r.first_frame.get(k, "n/a") for k in ("cold", "cache_written", "warm"))
        mem = "n/a" if r.memory_bytes is None else f"{r.memory_bytes / 2**20:.1f}"
        lines.append(f"{key(r)} {_fmt(r.gflop)} | {_fmt(r.preprocess_ms)} | {_fmt_any(cold)} | {_fmt_any(written)} "
                     f"| {_fmt_any(warm)} | {mem} | {_fmt(r.max_abs_diff, '.1e')} |")
    half = [(r, t) for r in results for t in r.timings if t.backend.startswith("ours fp16") and not t.error]
    if half:  # the "ours fp16" rows: what storing weights/scratch as half costs in accuracy, saves in memory
        lines += ["", f"{head} ours fp16: max abs diff vs onnxruntime | ours fp16: peak device memory MiB |",
                  f"{rule}---|---|"]
        lines += [f"{key(r)} {_fmt(t.extra.get('max_abs_diff'), '.1e')} "
                  f"| {t.extra.get('memory_bytes', 0) / 2**20:.1f} |" for r, t in half]
    wrong = [(r, t) for r in results for t in r.timings if t.extra.get("wrong")]
    if wrong:
        lines += ["", *(f"- **{t.backend}, {_where(r, several)}: {t.extra['wrong']}**" for r, t in wrong)]
    tuning = [(r, t.backend, t.extra["tuning"]) for r in results for t in r.timings if t.extra.get("tuning")]
    if tuning:
        lines += ["", *(f"- kernel tuning, {_where(r, several)} {backend}: {note}" for r, backend, note in tuning)]
    for r in results:
        if r.profile:
            total = sum(ms for _, ms in r.profile) or 1.0
            lines += ["", f"Per-layer device time, {_where(r, several)} (OpenCL events, one frame):", "",
                      "| op | ms | % |", "|---|---|---|"]
            lines += [f"| {name} | {ms:.3f} | {100 * ms / total:.1f} |" for name, ms in r.profile]
    return "\n".join(lines) + "\n"


def _where(r: ModelResult, several: bool) -> str:
    return f"{r.model} {r.size}" if several else str(r.size)


def write_section(path: Path, body: str) -> None:
    """Replace the text between the bench markers of `path` (append the section when it has none)."""
    section = f"{BEGIN_MARK}\n{body}{END_MARK}\n"
    text = path.read_text() if path.is_file() else "# Performance\n\n## Results\n\n"
    if BEGIN_MARK in text and END_MARK in text:
        head, rest = text.split(BEGIN_MARK, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
