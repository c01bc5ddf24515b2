"""`make setup` failure modes: each stops with one clear line and leaves nothing half-done.

The script runs for real, with the failing piece replaced by a stand-in on PATH (an apt-get that fails, as with
no network) or by an empty folder (no OpenCL driver registered).
"""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "scripts" / "setup.sh"


def _fake_tool(bin_dir: Path, name: str, script: str = "exit 100") -> None:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)


def _setup(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "OCL_INFER_CACHE": str(tmp_path / "cache"), **env}
    return subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, env=full_env, timeout=300,
                          check=False)


def _failed_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.startswith("setup: FAILED")]
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_no_opencl_driver_and_apt_failing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _fake_tool(bin_dir, "apt-get")
    (tmp_path / "vendors").mkdir()
    out = _setup(tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}", OCL_INFER_ICD_DIR=str(tmp_path / "vendors"))
    line = _failed_line(out)
    assert "pocl-opencl-icd" in line and "install it by hand" in line


def test_wrong_python_version(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _fake_tool(bin_dir, "python3.9", 'case "$2" in *version_info*) exit 1;; *) echo 3.9.2;; esac')
    out = _setup(tmp_path, PYTHON=str(bin_dir / "python3.9"))
    assert "need 3.11" in _failed_line(out)


def test_failed_footage_download_leaves_no_partial_data(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _fake_tool(bin_dir, "apt-get", 'echo "E: Failed to fetch" >&2; exit 100')
    _fake_tool(bin_dir, "sudo", 'exec "$@"')
    out = _setup(tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}")
    line = _failed_line(out)
    assert "apt-get download darknet opencv-doc failed" in line and "rerun" in line
    data = tmp_path / "cache" / "data"
    assert not data.exists(), "a failed download must not leave a data folder that looks complete"
