"""Every kernel family on a second OpenCL implementation: Oclgrind, a simulator whose device reports type GPU
(so the engine picks the GPU family by itself), with data-race and bounds checking on. The op tests (both
families, as on PoCL), the GPU conv's every-blocking test, the pointwise conv, placed concats and split views,
the depthwise conv's border cases, fused SiLU, the image kernel (one frame and batches), batched and fp16
Winograd run there in a child process; any report from Oclgrind fails the test, as does a wrong result.
`make setup` installs Oclgrind (Debian package `oclgrind`)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ICD_LIBRARIES = ("/usr/lib/oclgrind/liboclgrind-rt-icd.so", "/usr/lib/x86_64-linux-gnu/liboclgrind-rt-icd.so",
                 "/usr/local/lib/liboclgrind-rt-icd.so")
# what Oclgrind prints when a kernel misbehaves (bounds, races, barriers, uninitialised values)
REPORT = re.compile(r"Invalid (read|write)|data race|divergence|Uninitiali[sz]ed|Oclgrind.*(error|abort)|"
                    r"barrier", re.IGNORECASE)
# one small conv per kernel shape class, to count global loads (bytes per multiply-add) on the GPU family
COUNT_SCRIPT = """
import sys, numpy as np
from pathlib import Path
sys.path.insert(0, {test_dir!r})
from onnx import helper
from onnx_models import convert, make_model
from ocl_infer.engine import Engine
ic, oc, hw, k = {shape}
rng = np.random.default_rng(0)
node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k], pads=[k // 2] * 4)
inits = {{"w": rng.standard_normal((oc, ic, k, k)).astype(np.float32), "b": np.zeros(oc, np.float32)}}
path = convert(make_model([node], {{"x": (1, ic, hw, hw)}}, ["y"], inits, 13), Path({out!r}))
with Engine(path, warmup=False, prewarm=False, disk_cache=False) as e:
    print("VARIANTS", [s.variant for s in e.plans[0].steps], flush=True)
    e.run({{"x": rng.standard_normal((1, ic, hw, hw)).astype(np.float32)}})
"""

# one MatMul of two activations on the GPU family, to count its global loads the same way
MATMUL_SCRIPT = """
import sys, numpy as np
from pathlib import Path
sys.path.insert(0, {test_dir!r})
from onnx import helper
from onnx_models import convert, make_model
from ocl_infer.engine import Engine
m, k, n = {shape}
rng = np.random.default_rng(0)
node = helper.make_node("MatMul", ["a", "b"], ["y"])
path = convert(make_model([node], {{"a": (m, k), "b": (k, n)}}, ["y"]), Path({out!r}))
with Engine(path, warmup=False, prewarm=False, disk_cache=False) as e:
    print("VARIANTS", [s.variant for s in e.plans[0].steps], flush=True)
    e.run({{"a": rng.standard_normal((m, k)).astype(np.float32), "b": rng.standard_normal((k, n)).astype(np.float32)}})
"""


@pytest.fixture(scope="module")
def oclgrind_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    lib = next((p for p in ICD_LIBRARIES if Path(p).is_file()), None)
    if lib is None:
        pytest.fail(f"Oclgrind is not installed (looked for {', '.join(ICD_LIBRARIES)}): run `make setup`")
    icd = tmp_path_factory.mktemp("icd")
    (icd / "oclgrind.icd").write_text(lib + "\n")
    cache = tmp_path_factory.mktemp("cache")
    return dict(os.environ, OCL_ICD_VENDORS=str(icd), OCL_INFER_CACHE=str(cache), OCLGRIND_DATA_RACES="1",
                PYTHONUNBUFFERED="1")


@pytest.mark.slow
def test_op_tests_pass_clean_on_oclgrind(oclgrind_env: dict[str, str]) -> None:
    # -s: Oclgrind writes its reports to the process's stderr, which pytest would otherwise swallow
    tests = [str(ROOT / "test" / "engine" / name) for name in (
        "test_ops.py", "test_conv_gemm.py", "test_index_ops.py", "test_matmul.py",
        "test_conv_pointwise.py", "test_conv_pixels.py", "test_concat_placement.py", "test_silu_fusion.py",
        "test_image_kernel.py", "test_image_batch.py")]
    # the full-width end-to-end heads take 26 s simulated; their kernels are each checked by smaller tests there
    skip = ["--deselect", "test/engine/test_index_ops.py::test_end_to_end_detection_head"]  # a node id (cwd=ROOT)
    # the pointwise and pixels kernels are the CPU family's; those files' GPU-family runs are conv_gemm, checked above
    skip += ["-k", "not ((test_conv_pointwise or test_conv_pixels) and gpu)"]
    # fp16 Winograd (half V/M scratch, its own half<->float conversions), CPU family forced by the tests
    tests += [f"test/engine/test_fp16.py::{name}" for name in (
        "test_winograd_fp16_within_the_bound_of_half_u_v_m",
        "test_winograd_fp16_scratch_beyond_half_range_is_scaled_not_overflowed",
        "test_winograd_fp16_overflow_is_inf_or_nan_never_a_finite_value")]
    # depthwise: its masked border loads and the scalar windows at the tensor's ends, batch 2, multiplier 2, 5x5
    # dilated, narrow maps (8 lanes)
    tests += ["test/engine/test_conv_fast_variants.py::test_depthwise_matches_onnxruntime"]
    # batched Winograd: only its small cases (the others take minutes simulated)
    from test_winograd_batch import OCLGRIND_CASES
    tests += [f"test/engine/test_winograd_batch.py::test_winograd_at_batch_n_matches_onnxruntime[{c}]"
              for c in OCLGRIND_CASES]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *tests, *skip],
                          cwd=ROOT, env=oclgrind_env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    reports = [line for line in out.splitlines() if REPORT.search(line)]
    assert proc.returncode == 0, f"op tests failed on Oclgrind:\n{out[-4000:]}"
    assert "passed" in out and " 0 passed" not in out
    assert not reports, "Oclgrind reported:\n" + "\n".join(reports[:20])


def global_bytes(log: str, kernel: str) -> int:
    """Bytes loaded from global memory by `kernel`, from OCLGRIND_INST_COUNTS=1 output."""
    total = 0
    for block in log.split("Instructions executed for kernel ")[1:]:
        if block.startswith(f"'{kernel}'"):
            total += sum(int(b) for b in re.findall(r"load global \((\d+) bytes\)", block))
    return total


@pytest.mark.slow
@pytest.mark.parametrize("ic,oc,hw,k", [(32, 64, 20, 3), (128, 64, 9, 1)])
def test_gpu_conv_reuses_data_from_local_memory(oclgrind_env: dict[str, str], tmp_path: Path,
                                                ic: int, oc: int, hw: int, k: int) -> None:
    """The GPU conv stages tiles in local memory: at most 0.25 global bytes per multiply-add (a direct kernel
    without local memory loads about 1.1), counted by Oclgrind, no timing involved."""
    script = COUNT_SCRIPT.format(test_dir=str(ROOT / "test" / "engine"), shape=(ic, oc, hw, k),
                                 out=str(tmp_path / "m.nnef"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(oclgrind_env, OCLGRIND_INST_COUNTS="1"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "VARIANTS ['gemm']" in out, out[-3000:]
    macs = ic * oc * k * k * hw * hw
    ratio = global_bytes(out, "conv2d_gemm") / macs
    assert 0 < ratio <= 0.25, f"{ratio:.3f} global bytes per multiply-add"


@pytest.mark.slow
def test_gpu_matmul_reuses_data_from_local_memory(oclgrind_env: dict[str, str], tmp_path: Path) -> None:
    """The GPU family's matmul stages tiles in local memory: at most 0.5 global bytes per multiply-add for a
    64 x 64 tile with partial edges (the general kernel loads 5: one A and four B floats per 4 multiply-adds)."""
    m, k, n = 96, 72, 80
    script = MATMUL_SCRIPT.format(test_dir=str(ROOT / "test" / "engine"), shape=(m, k, n),
                                  out=str(tmp_path / "m.nnef"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(oclgrind_env, OCLGRIND_INST_COUNTS="1"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "VARIANTS ['tiled']" in out, out[-3000:]
    ratio = global_bytes(out, "gemm_tiled") / (m * k * n)
    assert 0 < ratio <= 0.5, f"{ratio:.3f} global bytes per multiply-add"
