"""Start vehicle_detector node(s) as child processes for a replay, and always stop them again."""

import os
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ocl_infer.bag.typestore import COMPRESSED_IMAGE, IMAGE
from ocl_infer.child_process import ChildProcess, stop_all
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
        self.procs: list[ChildProcess] = []

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # the children's copy only
        env.setdefault("PYTHONUNBUFFERED", "1")
        for cmd in self.commands:
            # Own session: a terminal Ctrl-C reaches only us, and we stop the nodes after the recorder.
            # The death-signal wrapper stops a node even when we are killed outright (SIGKILL, a test timeout).
            self.procs.append(ChildProcess(with_parent_death_signal(cmd), self.log_path, env=env, new_session=True))

    def failed(self) -> str | None:
        """A line naming a node that exited early, with its log's last lines; None while all run."""
        for cmd, proc in zip(self.commands, self.procs, strict=False):
            if not proc.alive():
                name = Path(cmd[0]).name
                return f"{name} exited with code {proc.returncode}; log {self.log_path}:\n{proc.log_tail()}"
        return None

    def stop(self, timeout_s: float = 10.0) -> list[int]:
        """Stop every child (SIGINT to all, then SIGTERM, then SIGKILL); returns their exit codes."""
        return stop_all(self.procs, signal.SIGINT, timeout_s, escalate=(signal.SIGTERM,))
