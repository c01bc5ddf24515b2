"""A child process we start and must always stop again: start, signal, wait, kill.

The replay's detector nodes, the test suites' node processes and the benchmarks all stop a child the same way:
a polite signal (SIGINT: the node's clean shutdown), a grace period, then harder signals, each with a short
wait, and finally SIGKILL; a child in its own session is killed with its whole process group, so nothing it
started outlives it. Keeping that sequence in one place keeps the grace periods and escalation consistent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

ESCALATE_S = 3.0  # wait after each harder signal before the next one


class ChildProcess:
    """``cmd`` running as a child, its stdout and stderr appended to ``log_path`` (or discarded without one).

    ``new_session``: the child gets its own session and process group, so a terminal Ctrl-C reaches only us
    and `kill` takes its whole group. Usable as a context manager that stops it on exit."""

    def __init__(self, cmd: Sequence[str], log_path: str | Path | None = None, *,
                 env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
                 new_session: bool = False, stdin: int | None = subprocess.DEVNULL) -> None:
        self.cmd = list(cmd)
        self.log_path = Path(log_path) if log_path is not None else None
        self.new_session = new_session
        self._log: IO[bytes] | None = self.log_path.open("ab") if self.log_path is not None else None
        try:
            self.proc = subprocess.Popen(
                self.cmd, stdin=stdin, stdout=self._log if self._log is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT, env=dict(env) if env is not None else None, cwd=cwd,
                start_new_session=new_session)
        except BaseException:
            self._close_log()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the child if it still runs (never to a reused pid)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout_s: float | None = None) -> int | None:
        """The exit code, or None if the child still runs after `timeout_s`."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> int:
        """SIGKILL the child (its process group when it has its own session) and reap it."""
        if self.proc.poll() is None:
            if self.new_session:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
        return self.proc.wait()

    def stop(self, sig: int = signal.SIGINT, grace_s: float = 10.0,
             escalate: Sequence[int] = ()) -> int:
        """Send `sig`, wait up to `grace_s`, then each of `escalate` with `ESCALATE_S` waits, then `kill`;
        close the log and return the exit code."""
        self.send_signal(sig)
        stop_all([self], None, grace_s, escalate)
        return self.proc.returncode  # type: ignore[return-value]  # reaped by stop_all

    def log(self) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        """The log's last lines, indented, for an error message."""
        return "\n".join("    " + line for line in self.log().splitlines()[-lines:])

    def rss_kib(self) -> int:
        """Resident memory of the child now (Linux /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"/proc/{self.proc.pid}/status has no VmRSS")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def stop_all(children: Iterable[ChildProcess], sig: int | None = signal.SIGINT, grace_s: float = 10.0,
             escalate: Sequence[int] = ()) -> list[int]:
    """Stop several children together: `sig` to all first (so they shut down in parallel), then per child a
    wait up to the shared `grace_s` deadline, each of `escalate`, and SIGKILL. Returns their exit codes."""
    children = list(children)
    if sig is not None:
        for child in children:
            child.send_signal(sig)
    deadline = time.monotonic() + grace_s
    for child in children:
        code = child.wait(max(0.1, deadline - time.monotonic()))
        for hard in escalate:
            if code is not None:
                break
            child.send_signal(hard)
            code = child.wait(ESCALATE_S)
        if code is None:
            child.kill()
        child._close_log()
    return [c.proc.returncode for c in children]
