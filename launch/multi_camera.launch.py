"""Several cameras in one vehicle_detector (one Detector shared), watched by a deadline_monitor.

  ros2 launch ocl_infer multi_camera.launch.py devices:=all
The cameras (image_topics) and the watched pairs come from params_file (default: the package's
config/multi_camera.yaml); each camera's outputs go under its topic's namespace (/front/detections, ...).
Arguments: params_file, devices (empty: keep the params file's), namespace, use_sim_time.
`ocl-infer launch --params config/multi_camera.yaml` starts the same nodes in one process.
Both nodes get the package's shared-memory Fast DDS profile unless the launching shell configured Fast DDS.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchContext, LaunchDescription
from ocl_infer.ros.dds_profile import launch_env

PACKAGE = "ocl_infer"


def nodes(context: LaunchContext, *args: object, **kwargs: object) -> list[Node]:
    params = LaunchConfiguration("params_file").perform(context)
    namespace = LaunchConfiguration("namespace").perform(context)
    devices = LaunchConfiguration("devices").perform(context)
    sim_time = {"use_sim_time": LaunchConfiguration("use_sim_time").perform(context).lower() == "true"}
    detector_overrides = dict(sim_time, devices=devices) if devices else dict(sim_time)
    env = launch_env(Path(get_package_share_directory(PACKAGE)) / "config" / "fastdds_shm.xml")
    return [
        Node(package=PACKAGE, executable="vehicle_detector", name="vehicle_detector", namespace=namespace,
             parameters=[params, detector_overrides], additional_env=env, output="screen"),
        Node(package=PACKAGE, executable="deadline_monitor", name="deadline_monitor", namespace=namespace,
             parameters=[params, sim_time], additional_env=env, output="screen"),
    ]


def generate_launch_description() -> LaunchDescription:
    config = str(Path(get_package_share_directory(PACKAGE)) / "config" / "multi_camera.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=config, description="ROS 2 params file"),
        DeclareLaunchArgument("devices", default_value="",
                              description="OpenCL device selectors ('all', '0,1'); empty: params file"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        OpaqueFunction(function=nodes),
    ])
