"""Console script `vehicle_detector`: the entry point only, kept light on purpose.

Why a module of its own: Ctrl-C must give exit code 0 and no traceback at any moment, start-up included. The
console script imports this module before anything runs, so the signal handling (`ShutdownGuard`) and the
shared-memory DDS profile are set up here, before the heavy imports (numpy, OpenCV, rclpy, the engine) and
before rclpy initialises the RMW. The node itself lives in `ocl_infer.ros.vehicle_detector` (import it from
there: this module only points down to it).
"""

from __future__ import annotations

import sys


def main(args: list[str] | None = None) -> int:
    """`vehicle_detector --ros-args -p name:=value --params-file FILE -r image:=/camera` -> exit code."""
    from ocl_infer.ros.dds_profile import use_shm_profile
    from ocl_infer.ros.shutdown import ShutdownGuard

    guard = ShutdownGuard("vehicle_detector").install()
    try:
        use_shm_profile()
        from ocl_infer.errors import OclInferError
        from ocl_infer.ros.shutdown import run_node_process
        from ocl_infer.ros.vehicle_detector import VehicleDetectorNode

        try:
            return run_node_process(lambda nodes: nodes.append(VehicleDetectorNode()), args, guard)
        except OclInferError as err:
            print(f"vehicle_detector: error: {err}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:  # a signal during the imports or rclpy.init: nothing to clean up yet
        return 0
    finally:
        guard.exiting()


if __name__ == "__main__":
    raise SystemExit(main())
