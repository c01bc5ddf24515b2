"""Console scripts `vehicle_detector` and `managed_vehicle_detector`: the entry points only, kept light on purpose.

Why a module of its own: Ctrl-C must give exit code 0 and no traceback at any moment, start-up included. The
console script imports this module before anything runs, so the signal handling (`ShutdownGuard`) and the
shared-memory DDS profile are set up here, before the heavy imports (numpy, OpenCV, rclpy, the engine) and
before rclpy initialises the RMW. The nodes themselves live in `ocl_infer.ros.vehicle_detector` and
`ocl_infer.ros.managed_vehicle_detector` (import them from there: this module only points down to them).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def _plain_node() -> Any:
    from ocl_infer.ros.vehicle_detector import VehicleDetectorNode

    return VehicleDetectorNode()


def _managed_node() -> Any:
    from ocl_infer.ros.managed_vehicle_detector import ManagedVehicleDetectorNode

    return ManagedVehicleDetectorNode()


def run(script: str, make_node: Callable[[], Any], args: list[str] | None) -> int:
    """Signals first, then the DDS profile, then the heavy imports and the node -> exit code."""
    from ocl_infer.ros.dds_profile import use_shm_profile
    from ocl_infer.ros.shutdown import ShutdownGuard

    guard = ShutdownGuard(script).install()
    try:
        use_shm_profile()
        from ocl_infer.errors import OclInferError
        from ocl_infer.ros.shutdown import run_node_process

        try:
            return run_node_process(lambda nodes: nodes.append(make_node()), args, guard)
        except OclInferError as err:
            print(f"{script}: error: {err}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:  # a signal during the imports or rclpy.init: nothing to clean up yet
        return 0
    finally:
        guard.exiting()


def main(args: list[str] | None = None) -> int:
    """`vehicle_detector --ros-args -p name:=value --params-file FILE -r image:=/camera` -> exit code."""
    return run("vehicle_detector", _plain_node, args)


def main_managed(args: list[str] | None = None) -> int:
    """`managed_vehicle_detector --ros-args ...`: the lifecycle node, left unconfigured until a manager (a launch
    file, `ros2 lifecycle set`, the `change_state` service) configures and activates it."""
    return run("managed_vehicle_detector", _managed_node, args)


if __name__ == "__main__":
    raise SystemExit(main())
