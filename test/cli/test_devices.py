"""`ocl-infer devices` as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

OCL_INFER = [sys.executable, "-m", "ocl_infer.cli"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OCL_INFER, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, check=False)


def test_lists_every_pocl_device_with_engine_facts() -> None:
    out = _run("devices", "--json", env={"POCL_DEVICES": "pthread pthread"})
    assert out.returncode == 0, out.stderr
    devices = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(devices) >= 2
    assert [d["index"] for d in devices] == list(range(len(devices)))
    for d in devices:
        assert d["compute_units"] >= 1 and d["global_mem_bytes"] > 0 and d["local_mem_bytes"] > 0
        assert d["type"] in {"gpu", "cpu", "accelerator", "other"}
        assert isinstance(d["fp16"], bool)


def test_table_has_a_header_and_one_row_per_device() -> None:
    out = _run("devices")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["#", "platform", "device"]
    assert any(line.startswith("cl:0") for line in lines[1:])


def test_no_platform_gives_one_clear_line(tmp_path: Path) -> None:
    out = _run("devices", env={"OCL_ICD_VENDORS": str(tmp_path / "none"), "OCL_ICD_FILENAMES": ""})
    assert out.returncode == 2
    assert "no OpenCL platform found" in out.stderr and "pocl-opencl-icd" in out.stderr
    assert "Traceback" not in out.stderr
