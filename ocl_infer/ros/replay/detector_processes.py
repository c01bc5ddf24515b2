"""Start vehicle_detector node(s) as child processes for a replay, and always stop them again."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ocl_infer.bag.typestore import COMPRESSED_IMAGE, IMAGE
from ocl_infer.errors import SetupError

NODE_EXECUTABLE = "vehicle_detector"


def find_node_executable() -> str:
    """$OCL_INFER_NODE_EXECUTABLE if set, else the vehicle_detector console script beside this interpreter,
    else on PATH."""
    override = os.environ.get("OCL_INFER_NODE_EXECUTABLE")
    if override:
        return override
    local = Path(sys.executable).parent / NODE_EXECUTABLE
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(NODE_EXECUTABLE)
    if found is None:
        raise SetupError(
            f"{NODE_EXECUTABLE} is not installed (no console script beside {sys.executable} or on PATH): "
            "run `make setup`, or start the node yourself and use --external"
        )
    return found


COMPRESSED_SUFFIX = "/compressed"


def _one_node(
    exe: str,
    params_file: Path | None,
    topics: Sequence[str],
    compressed: bool,
    name: str | None,
    parameters: Sequence[tuple[str, str]] = (),
    remap: bool = True,
) -> list[str]:
    cmd = [exe, "--ros-args"]
    if name is not None:
        cmd += ["-r", f"__node:={name}"]
    if params_file is not None:
        cmd += ["--params-file", str(params_file)]
    cmd += ["-p", "use_sim_time:=true", "-p", f"input_type:={'compressed' if compressed else 'raw'}"]
    for key, value in parameters:
        cmd += ["-p", f"{key}:={value}"]
    if remap:
        cmd += ["-r", f"{'image/compressed' if compressed else 'image'}:={topics[0]}"]
    else:
        bases = [t.removesuffix(COMPRESSED_SUFFIX) if compressed else t for t in topics]
        cmd += ["-p", f"image_topics:=[{','.join(bases)}]"]
    return cmd


def node_commands(
    topics: Mapping[str, str],
    params_file: Path | None,
    executable: str | None = None,
    parameters: Sequence[tuple[str, str]] = (),
) -> list[list[str]]:
    """Commands for nodes serving `topics` ({topic: msgtype}) with use_sim_time on.

    One camera: `image` (or `image/compressed`) remapped to it; outputs on detections, timing. Several: one node
    per input type (a node takes either raw or compressed images) with `image_topics`, so each camera's outputs
    go under its own namespace (/front/detections, ...); compressed topics are given by their base name, so a
    compressed topic not ending in /compressed gets a node of its own, remapped.
    """
    exe = executable or find_node_executable()
    raw = [t for t, m in topics.items() if m == IMAGE]
    compressed = [t for t, m in topics.items() if m == COMPRESSED_IMAGE]
    single = len(raw) + len(compressed) == 1
    groups: list[tuple[list[str], bool, bool]] = []  # topics, compressed, remap
    if raw:
        groups.append((raw, False, single))
    conventional = [t for t in compressed if t.endswith(COMPRESSED_SUFFIX)]
    if conventional:
        groups.append((conventional, True, single))
    groups += [([t], True, True) for t in compressed if not t.endswith(COMPRESSED_SUFFIX)]
    # The first node keeps the default name, so a params file written for `vehicle_detector` applies to it.
    return [
        _one_node(exe, params_file, group, is_compressed, None if i == 0 else f"vehicle_detector_{i}", parameters,
                  remap)
        for i, (group, is_compressed, remap) in enumerate(groups)
    ]


# Run in the child before exec: ask Linux to send SIGTERM when the parent dies (kept across exec), and exit at
# once if the parent is already gone. Portable no-op where prctl does not exist.
_DEATH_SIGNAL_LAUNCHER = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(143)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def with_parent_death_signal(cmd: Sequence[str]) -> list[str]:
    """`cmd` wrapped so that the child gets SIGTERM when this process dies, however it dies."""
    if not sys.platform.startswith("linux"):
        return list(cmd)
    return [sys.executable, "-c", _DEATH_SIGNAL_LAUNCHER, str(os.getpid()), *cmd]


class DetectorProcesses:
    """Child node processes with their output in `log_path`; `stop` ends each one (SIGINT, then harder)."""

    def __init__(self, commands: Sequence[Sequence[str]], log_path: Path) -> None:
        self.commands = [list(c) for c in commands]
        self.log_path = log_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        for cmd in self.commands:
            # Own session: a terminal Ctrl-C reaches only us, and we stop the nodes after the recorder.
            # The death-signal wrapper stops a node even when we are killed outright (SIGKILL, a test timeout).
            self.procs.append(
                subprocess.Popen(
                    with_parent_death_signal(cmd), stdout=self._log, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True,
                )
            )

    def failed(self) -> str | None:
        """A line naming a node that exited early, with its log's last lines; None while all run."""
        for cmd, proc in zip(self.commands, self.procs, strict=True):
            if proc.poll() is not None:
                name = Path(cmd[0]).name
                return f"{name} exited with code {proc.returncode}; log {self.log_path}:\n{self.log_tail()}"
        return None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])

    def stop(self, timeout_s: float = 10.0) -> list[int]:
        """Stop every child (SIGINT, then SIGTERM, then SIGKILL); returns their exit codes."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                    break
                except subprocess.TimeoutExpired:
                    proc.send_signal(sig)
                    deadline = time.monotonic() + 3.0
            else:
                proc.wait()
        if hasattr(self, "_log"):
            self._log.close()
        return [p.returncode for p in self.procs]
