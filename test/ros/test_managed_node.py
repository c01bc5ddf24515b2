"""The managed (lifecycle) vehicle_detector and label_info (issue 15), as a user runs them: console scripts in
child processes, driven from another process's node through the lifecycle services (`change_state`,
`get_state`, what `ros2 lifecycle set` calls) and the parameter services, over real DDS on loopback.

No timed assertions: every wait is for something the node does (a state, a match, a message); what must not
happen is checked through ordering (a frame sent while unsubscribed never gets a FrameTiming, while the next
frame sent after re-activation does).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from ocl_infer_msgs.msg import FrameTiming
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from ocl_infer.child_process import ChildProcess
from ocl_infer.detection.description import load_description
from ocl_infer.ros.image_conversion import bgr_to_image

pytestmark = [pytest.mark.ros, pytest.mark.slow]
WAIT_S = 60.0  # a configure loads the model and builds kernels on a shared 2-core machine
RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class Lifecycle:
    """The lifecycle services of one node, called as `ros2 lifecycle` does."""

    def __init__(self, harness: Any, node: str) -> None:
        self.harness = harness
        self.change = harness.node.create_client(ChangeState, f"{node}/change_state")
        self.get = harness.node.create_client(GetState, f"{node}/get_state")
        for client in (self.change, self.get):
            assert client.wait_for_service(timeout_sec=WAIT_S), f"{client.srv_name}"

    def _call(self, client: Any, request: Any) -> Any:
        future = client.call_async(request)
        self.harness.wait_for(future.done, WAIT_S, f"the answer of {client.srv_name}")
        return future.result()

    def state(self) -> int:
        return self._call(self.get, GetState.Request()).current_state.id

    def set(self, transition: int) -> bool:
        return self._call(self.change, ChangeState.Request(transition=Transition(id=transition))).success


def frame(harness: Any, image: Any) -> Image:
    msg = bgr_to_image(image)
    msg.header.stamp = harness.now_msg()
    return msg


def answer(harness: Any, pub: Any, image: Any, msg_type: Any, topic: str) -> Any:
    """Send frames stamped now until one is answered on `topic` (a match is not yet a delivery); the answer."""
    return harness.send_and_wait(pub, lambda: frame(harness, image), harness.subscribe(msg_type, topic),
                                 timeout=WAIT_S)[1]


@pytest.fixture(scope="module")
def dog(data_dir):
    return cv2.imread(str(data_dir / "dog.jpg"))


@pytest.fixture(scope="module")
def class_names(model_dir) -> list[str]:
    return list(load_description(model_dir).classes)


def test_transitions_through_change_state(harness, start_node, backend, dog, class_names):
    node = start_node("managed_vehicle_detector", {
        "backend": backend, "deadline_ms": 60000.0, "qos_reliability": "reliable", "expected_rate_hz": 0.0,
    }, "vd_managed", ["-r", "__ns:=/managed"])
    life = Lifecycle(harness, "/managed/vd_managed")
    pub = harness.node.create_publisher(Image, "/managed/image", RELIABLE)
    harness.subscribe(Detection2DArray, "/managed/detections")
    harness.subscribe(FrameTiming, "/managed/timing")
    labels = harness.subscribe(LabelInfo, "/managed/label_info", LATCHED)
    count = harness.node.count_publishers

    # Unconfigured: services up, nothing else (no model, no outputs, no camera subscription).
    assert life.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert count("/managed/detections") == 0 and pub.get_subscription_count() == 0
    assert "configured in" not in node.log()

    # configure: the model is loaded and the publishers exist, but the camera is not subscribed yet.
    assert life.set(Transition.TRANSITION_CONFIGURE)
    assert life.state() == State.PRIMARY_STATE_INACTIVE
    harness.wait_for(lambda: count("/managed/detections") and count("/managed/timing"), WAIT_S, "the publishers")
    assert pub.get_subscription_count() == 0 and not labels
    assert node.log().count("configured in") == 1

    # activate: subscribed, frames answered, the class map latched on label_info.
    assert life.set(Transition.TRANSITION_ACTIVATE)
    assert life.state() == State.PRIMARY_STATE_ACTIVE
    harness.wait_matched(pub)
    harness.wait_publishers("/managed/detections", "/managed/timing")
    first = answer(harness, pub, dog, Detection2DArray, "/managed/detections")
    assert {d.results[0].hypothesis.class_id for d in first.detections} >= {"car", "bicycle"}
    info = harness.wait_for(lambda: list(labels), WAIT_S, "LabelInfo")[0]
    assert [(c.class_id, c.class_name) for c in info.class_map] == list(enumerate(class_names))
    assert info.threshold == pytest.approx(0.25)
    names = {c.class_name for c in info.class_map}
    assert {d.results[0].hypothesis.class_id for d in first.detections} <= names

    # deactivate: unsubscribed; a frame sent now is never taken (the model stays: no second load below).
    assert life.set(Transition.TRANSITION_DEACTIVATE)
    assert life.state() == State.PRIMARY_STATE_INACTIVE
    harness.wait_for(lambda: pub.get_subscription_count() == 0, WAIT_S, "the camera subscription to go")
    unseen = frame(harness, dog)
    pub.publish(unseen)
    assert count("/managed/detections") > 0  # the publishers stay while inactive

    assert life.set(Transition.TRANSITION_ACTIVATE)
    harness.wait_matched(pub)
    again = answer(harness, pub, dog, FrameTiming, "/managed/timing")
    assert again.outcome == FrameTiming.OUTCOME_PUBLISHED
    assert not [t for t in harness.messages("/managed/timing") if t.header.stamp == unseen.header.stamp]
    assert node.log().count("configured in") == 1  # re-activated without loading the model again

    # deactivate + cleanup: publishers gone, detector closed; configure again loads the model again.
    assert life.set(Transition.TRANSITION_DEACTIVATE) and life.set(Transition.TRANSITION_CLEANUP)
    assert life.state() == State.PRIMARY_STATE_UNCONFIGURED
    harness.wait_for(lambda: count("/managed/detections") == 0, WAIT_S, "the publishers to go")
    assert "detector closed" in node.log()
    assert life.set(Transition.TRANSITION_CONFIGURE) and life.set(Transition.TRANSITION_ACTIVATE)
    assert node.log().count("configured in") == 2
    harness.wait_matched(pub)
    harness.wait_publishers("/managed/detections")
    answer(harness, pub, dog, Detection2DArray, "/managed/detections")

    # shutdown from active: finalized, and the process still ends cleanly on Ctrl-C.
    assert life.set(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert life.state() == State.PRIMARY_STATE_FINALIZED
    assert node.alive()
    assert node.stop() == 0, node.log()
    assert "Traceback" not in node.log()


def test_a_failed_configure_says_why_and_can_be_retried_after_a_parameter_change(harness, start_node, backend):
    node = start_node("managed_vehicle_detector", {"backend": backend, "classes": "car,spaceship"},
                      "vd_badclass", ["-r", "__ns:=/badclass"])
    life = Lifecycle(harness, "/badclass/vd_badclass")
    assert not life.set(Transition.TRANSITION_CONFIGURE)
    assert life.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert "configure failed: " in node.log() and "spaceship" in node.log()

    # Live parameters can be set while unconfigured; the next configure uses them.
    client = AsyncParameterClient(harness.node, "/badclass/vd_badclass")
    assert client.wait_for_services(timeout_sec=WAIT_S)
    future = client.set_parameters([Parameter("classes", value="car")])
    harness.wait_for(future.done, WAIT_S, "set_parameters")
    assert future.result().results[0].successful
    assert life.set(Transition.TRANSITION_CONFIGURE)
    assert life.state() == State.PRIMARY_STATE_INACTIVE
    assert node.stop() == 0, node.log()


def test_the_plain_node_latches_label_info_and_updates_its_threshold(harness, start_node, backend, class_names):
    start_node("vehicle_detector", {"backend": backend, "expected_rate_hz": 0.0}, "vd_labels",
               ["-r", "__ns:=/labels"])
    client = AsyncParameterClient(harness.node, "/labels/vd_labels")
    assert client.wait_for_services(timeout_sec=WAIT_S)
    # The node publishes label_info before it subscribes to its camera: once the camera is matched, LabelInfo has
    # gone out, and a subscriber that comes only now still gets it (transient local).
    harness.wait_matched(harness.node.create_publisher(Image, "/labels/image", RELIABLE))
    labels = harness.subscribe(LabelInfo, "/labels/label_info", LATCHED)
    info = harness.wait_for(lambda: list(labels), WAIT_S, "the latched LabelInfo")[0]
    assert [c.class_name for c in info.class_map] == class_names and info.threshold == pytest.approx(0.25)

    future = client.set_parameters([Parameter("score_threshold", value=0.5)])
    harness.wait_for(future.done, WAIT_S, "set_parameters")
    assert future.result().results[0].successful
    newer = harness.wait_for(lambda: [m for m in harness.messages("/labels/label_info")
                                      if m.threshold == pytest.approx(0.5)], WAIT_S, "LabelInfo with 0.5")[0]
    assert [c.class_name for c in newer.class_map] == class_names


def params_file(folder: Path, **values: Any) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
    return path


def test_ocl_infer_launch_managed_brings_the_node_to_active(harness, tmp_path, child_env, backend, dog):
    params = params_file(tmp_path, backend=backend, deadline_ms=60000.0, expected_rate_hz=0.0)
    cmd = [str(Path(sys.executable).parent / "ocl-infer"), "launch", "--managed", "--params", str(params),
           "--namespace", "mlaunch"]
    with ChildProcess(cmd, tmp_path / "launch.log", env=child_env(None)) as proc:
        life = Lifecycle(harness, "/mlaunch/vehicle_detector")
        harness.wait_for(lambda: life.state() == State.PRIMARY_STATE_ACTIVE, WAIT_S, "the node to be active")
        pub = harness.node.create_publisher(Image, "/mlaunch/image", RELIABLE)
        harness.subscribe(Detection2DArray, "/mlaunch/detections")
        harness.wait_matched(pub)
        harness.wait_publishers("/mlaunch/detections")
        answer(harness, pub, dog, Detection2DArray, "/mlaunch/detections")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    log = (tmp_path / "launch.log").read_text()
    assert "configured in" in log and "Traceback" not in log


def test_ocl_infer_launch_managed_fails_with_the_configure_error(tmp_path, child_env, backend):
    params = params_file(tmp_path, backend=backend, classes="spaceship")
    proc = subprocess.run([str(Path(sys.executable).parent / "ocl-infer"), "launch", "--managed", "--params",
                           str(params)], capture_output=True, text=True, env=child_env(None), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("ocl-infer launch: error: unknown class 'spaceship'")
