"""ROS test helpers: nodes started as real subprocesses, and a test-side rclpy node spun in a thread.

The top-level conftest has already kept DDS on loopback with a random domain id; children inherit that env.
Every child is terminated in a fixture finaliser, whatever the test did.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ocl_infer.child_process import ChildProcess

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DISCOVERY_S = 5.0  # discovery across processes takes 0.1 s or about 2.7 s here


@pytest.fixture(scope="session")
def backend() -> str:
    """The backend the node tests run: always our OpenCL engine. An engine that fails to import is an error
    here, never a silent fall-back to the reference (the ROS tests would then pass without the engine)."""
    from ocl_infer.engine import Engine  # noqa: F401

    return "opencl"


def child_environment(env: dict[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment (DDS on loopback, this run's domain id) plus `env`; a None value removes a
    variable (e.g. FASTDDS_DEFAULT_PROFILES_FILE, to start a child as from a user's plain shell)."""
    merged: dict[str, str | None] = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0",
                                         **(env or {}))
    return {k: v for k, v in merged.items() if v is not None}


class NodeProcess(ChildProcess):
    """A console-script node running as a child process, its log in a file; `stop` sends SIGINT, then kills."""

    def __init__(self, script: str, params: dict[str, Any], tmp: Path, name: str, extra: list[str] = (),
                 env: dict[str, str | None] | None = None) -> None:
        self.params_file = tmp / f"{name}.yaml"
        self.params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
        cmd = [str(BIN / script), "--ros-args", "-r", f"__node:={name}", "--params-file", str(self.params_file),
               *extra]
        super().__init__(cmd, tmp / f"{name}.log", env=child_environment(env), cwd=ROOT, stdin=None)


@pytest.fixture(scope="session")
def child_env() -> Callable[[dict[str, str | None] | None], dict[str, str]]:
    """child_environment, for tests that start processes of their own."""
    return child_environment


@pytest.fixture(scope="module")
def start_node(tmp_path_factory) -> Iterator[Callable[..., NodeProcess]]:
    """start_node(script, params, name) -> NodeProcess; all stopped when the module ends."""
    started: list[NodeProcess] = []
    tmp = tmp_path_factory.mktemp("nodes")

    def start(script: str, params: dict[str, Any], name: str, extra: list[str] = (),
              env: dict[str, str | None] | None = None) -> NodeProcess:
        node = NodeProcess(script, params, tmp, name, list(extra), env)
        started.append(node)
        return node

    try:
        yield start
    finally:
        for node in started:
            node.stop()


class Harness:
    """A test-side rclpy node in its own Context, spun by a background thread; collects messages by topic."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.received: dict[str, list[Any]] = {}
        self.subscriptions: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down under us at teardown
                if self.context.ok():
                    raise
                return

    def subscribe(self, msg_type: Any, topic: str, qos: Any = 10) -> list[Any]:
        """Collect every message on `topic`; returns the (live) list. Subscribing twice shares the list."""
        with self.lock:
            if topic in self.subscriptions:
                return self.received[topic]
            store = self.received.setdefault(topic, [])

        def keep(msg: Any) -> None:
            with self.lock:
                store.append(msg)

        self.subscriptions[topic] = self.node.create_subscription(msg_type, topic, keep, qos)
        return store

    def wait_publishers(self, *topics: str, timeout: float = DISCOVERY_S + 60.0) -> None:
        """Wait until each subscribed topic is matched with a publisher (so no early message is missed)."""
        for topic in topics:
            sub = self.subscriptions[topic]
            self.wait_for(lambda s=sub: s.get_publisher_count() > 0, timeout, f"a publisher on {topic}")

    def messages(self, topic: str) -> list[Any]:
        with self.lock:
            return list(self.received.get(topic, []))

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll `predicate` until truthy; fail naming `what` otherwise."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def send_and_wait(self, pub: Any, make_msg: Callable[[], Any], store: list[Any], tries: int = 3,
                      timeout: float = 30.0) -> tuple[Any, Any]:
        """Publish `make_msg()` until a message with its header stamp shows up in `store`; (sent, answer).

        Several tries because a match is not yet a delivery: best effort may lose a frame, and DDS may drop the
        first sample of a writer that saw the match before the node's reader had discovered it."""
        from ocl_infer.ros.messages import stamp_to_ns

        for _ in range(tries):
            msg = make_msg()
            stamp = stamp_to_ns(msg.header.stamp)
            pub.publish(msg)
            try:
                got = self.wait_for(lambda s=stamp: [m for m in list(store) if stamp_to_ns(m.header.stamp) == s],
                                    timeout / tries, "the node's answer")
                return msg, got[0]
            except AssertionError:
                continue
        raise AssertionError(f"no answer on {len(store)}-message store after {tries} frames")

    def wait_matched(self, publisher: Any, timeout: float = DISCOVERY_S + 60.0) -> None:
        """Wait until a node subscribes (the detector subscribes only once its model is loaded)."""
        self.wait_for(lambda: publisher.get_subscription_count() > 0, timeout, f"a subscriber on {publisher.topic}")

    def now_msg(self) -> Any:
        return self.node.get_clock().now().to_msg()

    def close(self) -> None:
        import rclpy

        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)
        self.node.destroy_node()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness("ocl_infer_test_harness")
    try:
        yield h
    finally:
        h.close()
