"""Model files are untrusted input: >1000 mutated NNEF folders and archives either raise ModelError or load
correctly. No crash, hang or other exception type, no file written outside the cache, nothing in a model run,
no huge allocation before validation. A sample that loads also runs through the full Engine and matches
onnxruntime fed the same (mutated) weights.

OCL_INFER_FUZZ_CASES=20000 runs a larger set (same kinds, same seed scheme); OCL_INFER_FUZZ_SEED picks another
seed. Cases run in a worker subprocess (model_fuzz_worker.py) that is restarted after a crash or a hang.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from model_cases import (
    CANARY,
    Base,
    Case,
    load_base,
    make_cases,
    read_dat_independently,
    small_cnn,
)

N_SMALL = int(os.environ.get("OCL_INFER_FUZZ_CASES", "1150"))
N_BIG = max(30, N_SMALL // 40)
SEED = int(os.environ.get("OCL_INFER_FUZZ_SEED", "20261126"))
HANG_S = 60.0  # one case without a result for this long is a hang (the slowest take ~2 s idle)
WORKER = Path(__file__).with_name("model_fuzz_worker.py")
TRACED_SLACK = 16 * 2**20  # python allocations allowed per case beyond 8x the model's bytes
# 8x: weights as read, in the planner's device layouts (padded, fused copies), and the temporaries of both


def _tree(root: Path, skip: set[Path]) -> dict[str, tuple[int, int]]:
    """Every file under root (not following links) -> (size, mtime_ns), except under the `skip` folders."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = [n for n in dirnames if d / n not in skip]
        for n in filenames:
            st = (d / n).lstat()
            out[str(d / n)] = (st.st_size, st.st_mtime_ns)
    return out


def _model_bytes(path: Path) -> int:
    """Bytes the model holds: a folder's files, or an archive's contents once decompressed."""
    if path.is_file():
        try:
            return max(path.stat().st_size, len(gzip.decompress(path.read_bytes())))
        except (OSError, EOFError, zlib.error):
            return path.stat().st_size
    total = 0
    for p in path.iterdir():
        try:
            total += p.lstat().st_size if p.is_file() else 0
        except OSError:
            continue
    return total


def run_worker(cases: list[Case], workdir: Path, env: dict[str, str]) -> dict[int, dict]:
    """Results by case index; a crash or a hang becomes a result with outcome 'crash'/'hang'."""
    results: dict[int, dict] = {}
    start = 0
    while start < len(cases):
        list_file = workdir / f"cases-{start}.txt"
        list_file.write_text("\n".join(str(c.path) for c in cases[start:]) + "\n")
        res_file = workdir / f"results-{start}.jsonl"
        res_file.write_text("")
        proc = subprocess.Popen([sys.executable, str(WORKER), str(list_file), str(res_file)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir)
        seen, current, last_change = 0, None, time.monotonic()
        while True:
            done = proc.poll() is not None
            complete = res_file.read_text().split("\n")[:-1]  # the text after the last newline is unfinished
            for line in complete[seen:]:
                rec = json.loads(line)
                if "start" in rec:
                    current = start + rec["start"]
                else:
                    results[start + rec["index"]] = rec
                    current = None
                seen += 1
                last_change = time.monotonic()
            if done:
                break
            if time.monotonic() - last_change > HANG_S:
                proc.kill()
                proc.wait()
                results[current if current is not None else start] = {"outcome": "hang"}
                break
            time.sleep(0.05)
        stderr = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        if current is not None and current not in results:
            results[current] = {"outcome": "crash", "message": f"exit {proc.returncode}: {stderr}"}
        nxt = max(results) + 1 if results else len(cases)
        if proc.returncode == 0 and nxt >= len(cases):
            break
        start = max(nxt, start + 1)
    return results


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory, model_dir):
    """Build the bases and the cases, run them all, and return (cases, results, bases, roots)."""
    root = tmp_path_factory.mktemp("fuzz")
    small_folder, weights, onnx_path = small_cnn(root / "base")
    yolo = root / "base" / "yolo.nnef"
    shutil.copytree(model_dir / "model.nnef", yolo)
    bases = {"small": load_base(small_folder), "yolo": load_base(yolo)}
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not a model\n")
    (outside / "secret.dat").write_bytes((small_folder / "variable2.dat").read_bytes())
    cases_root = root / "cases"
    cases = make_cases(bases, cases_root, outside, N_SMALL, N_BIG, SEED)
    cache = root / "cache"
    work = root / "work"
    work.mkdir()
    env = dict(os.environ, OCL_INFER_CACHE=str(cache), HOME=str(root / "home"), PYTHONPATH=str(WORKER.parent))
    before = _tree(root, {cache, work})
    tmp_before = {p.name for p in Path("/tmp").iterdir()}
    t0 = time.monotonic()
    results = run_worker(cases, work, env)
    elapsed = time.monotonic() - t0
    after = _tree(root, {cache, work})
    tmp_after = {p.name for p in Path("/tmp").iterdir()}
    return {"cases": cases, "results": results, "bases": bases, "weights": weights, "onnx": onnx_path,
            "root": root, "outside": outside, "cache": cache, "before": before, "after": after,
            "tmp_new": tmp_after - tmp_before, "elapsed": elapsed}


