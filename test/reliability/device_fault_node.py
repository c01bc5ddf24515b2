"""vehicle_detector with a Detector on every OpenCL device and a fault plan on the engine's device runtimes.

Run by test_device_faults.py as a subprocess with POCL_DEVICES="pthread pthread" (pyopencl enumerates devices
once per process). argv: <model folder> <fault log file> [--ros-args ...]. Frames are counted across devices:
frame FAIL_AT raises InjectedFault on whichever device runs it, frame HANG_AT sleeps HANG_S there (longer than
the watchdog). Each fault is appended to the log file as a JSON line with the device label.
"""

import json
import sys
import threading
import time

import rclpy

from ocl_infer.detection import Detector
from ocl_infer.engine.runtime import InjectedFault
from ocl_infer.ros.vehicle_detector import VehicleDetectorNode, run_nodes

FAIL_AT, HANG_AT, HANG_S = 3, 10, 6.0
WATCHDOG_S, RETRY_S = 2.0, 3.0


def main() -> int:
    model, fault_log = sys.argv[1], sys.argv[2]
    lock = threading.Lock()
    count = [0]

    def hook_for(label: str):
        def hook(_frame_on_device: int) -> None:
            with lock:
                count[0] += 1
                n = count[0]
            if n in (FAIL_AT, HANG_AT):
                with open(fault_log, "a") as f:
                    f.write(json.dumps({"frame": n, "device": label, "kind": "fail" if n == FAIL_AT else "hang"})
                            + "\n")
            if n == FAIL_AT:
                raise InjectedFault(f"{label}: injected device failure")
            if n == HANG_AT:
                time.sleep(HANG_S)
        return hook

    with rclpy.init(args=sys.argv):
        detector = Detector(model=model, devices="all", watchdog_s=WATCHDOG_S, retry_s=RETRY_S)
        detector.detect(__import__("numpy").zeros((240, 320, 3), "uint8"))  # build kernels on both devices
        for rt in detector._runner.engine.runtimes:  # test hook of the executor
            rt.fault_hook = hook_for(rt.label)
        try:
            node = VehicleDetectorNode(detector=detector)
            return run_nodes([node])
        finally:
            detector.close()


if __name__ == "__main__":
    raise SystemExit(main())
