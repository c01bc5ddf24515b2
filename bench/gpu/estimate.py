"""Per-layer estimate of the engine on GPUs nobody here could measure (an H200, a Jetson AGX Orin): the plan the
engine makes for each device's facts, and for every step its multiply-adds, the global bytes its kernels load
(counted exactly from the implicit GEMM's tiling, and checked against Oclgrind's instruction counts with
`--validate`), the bytes it must move from DRAM at least, its launches, and an expected time from a simple
roofline with stated assumptions. Estimates, not measurements: docs/gpu.md says so next to every number.

    .venv/bin/python bench/gpu/estimate.py [--model DIR] [--markdown]            # the tables
    OCL_ICD_VENDORS=<folder with oclgrind.icd> .venv/bin/python bench/gpu/estimate.py --validate
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ocl_infer.engine.graph import load_graph  # noqa: E402
from ocl_infer.engine.kernels.conv_gemm import ConvGemm  # noqa: E402
from ocl_infer.engine.plan import DeviceFacts, Plan, make_plan  # noqa: E402
from ocl_infer.paths import default_model_dir  # noqa: E402


@dataclass(frozen=True)
class Gpu:
    """What the estimate assumes of a device: its OpenCL facts and its ceilings (vendor datasheets)."""

    name: str
    facts: DeviceFacts
    fp32_tflops: float  # plain fp32 FMA rate, no tensor cores (the engine's kernels are plain OpenCL)
    dram_gbs: float
    l2_gbs: float  # assumed L2 read bandwidth: the GEMM tiles' re-reads mostly hit L2
    launch_us: float  # gap per back-to-back launch on one in-order queue


GPUS = (
    Gpu("NVIDIA H200 (SXM)", DeviceFacts(type="gpu", compute_units=132, local_mem_bytes=48 * 1024,
                                         max_work_group_size=1024), 67.0, 4800.0, 12000.0, 4.0),
    Gpu("Jetson AGX Orin 64GB", DeviceFacts(type="gpu", compute_units=16, local_mem_bytes=48 * 1024,
                                            max_work_group_size=1024), 5.3, 204.8, 1500.0, 8.0),
)
# Fraction of the fp32 peak a tile sustains while every compute unit is busy: register blocking 8x8 leaves the
# FMA pipes the bottleneck; 4x4..4x8 read local memory about as fast as they multiply. Assumptions (CLBlast's
# tuned SGEMM reaches 60-75 % of peak on NVIDIA; our kernel is simpler, no double buffering, no vector loads).
TILE_EFFICIENCY = {64: 0.5, 32: 0.35, 16: 0.3}


@dataclass
class Row:
    step: str
    kind: str
    blocking: str
    macs: int
    loaded: int  # global bytes loaded by the kernels
    dram: int  # bytes that must come from / go to DRAM at least (inputs, weights, outputs once)
    launches: int
    groups: int
    est_us: float
    bound: str


def conv_loads(k: ConvGemm) -> int:
    """Global bytes one gemm conv step loads, as conv_gemm.cl does: every work-group loads its weight slice
    (TM channels x its K range, rounded up to TK) and the in-bounds taps of its TN pixels for every k < K; each
    work-item reads the bias of its RM channels in the epilogue (with a residual: one value per output); a
    split K instead writes partial sums that the reduce pass reads back with the bias (and residual)."""
    oh, ow, kh, kw = k.oh, k.ow, k.kh, k.kw
    oy, ox = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    if k.pool:  # only the conv pixels the pool reads are computed
        oy, ox = oy[: 2 * (oh // 2), : 2 * (ow // 2)], ox[: 2 * (oh // 2), : 2 * (ow // 2)]
    taps = np.zeros(oy.shape, np.int64)
    for ky in range(kh):
        for kx in range(kw):
            iy, ix = oy * k.sh - k.pt + ky * k.dh, ox * k.sw - k.pl + kx * k.dw
            taps += ((iy >= 0) & (iy < k.ih) & (ix >= 0) & (ix < k.iw)).astype(np.int64)
    tiles_m, tiles_p = k.ocp // k.tm, -(-k.pixels // k.tn)
    x_loads = k.n * tiles_m * k.ic * int(taps.sum())
    depth = sum(-(-min(k.kc, k.k - s * k.kc) // k.tk) * k.tk for s in range(k.splits))  # all splits' K steps
    w_loads = k.n * tiles_p * tiles_m * k.tm * depth
    out = k.n * k.oc * (k.pixels // 4 if k.pool else k.pixels)
    if k.splits > 1:
        epilogue = (k.splits + 1) * out + (out if k.res else 0)  # partials + bias (+ residual) per output
    else:
        epilogue = k.n * tiles_p * k.tx * k.oc + (out if k.res else 0)  # bias per work-item row (+ residual)
    return 4 * (x_loads + w_loads + epilogue)


def tensor_bytes(plan: Plan, name: str) -> int:
    return 4 * int(np.prod(plan.shapes[name]))


def estimate_plan(plan: Plan, gpu: Gpu) -> list[Row]:
    rows = []
    peak = gpu.fp32_tflops * 1e12
    for st in plan.steps:
        if st.variant == "alias":
            continue
        ins = [n for n in st.inputs if n not in plan.constants]
        consts = [n for n in st.inputs if n in plan.constants]
        dram = (sum(tensor_bytes(plan, n) for n in ins) + sum(int(plan.constants[n].nbytes) for n in consts)
                + sum(tensor_bytes(plan, n) for n in st.outputs))
        name = st.name.split(" + ")[0].split(" -> ")[-1]
        if st.variant == "gemm":
            k = ConvGemm(st, plan.shapes)
            loaded = conv_loads(k)
            macs = k.n * k.oc * k.pixels * k.k
            units = gpu.facts.compute_units
            groups = k.n * (k.ocp // k.tm) * -(-k.pixels // k.tn) * k.splits
            per_unit = -(-groups // units)  # work-groups on the busiest compute unit
            occupancy = min(1.0, min(per_unit, 1024 // (k.tx * k.ty)) * k.tx * k.ty / 512)  # latency hiding
            eff = TILE_EFFICIENCY.get(min(k.rm * k.rn, 64), 0.3) * occupancy
            compute = per_unit * 2 * k.tm * k.tn * k.kc / (peak / units * eff)
            memory = max(dram / (gpu.dram_gbs * 1e9), loaded / (gpu.l2_gbs * 1e9))
            launches = 2 if k.splits > 1 else 1
            t = max(compute, memory)
            bound = "compute" if compute >= memory else "memory"
            blocking = "/".join(str(v) for v in k.blocking)
        else:  # memory-bound ops: every byte once
            macs, loaded, groups = 0, dram - sum(tensor_bytes(plan, n) for n in st.outputs), 0
            launches = 1
            t = dram / (gpu.dram_gbs * 1e9)
            bound, blocking = "memory", "-"
        rows.append(Row(name, f"{st.kind} [{st.variant}]", blocking, macs, loaded, dram, launches, groups,
                        1e6 * t + gpu.launch_us * launches, bound))
    return rows


def markdown(rows: list[Row], gpu: Gpu) -> str:
    lines = [f"**{gpu.name}** (assumed: {gpu.facts.compute_units} compute units, fp32 {gpu.fp32_tflops:g} "
             f"TFLOP/s, DRAM {gpu.dram_gbs:g} GB/s, L2 {gpu.l2_gbs:g} GB/s, {gpu.launch_us:g} us per launch)", "",
             "| step | kernel | blocking TX/TY/RM/RN/TK/split | MMAC | global loads MB | bytes per MAC | "
             "DRAM MB at least | launches | work-groups | expected us | bound |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per = f"{r.loaded / r.macs:.3f}" if r.macs else "-"
        lines.append(f"| {r.step} | {r.kind} | {r.blocking} | {r.macs / 1e6:.1f} | {r.loaded / 1e6:.2f} | {per} | "
                     f"{r.dram / 1e6:.2f} | {r.launches} | {r.groups or '-'} | {r.est_us:.1f} | {r.bound} |")
    macs = sum(r.macs for r in rows)
    loaded = sum(r.loaded for r in rows if r.macs)
    total = sum(r.est_us for r in rows)
    lines.append(f"| **all** | | | **{macs / 1e6:.0f}** | **{sum(r.loaded for r in rows) / 1e6:.1f}** | "
                 f"**{loaded / macs:.3f}** (convs) | **{sum(r.dram for r in rows) / 1e6:.1f}** | "
                 f"**{sum(r.launches for r in rows)}** | | **{total:.0f}** | |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- checked on Oclgrind

OCLGRIND = DeviceFacts(type="gpu", compute_units=1, local_mem_bytes=32 * 1024, max_work_group_size=1024)


def reuse_table(plan: Plan) -> str:
    """Global bytes per multiply-add of every conv with the blocking the rule picks on Oclgrind's device."""
    lines = ["| conv (on Oclgrind's device: 1 compute unit, 32 KiB local) | blocking | bytes per MAC |",
             "|---|---|---|"]
    for st in plan.steps:
        if st.variant == "gemm":
            k = ConvGemm(st, plan.shapes)
            name = st.name.split(" + ")[0].split(" -> ")[-1]
            macs = k.n * k.oc * k.pixels * k.k
            lines.append(f"| {name} ({k.ic}->{k.oc}, {k.oh}x{k.ow}, {k.kh}x{k.kw}) | "
                         f"{'/'.join(str(v) for v in k.blocking)} | {conv_loads(k) / macs:.3f} |")
    return "\n".join(lines)


