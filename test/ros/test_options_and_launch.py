"""NodeOptions validation, the configs listing every parameter, the launch files (parsed: launch/launch_ros are
not installable here), `ocl-infer launch` argument handling and the message packages' shape."""

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from ocl_infer.errors import ConfigError
from ocl_infer.ros.options import PARAMETERS, NodeOptions
from ocl_infer.ros.params_file import configures, load_params_file, parameters_for

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_documented_ones():
    opts = NodeOptions()
    assert opts.cameras == ("image",)
    assert opts.deadline_ms == 100.0 and opts.late_policy == "publish"
    assert opts.qos_reliability == "best_effort" and opts.qos_depth == 1
    assert opts.device_selectors is None and opts.class_filter is None
    assert opts.input_deadline_s == pytest.approx(0.15)
    for spec in PARAMETERS:
        if not spec.string_list:
            assert getattr(opts, spec.name) == spec.default, spec.name


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"deadline_ms": 0.0}, "parameter deadline_ms: 0.0 is outside"),
        ({"late_policy": "later"}, "parameter late_policy: 'later' is not one of publish, drop"),
        ({"input_type": "h264"}, "parameter input_type"),
        ({"qos_depth": 0}, "parameter qos_depth"),
        ({"score_threshold": 1.5}, "parameter score_threshold"),
        ({"image_topics": ["a/image", "a/image"]}, "listed twice"),
        ({"image_topics": ["a/image", ""]}, "invalid topic name"),
        ({"overlay": "maybe"}, "parameter overlay: expected bool"),
        ({"deadline_ms": "fast"}, "parameter deadline_ms: expected float"),
        ({"deadline": 3}, "unknown parameter"),
    ],
)
def test_bad_values_name_the_parameter(values, match):
    with pytest.raises(ConfigError, match=match):
        NodeOptions.from_mapping(values)


def test_lists_and_selectors():
    opts = NodeOptions.from_mapping({"devices": "all", "classes": "car, 7", "image_topics": ["/f/image"],
                                     "qos_depth": 3.0, "use_sim_time": True})
    assert opts.device_selectors == "all" and opts.class_filter == ["car", 7]
    assert opts.cameras == ("/f/image",) and opts.qos_depth == 3
    assert NodeOptions(devices="0, cl:1").device_selectors == ["0", "cl:1"]
    assert NodeOptions(expected_rate_hz=0.0).input_deadline_s is None
    assert NodeOptions(input_deadline="off").input_deadline_s is None


def test_vehicle_detection_yaml_lists_every_parameter_with_its_default():
    text = (ROOT / "config" / "vehicle_detection.yaml").read_text()
    params = load_params_file(ROOT / "config" / "vehicle_detection.yaml")["/**"]
    for spec in PARAMETERS:
        if spec.string_list:
            assert f"# {spec.name}:" in text  # a list parameter has no default: shown commented out
        else:
            assert params[spec.name] == spec.default, spec.name
    assert NodeOptions.from_mapping(params) == NodeOptions()


def test_multi_camera_yaml_configures_both_nodes():
    sections = load_params_file(ROOT / "config" / "multi_camera.yaml")
    detector = parameters_for(sections, "vehicle_detector", "/")
    opts = NodeOptions.from_mapping(detector)
    assert len(opts.cameras) == 2 and opts.frames_in_flight == 2
    assert configures(sections, "deadline_monitor")
    monitor = parameters_for(sections, "deadline_monitor", "/robot")
    assert [p.split("->")[0].strip() for p in monitor["pairs"]] == list(opts.cameras)


def launch_calls(path: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Declared arguments (name -> default) and the keyword constants of every Node(...) and LifecycleNode(...) in a
    launch file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}

    def value(node: ast.expr) -> object:
        if isinstance(node, ast.Constant):
            return node.value
        return constants.get(node.id) if isinstance(node, ast.Name) else None

    args, nodes = {}, []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = getattr(call.func, "id", getattr(call.func, "attr", ""))
        kw = {k.arg: k.value for k in call.keywords}
        if name == "DeclareLaunchArgument":
            default = kw.get("default_value")
            args[call.args[0].value] = default.value if isinstance(default, ast.Constant) else "<expr>"
        elif name in ("Node", "LifecycleNode"):
            nodes.append({k: value(v) for k, v in kw.items() if value(v) is not None})
    return args, nodes


def console_scripts() -> set[str]:
    text = (ROOT / "setup.py").read_text()
    return {line.split("=")[0].strip().strip('"') for line in text.splitlines() if " = ocl_infer." in line}


@pytest.mark.parametrize(
    ("launch_file", "config", "arguments", "executables"),
    [
        ("vehicle_detection.launch.py", "vehicle_detection.yaml",
         {"camera_topic", "params_file", "devices", "namespace", "use_sim_time", "managed"},
         ["managed_vehicle_detector", "vehicle_detector"]),
        ("multi_camera.launch.py", "multi_camera.yaml", {"params_file", "devices", "namespace", "use_sim_time"},
         ["deadline_monitor", "vehicle_detector"]),
    ],
)
def test_launch_files_declare_their_arguments_and_start_existing_scripts(launch_file, config, arguments,
                                                                         executables):
    path = ROOT / "launch" / launch_file
    compile(path.read_text(), str(path), "exec")
    args, nodes = launch_calls(path)
    assert set(args) == arguments
    assert args["use_sim_time"] == "false"
    assert sorted(n["executable"] for n in nodes) == executables
    assert all(n["package"] == "ocl_infer" for n in nodes)
    assert set(executables) <= console_scripts()
    assert f'"{config}"' in path.read_text() and (ROOT / "config" / config).is_file()
    assert "def generate_launch_description" in path.read_text()
    # Installed where ament looks for them (setup.py data_files).
    assert 'data_files_under("launch")' in (ROOT / "setup.py").read_text()


