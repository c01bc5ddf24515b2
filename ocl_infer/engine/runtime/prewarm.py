"""Share a cold start's compiling with a second process.

PoCL compiles under one process-wide lock, so a cold start (every program built from source, every kernel
compiled again at its first launch) uses one core however many the machine has. When a plan has several
programs missing from the disk cache, the engine starts this child: it binds the same plan from the LAST step
backwards and launches each newly built step once, while the engine works from the first step forwards. Both
fill PoCL's own cache (POCL_CACHE_DIR, shared by every process of the user), so when the engine reaches a step
the child has done, building and first launch are cache hits. The engine closes the child's stdin when its own
walk is done; the child stops before its next step. On drivers without such a cache the child only costs
the other core's time for that while.

The child gets the plan's steps, shapes and buffer plan, not its weights (zeros of the same shapes do for
compiling), in a pickle it deletes after reading.

    python -m ocl_infer.engine.runtime.prewarm PLAN.pickle   (what the engine starts)
"""

import contextlib
import logging
import os
import pickle
import select
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ocl_infer.engine.plan.model import BufferPlan, Plan, Step

log = logging.getLogger(__name__)

MIN_MISSING = 3  # programs missing from the disk cache before a child is worth its start (~0.5 s of a core)


def missing_programs(plan: Plan, device: Any) -> int:
    """How many distinct programs of `plan` are not in the disk cache for `device` (a pyopencl.Device)."""
    from ocl_infer.engine.kernels.registry import kernel_for
    from ocl_infer.engine.runtime.program_cache import on_disk

    wanted = set()
    for step in plan.steps:
        if step.variant != "alias":
            kernel = kernel_for(step)(step, plan.shapes)
            wanted.add((kernel.source(), kernel.build_options()))
    return sum(not on_disk(device, source, options) for source, options in wanted)


def start_prewarm(plan: Plan, device: Any) -> subprocess.Popen[bytes] | None:
    """Start the child for `plan` on `device`; None if it could not start (the engine then compiles alone)."""
    from ocl_infer.engine.runtime.program_cache import program_cache_dir

    b = plan.buffers
    spec = {
        "platform": device.platform.name, "device": device.name,
        "inputs": plan.inputs, "outputs": plan.outputs, "shapes": dict(plan.shapes),
        "steps": [(s.kind, s.variant, s.inputs, s.outputs, dict(s.attrs), s.name) for s in plan.steps],
        "constants": {n: (a.shape, a.dtype.str) for n, a in plan.constants.items()},
        "buffers": (dict(b.storage_of), dict(b.slot_of), b.slot_bytes, dict(b.pinned_bytes), dict(b.offset_of)),
    }
    folder = program_cache_dir()
    name = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".prewarm-", suffix=".pickle")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(spec, f)
        return subprocess.Popen([sys.executable, "-m", __name__, name], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except (OSError, pickle.PicklingError) as err:
        log.debug("prewarm child not started: %s", err)
        if name is not None:
            Path(name).unlink(missing_ok=True)
        return None


def stop_prewarm(child: subprocess.Popen[bytes] | None) -> None:
    """Tell the child to stop before its next step (it exits by itself; nothing it writes can be half-done)."""
    if child is not None and child.stdin is not None:
        with contextlib.suppress(OSError):
            child.stdin.close()


def _plan_from(spec: dict[str, Any]) -> Plan:
    storage_of, slot_of, slot_bytes, pinned_bytes, offset_of = spec["buffers"]
    return Plan(inputs=tuple(spec["inputs"]), outputs=tuple(spec["outputs"]), shapes=spec["shapes"],
                steps=tuple(Step(*s) for s in spec["steps"]),
                constants={n: np.zeros(shape, np.dtype(dt)) for n, (shape, dt) in spec["constants"].items()},
                buffers=BufferPlan(storage_of, slot_of, tuple(slot_bytes), pinned_bytes, offset_of))


def _stdin_closed() -> bool:
    """True once the engine has closed our stdin (or written to it): time to stop."""
    return bool(select.select([sys.stdin], [], [], 0)[0])


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    try:
        spec = pickle.loads(path.read_bytes())
    finally:
        path.unlink(missing_ok=True)
    import pyopencl as cl

    from ocl_infer.engine.runtime.executor import DeviceRuntime

    device = next((d for p in cl.get_platforms() if p.name == spec["platform"] for d in p.get_devices()
                   if d.name == spec["device"]), None)
    if device is None:
        return 1
    rt = DeviceRuntime(_plan_from(spec), device, "prewarm", disk_cache=False, prime=True, reverse=True,
                       stop=_stdin_closed)
    rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
