"""One vehicle_detector on one camera.

  ros2 launch ocl_infer vehicle_detection.launch.py camera_topic:=/front/image_raw devices:=all
  ros2 launch ocl_infer vehicle_detection.launch.py managed:=true     # the lifecycle node, brought to active
Arguments: camera_topic (remaps 'image' and 'image/compressed'), params_file (default: the package's
config/vehicle_detection.yaml), devices (OpenCL selectors; empty: keep the params file's), namespace,
use_sim_time, managed (true: managed_vehicle_detector, the lifecycle variant, configured at start and activated
once configured; a later deactivate stays deactivated). `ocl-infer launch [--managed]` starts the same node with
the same parameters without the ros2 CLI.
The node gets the package's shared-memory Fast DDS profile (config/fastdds_shm.xml: camera-sized frames over
default UDP are mostly lost) unless the launching shell configured Fast DDS itself; the camera's process needs
FASTDDS_DEFAULT_PROFILES_FILE pointing at the same file.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from launch import Action, LaunchContext, LaunchDescription
from ocl_infer.ros.dds_profile import launch_env

PACKAGE = "ocl_infer"


def to_active(node: LifecycleNode) -> list[Action]:
    """configure at start, activate once configure has succeeded (only after configuring: a deactivate by the
    user later is not undone)."""
    def change(transition: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition))

    return [
        RegisterEventHandler(OnStateTransition(target_lifecycle_node=node, start_state="configuring",
                                               goal_state="inactive",
                                               entities=[change(Transition.TRANSITION_ACTIVATE)])),
        change(Transition.TRANSITION_CONFIGURE),
    ]


def detector_node(context: LaunchContext, *args: object, **kwargs: object) -> list[Action]:
    camera = LaunchConfiguration("camera_topic").perform(context)
    devices = LaunchConfiguration("devices").perform(context)
    overrides = {"use_sim_time": LaunchConfiguration("use_sim_time").perform(context).lower() == "true"}
    if devices:
        overrides["devices"] = devices
    profile = Path(get_package_share_directory(PACKAGE)) / "config" / "fastdds_shm.xml"
    namespace = LaunchConfiguration("namespace").perform(context)
    parameters = [LaunchConfiguration("params_file").perform(context), overrides]
    remappings = [("image", camera), ("image/compressed", camera.rstrip("/") + "/compressed")]
    if LaunchConfiguration("managed").perform(context).lower() == "true":
        node = LifecycleNode(package=PACKAGE, executable="managed_vehicle_detector", name="vehicle_detector",
                             namespace=namespace, parameters=parameters, remappings=remappings,
                             additional_env=launch_env(profile), output="screen")
        return [node, *to_active(node)]
    return [
        Node(package=PACKAGE, executable="vehicle_detector", name="vehicle_detector", namespace=namespace,
             parameters=parameters, remappings=remappings, additional_env=launch_env(profile), output="screen")
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
        DeclareLaunchArgument("managed", default_value="false",
                              description="true: the lifecycle node (managed_vehicle_detector), brought to active"),
        OpaqueFunction(function=detector_node),
    ])
