"""The background program-cache writer (runtime/cache_writer.py), run in-process on the real device."""

import fcntl
import json
import os
import time
from pathlib import Path

import pyopencl as cl
import pytest

from ocl_infer.engine.runtime import cache_writer
from ocl_infer.engine.runtime.program_cache import program_key

GOOD = "__kernel void k(__global float* a) { a[get_global_id(0)] += 1.0f; }"
BAD = "__kernel void k(__global float* a) { this does not compile; }"


@pytest.fixture
def device() -> cl.Device:
    return cl.get_platforms()[0].get_devices()[0]


def job_file(folder: Path, device: cl.Device, jobs: list[tuple[str, str]]) -> tuple[Path, list[Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{program_key(device, src, opts)}.bin" for src, opts in jobs]
    spec = {"platform": device.platform.name, "device": device.name,
            "jobs": [{"path": str(p), "source": s, "options": o} for p, (s, o) in zip(paths, jobs, strict=True)]}
    f = folder / ".jobs-test.json"
    f.write_text(json.dumps(spec))
    return f, paths


def test_writes_good_programs_skips_bad_ones_and_existing_files(tmp_path, device):
    folder = tmp_path / "kernels"
    jobs = [(GOOD, ""), (BAD, ""), (GOOD, "-DX=1")]
    f, paths = job_file(folder, device, jobs)
    paths[2].write_bytes(b"already there")
    orphan = folder / ".jobs-orphan.json"
    orphan.write_text("{}")
    hours_ago = time.time() - 2 * 3600
    os.utime(orphan, (hours_ago, hours_ago))
    assert cache_writer.main([str(f)]) == 0
    assert paths[0].stat().st_size > 100  # a real binary
    assert not paths[1].exists()  # a build failure writes nothing
    assert paths[2].read_bytes() == b"already there"  # never rewritten
    assert not f.exists() and not orphan.exists()
    assert not list(folder.glob(".tmp-*"))


def test_gives_up_when_another_writer_holds_the_lock(tmp_path, device, monkeypatch):
    folder = tmp_path / "kernels"
    f, paths = job_file(folder, device, [(GOOD, "")])
    monkeypatch.setattr(cache_writer, "LOCK_WAIT_S", 0.3)
    with open(folder / ".writer.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert cache_writer.main([str(f)]) == 1
    assert not paths[0].exists() and not f.exists()