def test_every_mutated_model_raises_model_error_or_loads(fuzz):
    cases, results = fuzz["cases"], fuzz["results"]
    assert len(cases) >= 1000
    counts = Counter((c.kind, results.get(i, {}).get("outcome", "missing")) for i, c in enumerate(cases))
    print(f"\n{len(cases)} cases in {fuzz['elapsed']:.1f} s: "
          f"{sum(v for (k, o), v in counts.items() if o == 'ok')} loaded, "
          f"{sum(v for (k, o), v in counts.items() if o == 'ModelError')} ModelError")
    for (kind, outcome), n in sorted(counts.items()):
        print(f"  {kind:20s} {outcome:12s} {n}")
    bad = [f"{c.name}: {results.get(i, {}).get('outcome', 'missing')}: {results.get(i, {}).get('message', '')}"
           for i, c in enumerate(cases) if results.get(i, {}).get("outcome") not in ("ok", "ModelError")]
    assert not bad, f"{len(bad)} case(s) neither loaded nor raised ModelError:\n" + "\n".join(bad[:20])
    must_fail = [c.name for i, c in enumerate(cases) if c.expect == "error" and results[i]["outcome"] != "ModelError"]
    assert not must_fail, f"accepted model(s) that must be refused: {must_fail[:20]}"
    vague = [f"{c.name}: {results[i]['message']}" for i, c in enumerate(cases)
             if results[i]["outcome"] == "ModelError" and "/" not in results[i]["message"]]
    assert not vague, f"ModelError without the file it is about: {vague[:10]}"
    # the fuzz reaches past the first check: mutated weights, item types and archives really load
    for kind in ("dat_data_flip", "dat_dtype", "archive_valid", "graph_ops"):
        assert counts[(kind, "ok")] > 0, kind


def test_what_loads_is_what_the_files_hold(fuzz):
    """Every loaded small-model folder has exactly the weights an independent numpy reader finds in it."""
    checked = 0
    for i, c in enumerate(fuzz["cases"]):
        r = fuzz["results"][i]
        if r["outcome"] != "ok" or not c.path.is_dir() or "-small-" not in c.name:
            continue
        assert all(d > 0 for shape in r["inputs"].values() for d in shape), c.name
        for label in ("variable1", "variable2", "variable3"):
            try:
                want = read_dat_independently(c.path / f"{label}.dat").sum()
            except (KeyError, ValueError):
                continue  # an item type the loader refuses anyway
            got = [v for name, v in r["weights"].items() if name.startswith(label)]
            assert got and np.isclose(got[0], want, rtol=1e-6, atol=1e-6), (c.name, label, got, want)
            checked += 1
    assert checked > 100


def test_no_file_is_written_outside_the_cache_and_nothing_in_a_model_runs(fuzz):
    changed = {p for p in set(fuzz["before"]) | set(fuzz["after"]) if fuzz["before"].get(p) != fuzz["after"].get(p)}
    assert not changed, f"files changed outside the cache: {sorted(changed)[:10]}"
    assert not fuzz["tmp_new"] or not any(CANARY in n for n in fuzz["tmp_new"]), fuzz["tmp_new"]
    canaries = [p for p in fuzz["root"].rglob(f"*{CANARY}*")]
    assert not canaries, f"a model file made something run or escape: {canaries}"
    extracted = list((fuzz["cache"] / "nnef").glob("*"))
    assert extracted, "no archive was extracted at all: the archive cases did not reach extraction"
    killed = [i for i, r in fuzz["results"].items() if r["outcome"] in ("crash", "hang")]
    if not killed:  # a worker killed mid-extraction leaves its temporary folder (see docs/reliability.md)
        assert not [p for p in extracted if p.name.startswith(".extract-")], "half-extracted folders left behind"


