"""One vehicle_detector on one camera.

  ros2 launch ocl_infer vehicle_detection.launch.py camera_topic:=/front/image_raw devices:=all
Arguments: camera_topic (remaps 'image' and 'image/compressed'), params_file (default: the package's
config/vehicle_detection.yaml), devices (OpenCL selectors; empty: keep the params file's), namespace,
use_sim_time. `ocl-infer launch` starts the same node with the same parameters without the ros2 CLI.
The node gets the package's shared-memory Fast DDS profile (config/fastdds_shm.xml: camera-sized frames over
default UDP are mostly lost) unless the launching shell configured Fast DDS itself; the camera's process needs
FASTDDS_DEFAULT_PROFILES_FILE pointing at the same file.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchContext, LaunchDescription
from ocl_infer.ros.dds_profile import launch_env

PACKAGE = "ocl_infer"


def detector_node(context: LaunchContext, *args: object, **kwargs: object) -> list[Node]:
    camera = LaunchConfiguration("camera_topic").perform(context)
    devices = LaunchConfiguration("devices").perform(context)
    overrides = {"use_sim_time": LaunchConfiguration("use_sim_time").perform(context).lower() == "true"}
    if devices:
        overrides["devices"] = devices
    profile = Path(get_package_share_directory(PACKAGE)) / "config" / "fastdds_shm.xml"
    return [
        Node(
            package=PACKAGE,
            executable="vehicle_detector",
            name="vehicle_detector",
            namespace=LaunchConfiguration("namespace").perform(context),
            parameters=[LaunchConfiguration("params_file").perform(context), overrides],
            remappings=[("image", camera), ("image/compressed", camera.rstrip("/") + "/compressed")],
            additional_env=launch_env(profile),
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    config = str(Path(get_package_share_directory(PACKAGE)) / "config" / "vehicle_detection.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("camera_topic", default_value="image", description="camera image topic"),
        DeclareLaunchArgument("params_file", default_value=config, description="ROS 2 params file"),
        DeclareLaunchArgument("devices", default_value="",
                              description="OpenCL device selectors ('all', '0,1', 'cl:1'); empty: params file"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        OpaqueFunction(function=detector_node),
    ])