def test_the_managed_launch_configures_then_activates_only_after_configuring():
    """managed:=true: a LifecycleNode, a ChangeState configure at start, and activate on configuring -> inactive
    only (not on deactivating -> inactive, which would undo a user's deactivate)."""
    text = (ROOT / "launch" / "vehicle_detection.launch.py").read_text()
    args, _ = launch_calls(ROOT / "launch" / "vehicle_detection.launch.py")
    assert args["managed"] == "false"
    assert "Transition.TRANSITION_CONFIGURE" in text and "Transition.TRANSITION_ACTIVATE" in text
    assert 'start_state="configuring"' in text and 'goal_state="inactive"' in text


def test_ocl_infer_launch_refuses_a_bad_params_file_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"late_policy": "never"}}}))
    proc = subprocess.run([str(Path(sys.executable).parent / "ocl-infer"), "launch", "--params", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ocl-infer launch: error: parameter late_policy: 'never' is not one of publish, drop"]
    missing = subprocess.run([str(Path(sys.executable).parent / "ocl-infer"), "launch", "--params",
                              str(tmp_path / "none.yaml")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "none.yaml: cannot read it" in missing.stderr


def test_ros_arguments_match_the_launch_file_remaps():
    import argparse

    from ocl_infer.cli.launch import ros_arguments

    ns = argparse.Namespace(camera="/front/image_raw", devices="all", namespace="robot", use_sim_time=True)
    args = ros_arguments(ns, Path("p.yaml"))
    assert args[:3] == ["--ros-args", "--params-file", "p.yaml"]
    joined = " ".join(args)
    for part in ("-r image:=/front/image_raw", "-r image/compressed:=/front/image_raw/compressed",
                 '-p devices:="all"', "-r __ns:=/robot", "-p use_sim_time:=true"):
        assert part in joined


@pytest.mark.parametrize("package", ["vision_msgs", "ocl_infer_msgs"])
def test_message_packages_are_ros_packages(package):
    root = ET.parse(ROOT / "msgs" / package / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == package
    assert root.findtext("export/build_type") == "ament_cmake"
    assert root.findtext("member_of_group") == "rosidl_interface_packages"
    cmake = (ROOT / "msgs" / package / "CMakeLists.txt").read_text()
    assert f"project({package})" in cmake and "rosidl_generate_interfaces" in cmake
    for msg in (ROOT / "msgs" / package / "msg").glob("*.msg"):
        assert f"msg/{msg.name}" in cmake


def test_vision_msgs_fields_and_order_are_those_of_vision_msgs_4():
    from vision_msgs.msg import (
        BoundingBox2D,
        Detection2D,
        Detection2DArray,
        ObjectHypothesis,
        ObjectHypothesisWithPose,
        Pose2D,
    )

    def fields(cls: type) -> list[tuple[str, str]]:
        return list(cls.get_fields_and_field_types().items())

    assert fields(Detection2DArray) == [("header", "std_msgs/Header"),
                                        ("detections", "sequence<vision_msgs/Detection2D>")]
    assert fields(Detection2D) == [("header", "std_msgs/Header"),
                                   ("results", "sequence<vision_msgs/ObjectHypothesisWithPose>"),
                                   ("bbox", "vision_msgs/BoundingBox2D"), ("id", "string")]
    assert fields(ObjectHypothesisWithPose) == [("hypothesis", "vision_msgs/ObjectHypothesis"),
                                                ("pose", "geometry_msgs/PoseWithCovariance")]
    assert fields(ObjectHypothesis) == [("class_id", "string"), ("score", "double")]
    assert fields(BoundingBox2D) == [("center", "vision_msgs/Pose2D"), ("size_x", "double"),
                                     ("size_y", "double")]
    assert fields(Pose2D) == [("position", "vision_msgs/Point2D"), ("theta", "double")]


def test_camera_outputs_go_under_each_topic_namespace():
    from ocl_infer.ros.vehicle_detector import camera_namespace, output_namespaces, output_topic

    assert camera_namespace("image") == "" and output_topic("", "detections") == "detections"
    assert camera_namespace("/front/image_raw") == "/front"
    assert output_topic("/front", "detections/overlay") == "/front/detections/overlay"
    assert camera_namespace("cam_a/image") == "cam_a" and camera_namespace("/image") == "/"
    assert output_topic("/", "timing") == "/timing"
    assert output_namespaces(("/front/image_raw", "/rear/image_raw")) == {"/front": "/front/image_raw",
                                                                          "/rear": "/rear/image_raw"}
    with pytest.raises(ConfigError, match="share the namespace '/front'"):
        output_namespaces(("/front/image_raw", "/front/image_rect"))


def test_node_refuses_a_wrongly_typed_parameter_with_one_line():
    proc = subprocess.run([str(Path(sys.executable).parent / "vehicle_detector"), "--ros-args", "-p", "devices:=0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("vehicle_detector: error: parameter devices: expected str"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_build_msgs_fails_with_one_clear_line(tmp_path):
    script = ROOT / "scripts" / "build_msgs.sh"
    proc = subprocess.run([str(script), str(tmp_path), str(tmp_path / "cache")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"build_msgs: FAILED: no Python in {tmp_path}: run make setup first"]
    usage = subprocess.run([str(script)], capture_output=True, text=True, timeout=60)
    assert usage.returncode != 0 and "usage: scripts/build_msgs.sh VENV CACHE" in usage.stderr
