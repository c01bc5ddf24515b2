"""How the replay starts vehicle_detector nodes for the topics it found (no ROS needed to check)."""

from pathlib import Path

from ocl_infer.ros.replay.detector_processes import node_commands

IMAGE, COMPRESSED = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"


def test_one_raw_camera_is_a_remap_with_sim_time():
    [cmd] = node_commands({"/cam/image_raw": IMAGE}, Path("p.yaml"), "vd", (("backend", "onnxruntime"),))
    assert cmd[:4] == ["vd", "--ros-args", "--params-file", "p.yaml"]
    text = " ".join(cmd)
    assert "-p use_sim_time:=true" in text and "-p input_type:=raw" in text
    assert "-r image:=/cam/image_raw" in text and "image_topics" not in text
    # explicit parameters come after the params file, so they win
    assert cmd.index("backend:=onnxruntime") > cmd.index("p.yaml")


def test_one_compressed_camera_remaps_the_compressed_topic():
    [cmd] = node_commands({"/cam/image_raw/compressed": COMPRESSED}, None, "vd")
    assert "--params-file" not in cmd
    assert "input_type:=compressed" in cmd and "image/compressed:=/cam/image_raw/compressed" in cmd


def test_several_cameras_use_image_topics_one_node_per_input_type():
    topics = {"/front/image_raw": IMAGE, "/left/image_raw": IMAGE, "/rear/image_raw/compressed": COMPRESSED,
              "/odd/jpeg": COMPRESSED}
    raw, comp, odd = node_commands(topics, None, "vd")
    assert "image_topics:=[/front/image_raw,/left/image_raw]" in raw and "__node:=" not in " ".join(raw)
    assert "image_topics:=[/rear/image_raw]" in comp and "__node:=vehicle_detector_1" in comp
    assert "input_type:=compressed" in comp
    # not named <base>/compressed: only a remap can reach it
    assert "image/compressed:=/odd/jpeg" in odd and "__node:=vehicle_detector_2" in odd