def test_no_case_allocates_far_beyond_its_files(fuzz):
    """Python/numpy allocations per case (tracemalloc) stay within 8x the model's bytes + 16 MiB; the worker's
    6 GiB address-space cap turns anything bigger into a MemoryError, which the first test would report."""
    worst = []
    for i, c in enumerate(fuzz["cases"]):
        r = fuzz["results"][i]
        base = fuzz["bases"]["yolo" if "-yolo-" in c.name else "small"]
        limit = 8 * max(_model_bytes(c.path), _model_bytes(base.folder)) + TRACED_SLACK
        if r.get("peak_bytes", 0) > limit:
            worst.append((c.name, r["peak_bytes"], limit))
    assert not worst, f"allocations beyond the bound: {worst[:10]}"


def _independent_reference(case: Case, weights: dict[str, np.ndarray], onnx_path: Path,
                           x: np.ndarray) -> np.ndarray:
    """onnxruntime on the ONNX model with its initializers replaced by the case's weights read with numpy."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    by_shape = {(4, 3, 3, 3): "w1", (1, 4): "b1", (2, 4, 1, 1): "w2"}
    new = dict(weights)
    for dat in case.path.glob("*.dat"):
        arr = read_dat_independently(dat)
        new[by_shape[arr.shape]] = arr.reshape(weights[by_shape[arr.shape]].shape).astype(np.float32)
    model = onnx.load(onnx_path)
    for init in model.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(new[init.name], init.name))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_a_sample_that_loads_runs_through_the_engine_and_matches_onnxruntime(fuzz):
    from ocl_infer.engine import Engine

    sample = []
    for kind in ("dat_data_flip", "dat_dtype", "dat_header_flip", "graph_lines", "archive_valid"):
        picked = [c for i, c in enumerate(fuzz["cases"])
                  if c.kind == kind and "-small-" in c.name and fuzz["results"][i]["outcome"] == "ok"]
        sample += picked[:3]
    assert len(sample) >= 8
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    for case in sample:
        with Engine(case.path, devices="0") as engine:
            got = engine.run({"x": x})["y"]
        ref_case = case if case.path.is_dir() else Case(case.name, case.kind, fuzz["bases"]["small"].folder, "any")
        want = _independent_reference(ref_case, fuzz["weights"], fuzz["onnx"], x)
        scale = max(float(np.abs(want).max()), 1e-30)
        assert np.abs(got - want).max() / scale < 1e-4, case.name


def test_a_plan_bigger_than_the_device_is_a_model_error_before_allocation(fuzz, tmp_path):
    """Each tensor is under the loader's 2^31-element limit, but conv1's output buffer is over the device's
    largest allocation (PoCL reports it from the machine's memory, so the size is derived from it)."""
    from ocl_infer.engine import Engine
    from ocl_infer.engine.devices.selection import select_devices
    from ocl_infer.errors import ModelError

    info = select_devices("0")[0]
    height = 16384
    width = info.max_alloc_bytes // (4 * 4 * height) + 16  # conv1: 4 channels of float32
    if 4 * height * width >= 2**31:
        pytest.skip(f"{info.label} allocates {info.max_alloc_bytes} bytes at once: no tensor under the loader's "
                    "element limit exceeds it")
    base: Base = fuzz["bases"]["small"]
    folder = tmp_path / "big.nnef"
    shutil.copytree(base.folder, folder)
    (folder / "graph.nnef").write_text(
        base.graph_text.replace("shape = [1, 3, 8, 8]", f"shape = [1, 3, {height}, {width}]"))
    with pytest.raises(ModelError, match="device memory"):
        Engine(folder, devices="0")


def test_a_real_gzip_bomb_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """64 MiB of zeros in a 64 KiB archive against a 16 MiB cap: refused while reading headers, nothing kept."""
    import gzip
    import io
    import tarfile

    from ocl_infer.engine.graph.archive import extract_archive
    from ocl_infer.errors import ModelError

    monkeypatch.setenv("OCL_INFER_CACHE", str(tmp_path / "cache"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("graph.nnef")
        info.size = 64 * 2**20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    bomb = tmp_path / "bomb.tgz"
    bomb.write_bytes(gzip.compress(buf.getvalue(), compresslevel=9))
    assert bomb.stat().st_size < 2**20
    with pytest.raises(ModelError, match="byte limit"):
        extract_archive(bomb, max_total_bytes=16 * 2**20)
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert not leftovers, leftovers
