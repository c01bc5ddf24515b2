"""`ocl-infer launch`: the nodes of launch/*.launch.py in one process (one rclpy executor), no ros2 CLI needed.

Same parameters as the launch files: a ROS 2 params file (default config/vehicle_detection.yaml), the camera
topic (remaps `image` and `image/compressed`), devices, namespace, use_sim_time. The deadline_monitor runs too
when the params file has a section for it (config/multi_camera.yaml does). The file is checked before ROS
starts, with messages that name the parameter. `--managed` runs the lifecycle variant of vehicle_detector and
brings it to active (configure, then activate), as `vehicle_detection.launch.py managed:=true` does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ocl_infer.errors import ConfigError


def default_params_file() -> Path:
    """config/vehicle_detection.yaml of the source checkout, else of the installed share folder."""
    from ocl_infer.paths import repo_root

    root = repo_root()
    if root is not None:
        return root / "config" / "vehicle_detection.yaml"
    # Installed (colcon or pip): <prefix>/lib/pythonX.Y/site-packages/ocl_infer -> <prefix>/share/ocl_infer
    package = Path(__file__).resolve().parent.parent
    for prefix in (*package.parents, Path(sys.prefix)):
        candidate = prefix / "share" / "ocl_infer" / "config" / "vehicle_detection.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError("config/vehicle_detection.yaml not found next to the installed package; give --params FILE")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("launch", help="run vehicle_detector (and deadline_monitor) in one process",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=None,
                   help="ROS 2 params file (default: config/vehicle_detection.yaml)")
    p.add_argument("--camera", default=None, help="camera image topic (remaps 'image' and 'image/compressed')")
    p.add_argument("--devices", default=None, help="OpenCL device selectors, e.g. 'all', '0,1', 'cl:1'")
    p.add_argument("--namespace", default=None, help="namespace of the nodes (and their relative topics)")
    p.add_argument("--use-sim-time", action="store_true", help="use /clock (for bag replay)")
    p.add_argument("--monitor", action="store_true",
                   help="also run deadline_monitor on the camera -> detections pair")
    p.add_argument("--managed", action="store_true",
                   help="run the managed (lifecycle) vehicle_detector and bring it to active")
    p.set_defaults(func=run)


def ros_arguments(args: argparse.Namespace, params: Path) -> list[str]:
    """The --ros-args a launch file would give the nodes."""
    out = ["--ros-args", "--params-file", str(params)]
    if args.camera:
        out += ["-r", f"image:={args.camera}", "-r", f"image/compressed:={args.camera.rstrip('/')}/compressed"]
    if args.devices is not None:
        out += ["-p", f'devices:="{args.devices}"']  # quoted: YAML would read '0' as an integer
    if args.namespace:
        out += ["-r", f"__ns:={'/' + args.namespace.strip('/')}"]
    if args.use_sim_time:
        out += ["-p", "use_sim_time:=true"]
    return out


def run(args: argparse.Namespace) -> int:
    from ocl_infer.ros.options import NodeOptions
    from ocl_infer.ros.params_file import configures, load_params_file, parameters_for

    params = args.params or default_params_file()
    sections = load_params_file(params)
    namespace = "/" + (args.namespace or "").strip("/")
    detector_params = parameters_for(sections, "vehicle_detector", namespace)
    if args.devices is not None:
        detector_params["devices"] = args.devices
    NodeOptions.from_mapping(detector_params)  # fail here, naming the parameter, before ROS starts
    monitor_params = parameters_for(sections, "deadline_monitor", namespace)
    with_monitor = args.monitor or configures(sections, "deadline_monitor")
    if with_monitor and not monitor_params.get("pairs"):
        # The detector's outputs are relative (the node's namespace) whatever the camera is remapped to.
        monitor_params["pairs"] = [f"{args.camera or 'image'} -> detections"]

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from ocl_infer.ros.dds_profile import use_shm_profile
    from ocl_infer.ros.shutdown import ShutdownGuard, run_node_process

    guard = ShutdownGuard("ocl-infer launch").install()  # Ctrl-C (once or twice) or SIGTERM: exit 0
    use_shm_profile()  # before rclpy initialises Fast DDS; a profile of the user's own wins
    try:
        from rclpy.parameter import Parameter

        from ocl_infer.ros.deadline_monitor_node import DeadlineMonitorNode
        from ocl_infer.ros.vehicle_detector import VehicleDetectorNode

        def build(nodes: list[object]) -> None:
            if args.managed:
                from ocl_infer.ros.managed_vehicle_detector import ManagedVehicleDetectorNode, bring_to_active

                managed = ManagedVehicleDetectorNode()
                nodes.append(managed)
                bring_to_active(managed)
            else:
                nodes.append(VehicleDetectorNode())
            if with_monitor:
                overrides = [Parameter("pairs", Parameter.Type.STRING_ARRAY, list(monitor_params["pairs"]))]
                nodes.append(DeadlineMonitorNode(parameter_overrides=overrides))

        return run_node_process(build, ros_arguments(args, params), guard)
    except KeyboardInterrupt:
        return 0
    finally:
        guard.exiting()
