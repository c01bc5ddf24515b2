"""ocl_infer.child_process: the one start / signal / wait / kill sequence of the product and the tests."""

import signal
import sys
import time
from pathlib import Path

from ocl_infer.child_process import ChildProcess, stop_all

IGNORES_SIGINT = "import os, signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); " \
                 "print('up', os.getpid(), flush=True); time.sleep(60)"


def _wait_for(child: ChildProcess, text: str) -> None:
    end = time.monotonic() + 10
    while text not in child.log():
        assert child.alive() and time.monotonic() < end, child.log()
        time.sleep(0.02)


def test_stop_ends_a_polite_child_with_its_own_exit_code(tmp_path: Path) -> None:
    code = "import signal, sys, time; signal.signal(signal.SIGINT, lambda *a: sys.exit(3)); print('up', flush=True); " \
           "time.sleep(60)"
    child = ChildProcess([sys.executable, "-c", code], tmp_path / "c.log")
    _wait_for(child, "up")
    assert child.stop() == 3 and not child.alive()


def test_a_child_that_ignores_sigint_is_escalated_then_killed_with_its_group(tmp_path: Path) -> None:
    # The child starts a grandchild in its process group; SIGKILL to the group must take both.
    code = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', " + repr(IGNORES_SIGINT) + "]); "
            + IGNORES_SIGINT.replace("print('up', os.getpid()", "print('parent'"))
    child = ChildProcess([sys.executable, "-c", code], tmp_path / "c.log", new_session=True)
    _wait_for(child, "parent")
    _wait_for(child, "up")
    t0 = time.monotonic()
    assert child.stop(grace_s=0.5, escalate=(signal.SIGINT,)) == -signal.SIGKILL
    assert time.monotonic() - t0 < 10
    grandchild = int(child.log().split("up ")[1].split()[0])
    end = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < end:
        time.sleep(0.05)
    assert not _alive(grandchild) and not child.alive()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited


def test_stop_all_signals_every_child_first(tmp_path: Path) -> None:
    children = [ChildProcess([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                             tmp_path / f"{i}.log") for i in range(3)]
    for c in children:
        _wait_for(c, "up")
    t0 = time.monotonic()
    assert stop_all(children, signal.SIGTERM, grace_s=5.0) == [-signal.SIGTERM] * 3
    assert time.monotonic() - t0 < 5.0  # in parallel, not one grace period each
