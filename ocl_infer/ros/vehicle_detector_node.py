"""The vehicle_detector node: camera frames in, vision_msgs detections out, every frame timed against a deadline.

Topics (relative, so namespaces and remaps apply). For each camera base topic T (the parameter image_topics, or
the single camera 'image'), with N = T's namespace (its parent: 'image' -> the node's namespace,
'/front/image_raw' -> '/front'):
  subscribes  T (sensor_msgs/Image), or T/compressed (CompressedImage) with input_type=compressed
  publishes   N/detections          vision_msgs/Detection2DArray, header copied from the image
              N/detections/overlay  sensor_msgs/Image bgr8 with boxes drawn, only while someone subscribes
              N/timing              ocl_infer_msgs/FrameTiming, one per frame received (dropped ones included)
  and         /diagnostics          diagnostic_msgs/DiagnosticArray: one status per camera and per device
Two cameras in the same namespace are refused (their outputs would mix).

One frame: the DDS callback stores the message in its camera's latest-slot (overwriting = overload drop) and
returns. A worker thread takes the oldest waiting frame: stale check (age_at_start > deadline_ms -> stale drop),
convert, detect, publish, late check (latency > deadline_ms -> miss, published or not by late_policy). All
times are in the node's clock (simulation time with use_sim_time). Bad frames are counted and logged (each kind
of fault at most every 5 s), never raised.

Input gaps (input_deadline): 'auto' requests a DDS deadline of input_deadline_tolerance / expected_rate_hz on the
image subscription and counts its deadline events; DDS refuses a camera that offers no deadline (the usual
case), so on that incompatible-QoS event the node re-subscribes without one and its own watchdog counts gaps.
'qos' keeps the DDS deadline and only logs what to change; 'watchdog' never asks DDS; 'off' counts none.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from ocl_infer_msgs.msg import FrameTiming
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSPolicyKind
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from ocl_infer.errors import ConfigError, OclInferError
from ocl_infer.ros import diagnostics
from ocl_infer.ros.frame_stats import CameraStats, DeviceSnapshot, DeviceStats, percentiles
from ocl_infer.ros.image_conversion import bgr_to_image, compressed_to_bgr, image_to_bgr
from ocl_infer.ros.latest_slot import LatestSlots
from ocl_infer.ros.messages import FrameRecord, detections_to_msg, draw_overlay, timing_msg
from ocl_infer.ros.options import PARAMETERS, NodeOptions, ParamSpec
from ocl_infer.ros.qos import detections_qos, image_qos, incompatible_qos_hint, records_qos

LOG_THROTTLE_S = 5.0
WORKER_POLL_S = 0.2


def camera_namespace(topic: str) -> str:
    """Where a camera's outputs go: the parent of its topic ('' = the node's namespace)."""
    if "/" not in topic:
        return ""
    return topic.rsplit("/", 1)[0] or "/"


def output_namespaces(cameras: tuple[str, ...]) -> dict[str, str]:
    """{output namespace: camera topic}; ConfigError when two cameras would publish into one namespace."""
    out: dict[str, str] = {}
    for topic in cameras:
        ns = camera_namespace(topic)
        if ns in out:
            raise ConfigError(
                f"parameter image_topics: {out[ns]!r} and {topic!r} share the namespace {ns or '/'!r}; "
                "their outputs would mix: give each camera its own namespace"
            )
        out[ns] = topic
    return out


def output_topic(namespace: str, name: str) -> str:
    if namespace == "":
        return name
    return f"{namespace.rstrip('/')}/{name}" if namespace != "/" else f"/{name}"


def declare_options(node: Node) -> NodeOptions:
    """Declare every parameter of PARAMETERS (with description and range) and build NodeOptions from them."""
    values: dict[str, Any] = {}
    for spec in PARAMETERS:
        descriptor = _descriptor(spec)
        try:
            if spec.string_list:
                param = node.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, descriptor)
            else:
                param = node.declare_parameter(spec.name, spec.default, descriptor)
        except (InvalidParameterTypeException, InvalidParameterValueException) as err:
            kind = "list of strings" if spec.string_list else type(spec.default).__name__
            raise ConfigError(f"parameter {spec.name}: expected {kind} ({err})") from err
        value = param.value
        if value is not None:
            values[spec.name] = list(value) if spec.string_list else value
    return NodeOptions.from_mapping(values)


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    desc = ParameterDescriptor(description=spec.description, read_only=True)
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.string_list:
        desc.type = ParameterType.PARAMETER_STRING_ARRAY
    elif isinstance(spec.default, bool):
        pass
    elif isinstance(spec.default, int) and spec.minimum is not None:
        desc.integer_range = [IntegerRange(from_value=int(spec.minimum), to_value=int(spec.maximum), step=1)]
    elif isinstance(spec.default, float) and spec.minimum is not None:
        desc.floating_point_range = [
            FloatingPointRange(from_value=float(spec.minimum), to_value=float(spec.maximum), step=0.0)
        ]
    return desc


@dataclass
class Pending:
    """A frame waiting in a latest-slot."""

    msg: Any
    record: FrameRecord


@dataclass
class Camera:
    """One camera's subscription, publishers and statistics."""

    topic: str  # as configured (relative or absolute)
    resolved: str  # fully qualified subscribed topic
    compressed: bool
    stats: CameraStats
    detections: Any = None
    overlay: Any = None
    timing: Any = None
    subscription: Any = None
    sequence: int = 0
    last_gap_check_ns: int = 0  # watchdog: last receive or last counted gap
    dds_deadline: bool = False  # input gaps come from the DDS deadline event (else from the watchdog)
    lock: threading.Lock = field(default_factory=threading.Lock)