VALIDATE = """
import sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {test_dir!r})
from pathlib import Path
import numpy as np
from onnx import helper
from onnx_models import convert, make_model
from ocl_infer.engine.devices import list_devices
from ocl_infer.engine.devices.selection import cl_device
from ocl_infer.engine.graph import load_graph
from ocl_infer.engine.plan import DeviceFacts, make_plan
from ocl_infer.engine.runtime import DeviceRuntime
ic, oc, hw, k, pool, units = {case}
rng = np.random.default_rng(0)
nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[k, k], pads=[k // 2] * 4),
         helper.make_node("LeakyRelu", ["c"], ["a"], alpha=0.1)]
last = "a"
if pool:
    nodes.append(helper.make_node("MaxPool", ["a"], ["m"], kernel_shape=[2, 2], strides=[2, 2])); last = "m"
inits = {{"w": rng.standard_normal((oc, ic, k, k)).astype(np.float32), "b": rng.standard_normal(oc).astype(np.float32)}}
graph = load_graph(convert(make_model(nodes, {{"x": (1, ic, hw, hw)}}, [last], inits, 13), Path({out!r})))
plan = make_plan(graph, DeviceFacts(type="gpu", compute_units=units, local_mem_bytes=32768, max_work_group_size=1024))
print("BLOCKING", [list(s.attrs.get("rule_blocking")) for s in plan.steps if s.variant == "gemm"], flush=True)
info = list_devices()[0]
rt = DeviceRuntime(plan, cl_device(info), info.label, disk_cache=False)
rt.run({{"x": rng.standard_normal((1, ic, hw, hw)).astype(np.float32)}})
rt.close()
"""
# (ic, oc, map, kernel, fused pool, compute units the blocking is chosen for): H200 picks split K at 13x13
VALIDATE_CASES = ((64, 128, 13, 3, False, 132), (32, 64, 26, 3, True, 132), (128, 64, 13, 1, False, 132),
                  (16, 32, 52, 3, True, 16), (3, 16, 64, 3, True, 132))


