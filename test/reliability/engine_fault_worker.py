"""Engine-level device faults, run as a subprocess with POCL_DEVICES="pthread pthread"; prints one JSON report.

40 distinct frames are in flight at once over two devices. Every frame's output is compared bit for bit with a
single-device run of the same input: a lost, duplicated or swapped frame would show. Phases, each on a fresh
Engine: "fail" (device 1 fails twice), "hang" (device 0 hangs once), "overlap" (device 1 fails while device 0
hangs, so for a moment no device is in rotation although device 1 returns after retry_s).
argv: <NNEF model folder>.
"""

import json
import sys
import threading
import time

import numpy as np

from ocl_infer.engine import Engine
from ocl_infer.engine.runtime import InjectedFault
from ocl_infer.errors import DeviceError

# phase -> (faults of device 0, faults of device 1), by the device's own frame number
PHASES = {"fail": ({}, {2: "fail", 5: "fail"}), "hang": ({4: "hang"}, {}),
          "overlap": ({4: "hang"}, {2: "fail_during_hang"})}
FRAME_S = 0.02  # each run takes at least this long, so 40 frames spread over time and devices


def run_phase(model: str, name: str, xs: list[np.ndarray], ref: list[dict], input_name: str) -> dict:
    faults0, faults1 = PHASES[name]
    report: dict = {}
    runs: list[tuple[str, int]] = []
    hit: list[tuple[str, str]] = []
    lock = threading.Lock()
    hang_started: list[float] = []
    retry_s = 1.5 if name == "overlap" else 0.5
    with Engine(model, devices="all", max_inflight=2, watchdog_s=1.0, retry_s=retry_s) as engine:

        def hook_for(rt, faults):
            def hook(n: int) -> None:
                with lock:
                    runs.append((rt.label, n))
                time.sleep(FRAME_S)
                if n in faults:
                    with lock:
                        hit.append((rt.label, faults[n]))
                if faults.get(n) == "fail_during_hang":  # fail just before the watchdog sees the hang
                    while not hang_started:
                        time.sleep(0.01)
                    time.sleep(max(0.0, hang_started[0] + 0.8 - time.monotonic()))
                    raise InjectedFault(f"{rt.label}: injected failure while the other device hangs")
                if faults.get(n) == "fail":
                    raise InjectedFault(f"{rt.label}: injected failure on its frame {n}")
                if faults.get(n) == "hang":
                    hang_started.append(time.monotonic())
                    time.sleep(2.5)
            return hook

        engine.runtimes[0].fault_hook = hook_for(engine.runtimes[0], faults0)
        engine.runtimes[1].fault_hook = hook_for(engine.runtimes[1], faults1)
        futures = [engine.submit({input_name: x}) for x in xs]
        outs = []
        for f in futures:
            try:
                outs.append(f.result(timeout=120))
            except DeviceError as err:
                outs.append(None)
                report["error"] = str(err)
        report["lost"] = sum(o is None for o in outs)
        report["identical"] = all(o is not None and all(np.array_equal(o[k], r[k]) for k in r)
                                  for o, r in zip(outs, ref, strict=True))
        stats = engine.stats()
        report["frames_per_device"] = [s.frames for s in stats]
        report["errors"] = [s.errors for s in stats]
        report["hangs"] = [s.hangs for s in stats]
        report["runs"] = len(runs)
        report["faults_hit"] = list(hit)
        time.sleep(2.5 + retry_s + 0.5)  # the hung run returns after 2.5 s, then retry_s: both back
        before = [s.frames for s in engine.stats()]
        more = [engine.submit({input_name: x}) for x in xs[:12]]
        outs2 = [f.result(timeout=120) for f in more]
        report["identical_after"] = all(np.array_equal(o[k], r[k]) for o, r in zip(outs2, ref[:12], strict=True)
                                        for k in r)
        report["used_after"] = [a - b for a, b in zip((s.frames for s in engine.stats()), before, strict=True)]
        report["in_rotation_end"] = [s.in_rotation for s in engine.stats()]
        report["events"] = [(dev, what) for _, dev, what in engine.events]
    return report


def main(model: str) -> None:
    rng = np.random.default_rng(3)
    with Engine(model, devices="0") as single:
        (name,) = single.inputs
        xs = [rng.standard_normal(single.inputs[name].shape).astype(np.float32) for _ in range(40)]
        ref = [single.run({name: x}) for x in xs]
    report = {phase: run_phase(model, phase, xs, ref, name) for phase in sys.argv[2:] or PHASES}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
