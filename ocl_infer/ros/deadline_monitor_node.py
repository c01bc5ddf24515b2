"""The deadline_monitor node: end-to-end latency of any pipeline, watched from outside.

Parameter `pairs`: entries "INPUT -> OUTPUT" (topic names). For each pair it subscribes to both topics with
the types the ROS graph reports (generic: any message whose first field is std_msgs/Header), matches outputs to
inputs by header stamp, and publishes one status per pair on /diagnostics: input/output rates, end-to-end
latency p50/p95/p99/max against `budget_ms`, misses, inputs never answered. The watched nodes are unchanged.
Subscriptions are raw (serialized): only the header stamp is read from the CDR bytes, so images cost no
deserialisation.
"""

from __future__ import annotations

import importlib
import struct
from dataclasses import dataclass, field
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ocl_infer.errors import ConfigError
from ocl_infer.ros.stamp_matcher import StampMatcher, pair_level

DISCOVERY_PERIOD_S = 0.5


def parse_pair(entry: str) -> tuple[str, str]:
    """'IN -> OUT' -> (IN, OUT); ConfigError naming the entry otherwise."""
    parts = [p.strip() for p in entry.split("->")]
    if len(parts) != 2 or not all(parts) or any(" " in p for p in parts):
        raise ConfigError(f"parameter pairs: {entry!r} is not 'INPUT_TOPIC -> OUTPUT_TOPIC'")
    return parts[0], parts[1]