def validate() -> str:
    """Run small layers with the H200/Orin blocking on the current OpenCL device (Oclgrind, with
    OCLGRIND_INST_COUNTS=1) and compare its global-load count with `conv_loads`."""
    lines = ["| layer (IC->OC, map, kernel, pool) | blocking | Oclgrind global loads B | formula B | ratio |",
             "|---|---|---|---|---|"]
    for case in VALIDATE_CASES:
        with tempfile.TemporaryDirectory() as tmp:
            script = VALIDATE.format(root=str(ROOT), test_dir=str(ROOT / "test" / "engine"), case=case,
                                     out=str(Path(tmp) / "m.nnef"))
            proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900,
                                  env=dict(os.environ, OCLGRIND_INST_COUNTS="1"))
            out = proc.stdout + proc.stderr
            if proc.returncode != 0:
                raise SystemExit(out[-3000:])
            counted = 0
            for block in out.split("Instructions executed for kernel ")[1:]:
                if block.startswith("'conv2d_gemm"):
                    counted += sum(int(b) for b in re.findall(r"load global \((\d+) bytes\)", block))
            ic, oc, hw, k, pool, units = case
            graph_dir = Path(tmp) / "m.nnef"
            plan = make_plan(load_graph(graph_dir), DeviceFacts(type="gpu", compute_units=units,
                                                                local_mem_bytes=32768, max_work_group_size=1024))
            st = next(s for s in plan.steps if s.variant == "gemm")
            formula = conv_loads(ConvGemm(st, plan.shapes))
            blocking = "/".join(str(v) for v in st.attrs["rule_blocking"])
            lines.append(f"| {ic}->{oc}, {hw}x{hw}, {k}x{k}, {'pool' if pool else '-'} | {blocking} | {counted} | "
                         f"{formula} | {counted / formula:.3f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="NNEF model folder (default: YOLOv3-tiny 416)")
    ap.add_argument("--validate", action="store_true", help="check the load formula on the current device "
                    "(Oclgrind with OCLGRIND_INST_COUNTS=1)")
    args = ap.parse_args()
    if args.validate:
        print(validate())
        return 0
    model = args.model or default_model_dir() / "model.nnef"
    graph = load_graph(model)
    for gpu in GPUS:
        plan = make_plan(graph, gpu.facts)
        print(markdown(estimate_plan(plan, gpu), gpu) + "\n")
    print(reuse_table(make_plan(graph, OCLGRIND)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
