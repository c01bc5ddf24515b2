"""Run in a subprocess with POCL_DEVICES="pthread pthread pthread" (pyopencl enumerates platforms once per
process). Prints one JSON object with what the multi-device test asserts."""

import json
import sys
import time

import numpy as np

from ocl_infer.engine import Engine
from ocl_infer.engine.runtime import InjectedFault
from ocl_infer.errors import DeviceError


def frames(shape: tuple[int, ...], n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.random(shape, dtype=np.float32) for _ in range(n)]


def main(model: str) -> None:
    report: dict = {}
    with Engine(model, devices="0") as single:
        (name,) = single.inputs
        xs = frames(single.inputs[name].shape, 12)
        ref = [single.run({name: x}) for x in xs]
    report["devices_seen"] = None

    # 1. all devices: identical outputs, order preserved, every device used
    with Engine(model, devices="all", max_inflight=2) as multi:
        report["devices_seen"] = [s.label for s in multi.stats()]
        futures = [multi.submit({name: x}) for x in xs]
        outs = [f.result(timeout=120) for f in futures]
        report["identical"] = all(np.array_equal(o[k], r[k]) for o, r in zip(outs, ref, strict=True) for k in r)
        report["frames_per_device"] = [s.frames for s in multi.stats()]
        report["tags"] = sorted({f.device for f in futures})

    # 2. a device fails mid-run: nothing lost, error counted and logged, device back after retry_s
    with Engine(model, devices="all", max_inflight=2, retry_s=0.3) as multi:
        def fail_first(frame_no: int) -> None:
            if frame_no == 1:  # its first frame (frames 0-2 go to devices 0-2 at submit)
                raise InjectedFault("injected OpenCL failure")

        multi.runtimes[1].fault_hook = fail_first
        futures = [multi.submit({name: x}) for x in xs]
        outs = [f.result(timeout=120) for f in futures]
        report["fault_identical"] = all(np.array_equal(o[k], r[k]) for o, r in zip(outs, ref, strict=True) for k in r)
        report["fault_errors"] = [s.errors for s in multi.stats()]
        report["fault_events"] = [what for _, dev, what in multi.events if dev.startswith("cl:1")]
        frames_before = multi.stats()[1].frames
        time.sleep(0.8)  # past retry_s: the device returns to rotation
        more = [multi.submit({name: x}) for x in xs]
        for f in more:
            f.result(timeout=120)
        report["retried_frames"] = multi.stats()[1].frames - frames_before
        report["events_after_retry"] = [what for _, dev, what in multi.events if dev.startswith("cl:1")]

    # 3. a device hangs: the watchdog re-runs the frame elsewhere
    with Engine(model, devices="all", max_inflight=1, watchdog_s=0.5, retry_s=0.2) as multi:
        def hang_once(frame_no: int) -> None:
            if frame_no == 1:  # device 0 always gets the first frame
                time.sleep(2.0)

        multi.runtimes[0].fault_hook = hang_once
        t0 = time.monotonic()
        futures = [multi.submit({name: x}) for x in xs[:6]]
        outs = [f.result(timeout=60) for f in futures]
        report["hang_wall_s"] = time.monotonic() - t0
        report["hang_identical"] = all(np.array_equal(o[k], r[k]) for o, r in zip(outs, ref[:6], strict=True)
                                       for k in r)
        report["hangs"] = [s.hangs for s in multi.stats()]

    # 4. every device fails: a clear DeviceError, never a hang
    with Engine(model, devices="all", retry_s=0.2) as multi:
        def always(frame_no: int) -> None:
            raise InjectedFault("device lost")

        for rt in multi.runtimes:
            rt.fault_hook = always
        t0 = time.monotonic()
        try:
            multi.submit({name: xs[0]}).result(timeout=30)
            report["all_failed_error"] = None
        except DeviceError as err:
            report["all_failed_error"] = str(err)
        report["all_failed_wall_s"] = time.monotonic() - t0
        try:
            multi.run({name: xs[1]})
            report["after_all_failed"] = None
        except DeviceError as err:
            report["after_all_failed"] = str(err)
    # 5. layer pipelining: one stage per device, frames flow through all of them
    with Engine(model, devices="all", pipeline=True) as piped:
        futures = [piped.submit({name: x}) for x in xs]
        outs = [f.result(timeout=120) for f in futures]
        report["pipeline_identical"] = all(np.array_equal(o[k], r[k]) for o, r in zip(outs, ref, strict=True)
                                           for k in r)
        report["pipeline_stage_frames"] = [s.frames for s in piped.stats()]
        report["pipeline_device"] = futures[0].device
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