def import_message(type_name: str) -> Any:
    """Message class from 'pkg/msg/Name' (what the graph reports) or 'pkg/Name'."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"{type_name!r} is not a message type name (pkg/msg/Name)")
    try:
        module = importlib.import_module(f"{parts[0]}.{parts[1]}")
        return getattr(module, parts[2])
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"message type {type_name} is not installed here: {err}") from err


def has_header_first(msg_class: Any) -> bool:
    fields = list(msg_class.get_fields_and_field_types().items())
    return bool(fields) and fields[0][0] == "header" and fields[0][1] == "std_msgs/Header"


def cdr_stamp_ns(data: bytes) -> int:
    """The header stamp of a serialized message whose first field is std_msgs/Header (CDR, either endian)."""
    if len(data) < 12:
        raise ValueError(f"serialized message too short ({len(data)} bytes) for a header")
    endian = "<" if data[1] & 1 else ">"  # encapsulation id: 0x0001 CDR_LE, 0x0000 CDR_BE
    sec, nanosec = struct.unpack_from(endian + "iI", data, 4)
    return sec * 1_000_000_000 + nanosec


@dataclass
class WatchedPair:
    matcher: StampMatcher
    subscriptions: dict[str, Any] = field(default_factory=dict)  # "input"/"output" -> subscription


class DeadlineMonitorNode(Node):
    def __init__(self, node_name: str = "deadline_monitor", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)

        def number(name: str, default: float, desc: str, lo: float, hi: float) -> float:
            d = ParameterDescriptor(description=desc, read_only=True,
                                    floating_point_range=[FloatingPointRange(from_value=lo, to_value=hi, step=0.0)])
            try:
                return float(self.declare_parameter(name, default, d).value)
            except (InvalidParameterTypeException, InvalidParameterValueException) as err:
                raise ConfigError(f"parameter {name}: expected a float in [{lo:g}, {hi:g}], e.g. {default} ({err})"
                                  ) from err

        self.declare_parameter("pairs", Parameter.Type.STRING_ARRAY, ParameterDescriptor(
            description="Watched topic pairs, each 'INPUT_TOPIC -> OUTPUT_TOPIC'", read_only=True))
        self.budget_ms = number("budget_ms", 100.0, "End-to-end budget: output received - input stamp", 1.0, 6e5)
        self.window_s = number("window_s", 5.0, "Window for rates and percentiles", 0.5, 3600.0)
        self.stall_s = number("stall_s", 2.0, "ERROR when the input is live but no output came for this long",
                              0.1, 3600.0)
        self.expire_s = number("expire_s", 2.0, "An input not answered within this long counts as unanswered",
                               0.01, 3600.0)
        period = number("diagnostics_period_s", 1.0, "Period of /diagnostics", 0.05, 3600.0)
        reliability = self.declare_parameter("qos_reliability", "best_effort", ParameterDescriptor(
            description="Subscriptions' reliability (best_effort matches every publisher)",
            additional_constraints="one of: best_effort, reliable", read_only=True)).value
        if reliability not in ("best_effort", "reliable"):
            raise ConfigError(f"parameter qos_reliability: {reliability!r} is not best_effort or reliable")
        self.qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                              else ReliabilityPolicy.BEST_EFFORT)
        try:
            entries = self.get_parameter("pairs").value or []
        except ParameterUninitializedException:
            entries = []
        if not entries:
            raise ConfigError("parameter pairs: empty; give e.g. ['/front/image_raw -> /front/detections']")
        start = self._now_s()
        self.pairs: list[WatchedPair] = []
        for entry in entries:
            inp, out = (self.resolve_topic_name(t) for t in parse_pair(entry))
            self.pairs.append(WatchedPair(StampMatcher(inp, out, self.budget_ms, self.window_s, self.expire_s,
                                                       start)))
        self._bad_types: set[str] = set()
        self._discovery: Any = None
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(period, self.publish_diagnostics)
        self._discovery = self.create_timer(DISCOVERY_PERIOD_S, self._discover)
        self._discover()
        self.get_logger().info(f"watching {[(p.matcher.input_topic, p.matcher.output_topic) for p in self.pairs]}, "
                               f"budget {self.budget_ms:g} ms")

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _discover(self) -> None:
        """Subscribe each watched topic once the graph knows its type (publishers may start later)."""
        types = dict(self.get_topic_names_and_types())
        for pair in self.pairs:
            for role, topic in (("input", pair.matcher.input_topic), ("output", pair.matcher.output_topic)):
                if role in pair.subscriptions or topic not in types or topic in self._bad_types:
                    continue
                type_name = types[topic][0]
                try:
                    msg_class = import_message(type_name)
                except ConfigError as err:
                    self._bad_types.add(topic)
                    self.get_logger().error(f"{topic}: {err}")
                    continue
                if not has_header_first(msg_class):
                    self._bad_types.add(topic)
                    self.get_logger().error(f"{topic}: {type_name} has no std_msgs/Header first: cannot match "
                                            "by stamp; pair ignored")
                    continue
                handler = self._on_input if role == "input" else self._on_output
                pair.subscriptions[role] = self.create_subscription(
                    msg_class, topic, lambda data, m=pair.matcher, h=handler: h(m, data), self.qos, raw=True)
                self.get_logger().info(f"subscribed {role} {topic} ({type_name})")
        done = all(len(p.subscriptions) == 2 or {p.matcher.input_topic, p.matcher.output_topic} & self._bad_types
                   for p in self.pairs)
        if done and self._discovery is not None:
            self._discovery.cancel()  # every pair is settled: stop polling the graph

    def _on_input(self, matcher: StampMatcher, data: bytes) -> None:
        matcher.on_input(cdr_stamp_ns(data), self._now_s())

    def _on_output(self, matcher: StampMatcher, data: bytes) -> None:
        matcher.on_output(cdr_stamp_ns(data), self._now_s())

    def publish_diagnostics(self) -> None:
        now = self._now_s()
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        for pair in self.pairs:
            snap = pair.matcher.snapshot(now)
            level, text = pair_level(snap, self.stall_s)
            if len(pair.subscriptions) < 2 and snap.inputs == 0 and snap.outputs == 0:
                text = "waiting for the topics to appear: " + ", ".join(
                    t for r, t in (("input", snap.input_topic), ("output", snap.output_topic))
                    if r not in pair.subscriptions)
            status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: {snap.input_topic} -> "
                                      f"{snap.output_topic}", message=text, hardware_id=snap.output_topic)
            status.level = bytes([level])
            values = {
                "input_rate_hz": snap.input_rate_hz, "output_rate_hz": snap.output_rate_hz,
                "budget_ms": snap.budget_ms,
                **{f"latency_{k}_ms": v for k, v in snap.latency_ms.items()},
                **{f"delay_{k}_ms": v for k, v in snap.delay_ms.items()},
            }
            status.values = [KeyValue(key=k, value=f"{v:.2f}") for k, v in values.items()]
            counts = {"inputs": snap.inputs, "outputs": snap.outputs, "matched": snap.matched,
                      "misses": snap.misses, "unanswered": snap.unanswered,
                      "unmatched_outputs": snap.unmatched_outputs, "misses_window": snap.window_misses,
                      "unanswered_window": snap.window_unanswered}
            status.values += [KeyValue(key=k, value=str(v)) for k, v in counts.items()]
            msg.status.append(status)
        self.diagnostics_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Console script `deadline_monitor --ros-args -p pairs:='[\"/cam/image -> /cam/detections\"]'`.

    Like vehicle_detector: the shared-memory DDS profile unless the user configured Fast DDS (it may watch
    image topics), and Ctrl-C/SIGTERM, once or twice, end it with exit code 0 (ocl_infer.ros.shutdown)."""
    from ocl_infer.ros.vehicle_detector_node import run

    return run("deadline_monitor", DeadlineMonitorNode, args)  # the same entry sequence as the detector's