class VehicleDetectorNode(Node):
    """See the module docstring. `detector` may be passed in (shared across nodes in one process)."""

    def __init__(self, node_name: str = "vehicle_detector", *, detector: Any = None, **kwargs: Any) -> None:
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []
        self._owns_detector = False
        self.detector: Any = None
        self.slots: LatestSlots[Pending] = LatestSlots()
        super().__init__(node_name, **kwargs)
        self.options = declare_options(self)
        opts = self.options
        namespaces = output_namespaces(opts.cameras)  # checked before the (slow) model load
        self._owns_detector = detector is None
        if detector is None:
            from ocl_infer.detection import Detector

            detector = Detector(
                model=opts.model or None,
                devices=opts.device_selectors,
                classes=opts.class_filter,
                score_threshold=opts.score_threshold,
                nms_iou=opts.nms_iou,
                backend=opts.backend,
                precision=opts.precision,
            )
            # First run builds kernels; do it now so the first real frame is not a guaranteed miss.
            detector.detect(np.zeros((240, 320, 3), dtype=np.uint8))
        self.detector = detector
        start = self._now_s()
        self._clock_started = start > 0
        self.devices = DeviceStats(start, opts.diagnostics_window_s)
        self._last_levels: dict[str, int] = {}
        self._diag_lock = threading.Lock()

        self.cameras = {topic: self._make_camera(topic, ns, start) for ns, topic in namespaces.items()}

        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", records_qos(10))
        self.create_timer(opts.diagnostics_period_s, self.publish_diagnostics)
        # Level changes (a camera stopping) go out at once, not at the next 1 Hz tick.
        check = min(opts.diagnostics_period_s, (opts.input_deadline_s or 1.0) / 3, 0.5)
        self.create_timer(max(check, 0.02), self._check_levels)

        self._workers = [
            threading.Thread(target=self._work, name=f"detector-worker-{i}", daemon=True)
            for i in range(opts.frames_in_flight)
        ]
        for worker in self._workers:
            worker.start()
        # Subscribing last: a publisher that sees the match knows the node is ready.
        for cam in self.cameras.values():
            self._subscribe(cam)
        self.get_logger().info(
            f"ready: {len(self.cameras)} camera(s) {[c.resolved for c in self.cameras.values()]}, "
            f"device {getattr(self.detector, 'device', '?')}, deadline {opts.deadline_ms:g} ms, "
            f"late_policy {opts.late_policy}"
        )

    # ----------------------------------------------------------------------------------------------- set-up
    def _make_camera(self, topic: str, namespace: str, start: float) -> Camera:
        opts = self.options
        compressed = opts.input_type == "compressed"
        sub_topic = f"{topic}/compressed" if compressed else topic
        cam = Camera(
            topic=topic,
            resolved=self.resolve_topic_name(sub_topic),
            compressed=compressed,
            stats=CameraStats(start, opts.diagnostics_window_s),
        )
        events = PublisherEventCallbacks(deadline=lambda info, c=cam: self._on_output_gap(c, info))
        cam.detections = self.create_publisher(
            Detection2DArray, output_topic(namespace, "detections"), detections_qos(opts), event_callbacks=events
        )
        cam.overlay = self.create_publisher(Image, output_topic(namespace, "detections/overlay"), records_qos(2))
        cam.timing = self.create_publisher(FrameTiming, output_topic(namespace, "timing"), records_qos())
        cam.last_gap_check_ns = self._now_ns()
        return cam

    def _subscribe(self, cam: Camera, with_deadline: bool = True) -> None:
        qos = image_qos(self.options, with_deadline)
        cam.dds_deadline = qos.deadline.nanoseconds > 0
        events = SubscriptionEventCallbacks(
            deadline=lambda info, c=cam: self._on_input_gap(c, info.total_count_change),
            incompatible_qos=lambda info, c=cam: self._on_incompatible_qos(c, info),
        )
        msg_type = CompressedImage if cam.compressed else Image
        sub_topic = f"{cam.topic}/compressed" if cam.compressed else cam.topic
        cam.subscription = self.create_subscription(
            msg_type, sub_topic, lambda msg, c=cam: self._on_image(c, msg), qos, event_callbacks=events,
        )

    def _fall_back_to_watchdog(self, cam: Camera) -> None:
        """input_deadline=auto: re-subscribe without the DDS deadline so a camera offering none is heard."""
        if not cam.dds_deadline or self._stopping.is_set():
            return
        old = cam.subscription
        self._subscribe(cam, with_deadline=False)
        self.destroy_subscription(old)
        with cam.lock:
            cam.last_gap_check_ns = self._now_ns()

    # ------------------------------------------------------------------------------------------- callbacks
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _now_s(self) -> float:
        return self._now_ns() / 1e9

    def _rebase_if_clock_started(self, now_ns: int) -> None:
        """With use_sim_time the clock reads 0 until the first /clock message: count uptime from then on."""
        if self._clock_started or now_ns <= 0:
            return
        self._clock_started = True
        now = now_ns / 1e9
        self.devices.start = now
        for cam in self.cameras.values():
            cam.stats.start = now
            with cam.lock:
                cam.last_gap_check_ns = max(cam.last_gap_check_ns, now_ns)

    def _on_image(self, cam: Camera, msg: Any) -> None:
        """DDS callback: only stamp the arrival and store the message (no decoding here)."""
        now = self._now_ns()
        self._rebase_if_clock_started(now)
        with cam.lock:
            cam.sequence += 1
            seq = cam.sequence
            cam.last_gap_check_ns = now
        cam.stats.record("received", now / 1e9)
        record = FrameRecord(msg.header, cam.resolved, seq, now, self.options.deadline_ms)
        displaced = self.slots.put(cam.topic, Pending(msg, record))
        if displaced is not None:
            displaced.record.outcome = "overload_drop"
            displaced.record.detail = f"overwritten by frame {seq} before the worker took it"
            cam.stats.record("overload_drop", now / 1e9)
            self._publish_timing(cam, displaced.record)

    def _on_input_gap(self, cam: Camera, count: int) -> None:
        cam.stats.record("input_gap", self._now_s(), max(int(count), 1))
        self._check_levels()

    def _on_output_gap(self, cam: Camera, info: Any) -> None:
        cam.stats.record("output_gap", self._now_s(), max(int(info.total_count_change), 1))

    def _on_incompatible_qos(self, cam: Camera, info: Any) -> None:
        try:
            policy = QoSPolicyKind(int(info.last_policy_kind))
        except ValueError:
            policy = QoSPolicyKind.INVALID
        hint = incompatible_qos_hint(policy, cam.resolved, self.options)
        if policy == QoSPolicyKind.DEADLINE and self.options.input_deadline == "auto" and cam.dds_deadline:
            self.get_logger().warning(
                f"{cam.resolved}: the camera offers no deadline; re-subscribing without one, input gaps now come "
                "from the node's watchdog (input_deadline auto)"
            )
            # Not from inside the subscription's own event callback: a one-shot steady timer (sim time may stand).
            timer = None

            def fall_back() -> None:
                if timer is not None:
                    timer.cancel()
                    self.destroy_timer(timer)
                self._fall_back_to_watchdog(cam)

            timer = self.create_timer(0.001, fall_back, clock=Clock(clock_type=ClockType.STEADY_TIME))
            return
        self.get_logger().warning("incompatible QoS: " + hint, throttle_duration_sec=LOG_THROTTLE_S)

    # ---------------------------------------------------------------------------------------------- worker
    def _work(self) -> None:
        while not self._stopping.is_set():
            taken = self.slots.take(timeout=WORKER_POLL_S)
            if taken is None:
                continue
            topic, pending = taken
            cam = self.cameras[str(topic)]
            try:
                self._process(cam, pending)
            except Exception as err:  # a bug must not silently kill the worker: count, log with traceback
                pending.record.outcome = "inference_error"
                pending.record.detail = f"internal error: {err}"
                cam.stats.record("inference_error", self._now_s())
                self.get_logger().error(f"{cam.resolved}: internal error on frame {pending.record.sequence}:\n"
                                        + traceback.format_exc())
                self._publish_timing(cam, pending.record)

    def _process(self, cam: Camera, pending: Pending) -> None:
        opts = self.options
        record = pending.record
        record.started_ns = self._now_ns()
        if record.age_at_start_ms > opts.deadline_ms:
            record.outcome = "stale_drop"
            record.detail = f"age {record.age_at_start_ms:.1f} ms at start > deadline {opts.deadline_ms:g} ms"
            cam.stats.record("stale_drop", record.started_ns / 1e9)
            self._publish_timing(cam, record)
            return
        t0 = time.perf_counter()
        try:
            frame = compressed_to_bgr(pending.msg, cam.resolved) if cam.compressed else image_to_bgr(
                pending.msg, cam.resolved)
        except OclInferError as err:
            record.outcome, record.detail = "decode_error", str(err)
            cam.stats.record("decode_error", self._now_s())
            self.get_logger().warning(f"bad frame {record.sequence}: {err}", throttle_duration_sec=LOG_THROTTLE_S)
            self._publish_timing(cam, record)
            return
        decode_ms = (time.perf_counter() - t0) * 1e3
        try:
            result = self._detect(frame)
        except OclInferError as err:
            record.outcome, record.detail = "inference_error", str(err)
            now = self._now_s()
            cam.stats.record("inference_error", now)
            self.devices.record_error(getattr(self.detector, "device", "?"), now)
            self.get_logger().error(f"{cam.resolved}: detection failed on frame {record.sequence}: {err}",
                                    throttle_duration_sec=LOG_THROTTLE_S)
            self._publish_timing(cam, record)
            return
        record.inferred_ns = self._now_ns()
        record.device = result.device
        record.preprocess_ms = decode_ms + result.preprocess_ms
        record.inference_ms = result.inference_ms
        record.postprocess_ms = result.postprocess_ms
        record.detection_count = len(result.detections)
        self.devices.record(result.device, record.inferred_ns / 1e9, result.inference_ms)

        out = detections_to_msg(result.detections, pending.msg.header)
        record.published_ns = self._now_ns()
        missed = record.latency_ms > opts.deadline_ms
        publish = not missed or opts.late_policy == "publish"
        if publish:
            cam.detections.publish(out)
        if publish and opts.overlay and cam.overlay.get_subscription_count() > 0:
            cam.overlay.publish(bgr_to_image(draw_overlay(frame, result.detections), "bgr8", pending.msg.header))
        record.detections_published = publish
        if missed:
            record.outcome = "miss"
            record.detail = (f"latency {record.latency_ms:.1f} ms > deadline {opts.deadline_ms:g} ms"
                             + ("" if publish else "; not published (late_policy drop)"))
        cam.stats.record_processed(record.published_ns / 1e9, record.latency_ms, missed, publish)
        self._publish_timing(cam, record)

    def _detect(self, frame: np.ndarray) -> Any:
        if self.options.frames_in_flight > 1:
            return self.detector.submit(frame).result()
        return self.detector.detect_timed(frame)

    def _publish_timing(self, cam: Camera, record: FrameRecord) -> None:
        if not self._stopping.is_set():
            cam.timing.publish(timing_msg(record))

    # ----------------------------------------------------------------------------------------- diagnostics
    def _watchdog(self, now_ns: int) -> None:
        """Cameras without a DDS deadline: count one input gap per deadline period without a frame (as DDS
        does). Only with input_deadline auto (after a fall-back) or watchdog."""
        period = self.options.input_deadline_s
        if self.options.input_deadline not in ("auto", "watchdog") or period is None:
            return
        for cam in self.cameras.values():
            if cam.dds_deadline:
                continue
            with cam.lock:
                late = now_ns - cam.last_gap_check_ns > period * 1e9
                if late:
                    cam.last_gap_check_ns = now_ns
            if late:
                cam.stats.record("input_gap", now_ns / 1e9)

    def reports(self) -> list[diagnostics.StatusReport]:
        now_ns = self._now_ns()
        self._rebase_if_clock_started(now_ns)
        now = now_ns / 1e9
        name = self.get_fully_qualified_name()
        out = [diagnostics.camera_report(name, c.resolved, c.stats.snapshot(now), self.options)
               for c in self.cameras.values()]
        engine = {}
        if hasattr(self.detector, "device_stats"):
            engine = {e.label: e for e in self.detector.device_stats()}
        snaps = {d.label: d for d in self.devices.snapshot(now)}
        for label in engine.keys() - snaps.keys():  # a device that failed before it ran any frame
            snaps[label] = DeviceSnapshot(label, 0, 0, 0.0, percentiles([]), 0, 0)
        out += [diagnostics.device_report(name, d, engine.get(label)) for label, d in sorted(snaps.items())]
        return out

    def _check_levels(self) -> None:
        self._watchdog(self._now_ns())
        levels = {r.name: r.level for r in self.reports()}
        if levels != self._last_levels:
            self.publish_diagnostics()

    def publish_diagnostics(self) -> None:
        with self._diag_lock:
            reports = self.reports()
            msg = DiagnosticArray()
            msg.header.stamp = self.get_clock().now().to_msg()
            for r in reports:
                status = DiagnosticStatus(name=r.name, message=r.message, hardware_id=r.hardware_id)
                status.level = bytes([r.level])
                status.values = [KeyValue(key=k, value=v) for k, v in r.values]
                msg.status.append(status)
            self._last_levels = {r.name: r.level for r in reports}
            self.diagnostics_pub.publish(msg)

    # -------------------------------------------------------------------------------------------- teardown
    def destroy_node(self) -> None:
        """Stop the workers, close the detector if this node made it; safe to call twice."""
        self._stopping.set()
        self.slots.close()
        for worker in self._workers:
            worker.join(timeout=5.0)
        if self._owns_detector and self.detector is not None:
            self.detector.close()
            self.detector = None
        super().destroy_node()


def run_nodes(nodes: list[Node]) -> int:
    """Spin `nodes` in one executor until shutdown (Ctrl-C, SIGTERM); destroy them afterwards."""
    executor = SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            executor.remove_node(node)
            node.destroy_node()
    return 0


def main(args: list[str] | None = None) -> int:
    """Console script `vehicle_detector` (`--ros-args -p name:=value`, `--params-file`, remaps)."""
    import sys

    with rclpy.init(args=args):
        try:
            node = VehicleDetectorNode()
        except OclInferError as err:
            print(f"vehicle_detector: error: {err}", file=sys.stderr)
            return 2
        except (KeyboardInterrupt, ExternalShutdownException):
            return 0
        return run_nodes([node])


if __name__ == "__main__":
    raise SystemExit(main())
