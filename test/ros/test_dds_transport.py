"""Camera frames that arrive out of the box (issue 15, point 1): the shared-memory Fast DDS profile in every
process the package starts unless the user configured Fast DDS, and the node's diagnosis when large frames are
lost on the way.

The launch files run with stand-ins for the launch API (launch/launch_ros are not installable here): their
own code runs, and what it gives each Node is checked. The rest is real: console-script nodes as child
processes, a camera in a process of its own, DDS on loopback.
"""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from ocl_infer_msgs.msg import FrameTiming

from ocl_infer.ros.dds_profile import PROFILE_VAR, launch_env, shm_profile_path, use_shm_profile, user_choice

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0
PROFILE = ROOT / "config" / "fastdds_shm.xml"
EMPTY_PROFILE = '<?xml version="1.0" encoding="UTF-8"?>\n<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"/>\n'


# ------------------------------------------------------------------------------------------ the rules, pure
def test_the_profile_is_set_only_where_the_user_chose_nothing(tmp_path):
    assert shm_profile_path() == PROFILE
    env: dict[str, str] = {}
    assert use_shm_profile(env) == str(PROFILE) and env == {PROFILE_VAR: str(PROFILE)}
    for name, value in [(PROFILE_VAR, "/mine.xml"), (PROFILE_VAR, ""), ("FASTRTPS_DEFAULT_PROFILES_FILE", "/x.xml"),
                        ("RMW_FASTRTPS_USE_QOS_FROM_XML", "1"), ("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA"),
                        ("RMW_IMPLEMENTATION", "rmw_cyclonedds_cpp")]:
        env = {name: value}
        assert use_shm_profile(env) is None, name
        assert env == {name: value}  # untouched
        assert user_choice(env) == (f"RMW_IMPLEMENTATION is {value}" if name == "RMW_IMPLEMENTATION"
                                    else f"{name} is set")
    assert use_shm_profile({"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}) == str(PROFILE)
    (tmp_path / "DEFAULT_FASTDDS_PROFILES.xml").write_text(EMPTY_PROFILE)  # Fast DDS loads it by itself
    assert "working directory" in user_choice({}, cwd=tmp_path)
    assert launch_env(PROFILE, {}) == {PROFILE_VAR: str(PROFILE)}
    assert launch_env(PROFILE, {PROFILE_VAR: "/mine.xml"}) == {}
    assert launch_env(tmp_path / "missing.xml", {}) == {}


class _Recorder:
    """Stand-ins for launch / launch_ros / ament_index_python that record what a launch file builds."""

    def __init__(self, share: Path, arguments: dict[str, str]) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.arguments = arguments
        rec = self

        class LaunchConfiguration:
            def __init__(self, name: str) -> None:
                self.name = name

            def perform(self, context: Any) -> str:
                return context[self.name]

        class DeclareLaunchArgument:
            def __init__(self, name: str, default_value: str = "", description: str = "") -> None:
                self.name, self.default = name, default_value

        class OpaqueFunction:
            def __init__(self, function: Any) -> None:
                self.function = function

        def node(**kwargs: Any) -> dict[str, Any]:
            rec.nodes.append(kwargs)
            return kwargs

        class Recorded:  # the managed mode's event actions: only built, never run here
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                self.args, self.kwargs = args, kwargs

        def module(name: str, **attrs: Any) -> types.ModuleType:
            mod = types.ModuleType(name)
            mod.__dict__.update(attrs)
            return mod

        self.modules = {
            "launch": module("launch", Action=object, LaunchContext=dict, LaunchDescription=list),
            "launch.actions": module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument,
                                     OpaqueFunction=OpaqueFunction, EmitEvent=Recorded, RegisterEventHandler=Recorded),
            "launch.events": module("launch.events", matches_action=Recorded),
            "launch.substitutions": module("launch.substitutions", LaunchConfiguration=LaunchConfiguration),
            "launch_ros": module("launch_ros"),
            "launch_ros.actions": module("launch_ros.actions", Node=node, LifecycleNode=node),
            "launch_ros.event_handlers": module("launch_ros.event_handlers", OnStateTransition=Recorded),
            "launch_ros.events": module("launch_ros.events"),
            "launch_ros.events.lifecycle": module("launch_ros.events.lifecycle", ChangeState=Recorded),
            "ament_index_python": module("ament_index_python"),
            "ament_index_python.packages": module("ament_index_python.packages",
                                                  get_package_share_directory=lambda _pkg: str(share)),
        }

    def run(self, launch_file: Path) -> list[dict[str, Any]]:
        description = runpy.run_path(str(launch_file))["generate_launch_description"]()
        context = {a.name: a.default for a in description if hasattr(a, "default")}
        context.update(self.arguments)
        for action in description:
            if hasattr(action, "function"):
                action.function(context)
        return self.nodes


@pytest.mark.parametrize("launch_file, arguments", [("vehicle_detection.launch.py", {}),
                                                     ("vehicle_detection.launch.py", {"managed": "true"}),
                                                     ("multi_camera.launch.py", {})])
def test_launch_files_give_their_nodes_the_profile_unless_the_shell_has_one(tmp_path, monkeypatch, launch_file,
                                                                           arguments):
    share = tmp_path / "share"
    (share / "config").mkdir(parents=True)
    shutil.copy(PROFILE, share / "config" / "fastdds_shm.xml")
    for var in (PROFILE_VAR, "FASTRTPS_DEFAULT_PROFILES_FILE", "RMW_FASTRTPS_USE_QOS_FROM_XML",
                "FASTDDS_BUILTIN_TRANSPORTS", "RMW_IMPLEMENTATION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    recorder = _Recorder(share, arguments)
    for name, mod in recorder.modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    nodes = recorder.run(ROOT / "launch" / launch_file)
    assert nodes and all(n["additional_env"] == {PROFILE_VAR: str(share / "config" / "fastdds_shm.xml")}
                         for n in nodes)
    # The user's own set-up in the launching shell: the nodes inherit it, nothing is added.
    monkeypatch.setenv(PROFILE_VAR, str(tmp_path / "mine.xml"))
    recorder.nodes.clear()
    nodes = recorder.run(ROOT / "launch" / launch_file)
    assert nodes and all(n["additional_env"] == {} for n in nodes)


# ------------------------------------------------------------------------------------------- real processes
def camera_status(harness, suffix: str) -> tuple[int, str, dict[str, str]] | None:
    for arr in reversed(harness.messages("/diagnostics")):
        for st in arr.status:
            if st.name.endswith(suffix):
                return st.level[0], st.message, {kv.key: kv.value for kv in st.values}
    return None


@pytest.mark.ros
@pytest.mark.slow
def test_console_script_loads_the_profile_unless_the_user_set_one(harness, start_node, backend, tmp_path):
    mine = tmp_path / "mine.xml"
    mine.write_text(EMPTY_PROFILE)
    harness.subscribe(DiagnosticArray, "/diagnostics")
    params = {"backend": backend, "diagnostics_period_s": 0.2}
    # A user's plain shell: no profile set; the node loads the package's itself.
    start_node("vehicle_detector", params, "vd_plain", ["-r", "__ns:=/plain"], env={PROFILE_VAR: None})
    start_node("vehicle_detector", params, "vd_mine", ["-r", "__ns:=/mine"], env={PROFILE_VAR: str(mine)})
    plain = harness.wait_for(lambda: camera_status(harness, "camera /plain/image"), WAIT_S, "the plain node's status")
    own = harness.wait_for(lambda: camera_status(harness, "camera /mine/image"), WAIT_S, "the other node's status")
    assert plain[2]["dds_profile"] == str(PROFILE)
    assert own[2]["dds_profile"] == str(mine)


def run_camera(child_env, topic: str, frames: int, rate: float, env: dict[str, str | None], qos: str = "sensor",
               size: tuple[int, int] = (768, 576)) -> subprocess.Popen[str]:
    # Half a second after the match before the first frame: this tests the transport, not DDS discovery (a
    # writer that sees the match first may send its very first frame before the reader knows it).
    cmd = [sys.executable, str(Path(__file__).parent / "camera_process.py"), topic, "--frames", str(frames),
           "--rate", str(rate), "--qos", qos, "--width", str(size[0]), "--height", str(size[1]), "--delay-s", "0.5"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(env), cwd=ROOT)


def finish(camera: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = camera.communicate(timeout=WAIT_S + 120)
    assert camera.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.ros
@pytest.mark.slow
def test_a_camera_with_the_readme_line_gets_every_768x576_frame_to_the_console_script(harness, start_node,
                                                                                       backend, child_env):
    """Both processes as a user starts them: the node from a plain shell, the camera with the one line of the
    README's quick start (export FASTDDS_DEFAULT_PROFILES_FILE=.../fastdds_shm.xml)."""
    node = start_node("vehicle_detector", {"backend": backend, "deadline_ms": 60000.0},
                      "vd_transport", ["-r", "__ns:=/transport"], env={PROFILE_VAR: None})
    timing = harness.subscribe(FrameTiming, "/transport/timing")
    harness.subscribe(DiagnosticArray, "/diagnostics")
    harness.wait_publishers("/transport/timing")
    camera = run_camera(child_env, "/transport/image", 40, 10.0, {PROFILE_VAR: str(PROFILE)})
    sent = finish(camera)
    assert sent["sent"] == 40
    stamps = set(sent["stamps_ns"])
    harness.wait_for(lambda: len({t.header.stamp.sec * 10**9 + t.header.stamp.nanosec for t in list(timing)}
                                 & stamps) == 40, WAIT_S, "a FrameTiming for every frame sent")
    status = harness.wait_for(
        lambda: (s := camera_status(harness, "camera /transport/image")) and s[2]["received_total"] == "40" and s,
        WAIT_S, "the node's count of 40 frames")
    assert status[2]["transport_losses_total"] == "0"
    assert int(status[2]["frame_bytes"]) == 768 * 576 * 3
    assert node.alive()


@pytest.mark.ros
@pytest.mark.slow
def test_a_camera_without_the_profile_is_diagnosed_with_the_cause_and_the_fix(harness, start_node, backend,
                                                                               child_env):
    """The camera as a plain rclpy process with Fast DDS defaults (no README line), the node from a plain shell:
    the sender's transport decides, so most 768x576 frames are lost on loopback UDP, DDS reports them lost, and
    the node says why and what to do, on /diagnostics and in its log."""
    node = start_node("vehicle_detector", {"backend": backend, "deadline_ms": 60000.0, "diagnostics_period_s": 0.25},
                      "vd_lossy", ["-r", "__ns:=/lossy"], env={PROFILE_VAR: None})
    harness.subscribe(DiagnosticArray, "/diagnostics")
    harness.wait_for(lambda: camera_status(harness, "camera /lossy/image"), WAIT_S + 60, "the node's first status")
    sent = finish(run_camera(child_env, "/lossy/image", 40, 10.0, {PROFILE_VAR: None}))
    assert sent["sent"] == 40

    def settled() -> dict[str, str] | None:  # every frame accounted for: arrived, or reported lost
        s = camera_status(harness, "camera /lossy/image")
        return s[2] if s and int(s[2]["received_total"]) + int(s[2]["transport_losses_total"]) >= 35 else None

    values = harness.wait_for(settled, WAIT_S, "the node's count of frames received and lost")
    if int(values["transport_losses_total"]) == 0:
        pytest.skip("this machine's loopback UDP delivered every 576p frame: no loss to diagnose")
    diagnoses = [st.message for arr in harness.messages("/diagnostics") for st in arr.status
                 if st.name.endswith("camera /lossy/image") and "likely cause" in st.message]
    assert diagnoses, "no transport diagnosis on /diagnostics"
    message = diagnoses[-1]
    assert "lost on the way to the node" in message and "fastdds_shm.xml" in message
    assert "in the camera's process and this node's (this node: " in message
    assert "likely cause" in harness.wait_for(lambda: "likely cause" in node.log() and node.log(), WAIT_S,
                                              "the diagnosis in the node's log")
    assert node.alive()
