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

QoS that matches the camera: before subscribing, the node reads what the camera's publishers offer
(get_publishers_info_by_topic) and requests nothing they do not offer (qos.image_qos_for), so the usual
camera profiles match at once, with no incompatible-QoS warning and no frame lost to a re-subscription. A
publisher that appears later and does not match (its incompatible-QoS event, or the graph check every
GRAPH_POLL_S) makes the node re-subscribe to match it.

Input gaps (input_deadline): 'auto' uses a DDS deadline of input_deadline_tolerance / expected_rate_hz when the
camera's publishers all offer one at least as strict, and counts its deadline events; otherwise (the usual
case: drivers offer none) the node's own watchdog counts gaps. 'qos' always requests the DDS deadline and
reports, once, a publisher that cannot match it; 'watchdog' never asks DDS; 'off' counts none.

Live parameters (options.PARAMETERS with live=True: thresholds, classes, deadline, late policy, overlay,
expected rate, diagnostics settings) are validated in an on-set callback (a bad value is refused with the
reason) and applied in the post-set callback: workers read `self.options` once per frame, so a change holds
from the next frame. The rest are declared read-only.

Sim time: the node subscribes to its cameras only once /clock has given it a time, so that no frame is
stamped with a clock that still reads zero (the first frame of a replay once came out with processing 0 ms).

Shutdown: `destroy_node` stops the workers before anything else, and every publish from a worker checks that
the node is not stopping; the console script (vehicle_detector_node.py) handles the signals.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from ocl_infer_msgs.msg import FrameTiming
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.exceptions import InvalidHandle, InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSPolicyKind
from rclpy.subscription import RCLError
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from ocl_infer.deadline import FramePolicy, Outcome, input_gap_due
from ocl_infer.detection.overlay import LabelledBox, draw_detections
from ocl_infer.detection.tracking import Tracker
from ocl_infer.errors import ConfigError, OclInferError
from ocl_infer.ros import diagnostics
from ocl_infer.ros.dds_profile import PROFILE_VAR, active_profile, shm_profile_path
from ocl_infer.ros.frame_stats import CameraStats, DeviceSnapshot, DeviceStats, percentiles
from ocl_infer.ros.image_conversion import bgr_to_image, compressed_to_bgr, image_to_bgr
from ocl_infer.ros.messages import FrameRecord, detections_to_msg, label_info_msg, timing_msg
from ocl_infer.ros.options import LIVE_PARAMETERS, PARAMETERS, NodeOptions, ParamSpec
from ocl_infer.ros.qos import (
    ImageQoSChoice,
    OfferedQoS,
    describe_subscription,
    detections_qos,
    image_qos_for,
    incompatible_qos_hint,
    latched_qos,
    matches_all,
    records_qos,
)
from ocl_infer.ros.shutdown import spin_until_shutdown
from ocl_infer.scheduling import BatchPolicy, LatestSlots

LOG_THROTTLE_S = 5.0
MAX_BATCH = 8  # the most cameras' frames run as one batch (an engine per size is built at start-up)
WORKER_POLL_S = 0.2
CLOCK_POLL_S = 0.05  # use_sim_time: how often the node looks whether /clock has started
GRAPH_POLL_S = 0.5  # how often the node compares the cameras' publishers with what it subscribed with
TRANSPORT_LOG_S = 60.0  # the transport diagnosis goes to the log at most this often per camera


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
    desc = ParameterDescriptor(description=spec.full_description, read_only=not spec.live)
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
    label_info: Any = None
    subscription: Any = None
    sequence: int = 0
    last_gap_check_ns: int = 0  # watchdog: last receive or last counted gap
    dds_deadline: bool = False  # input gaps come from the DDS deadline event (else from the watchdog)
    offered: tuple[OfferedQoS, ...] = ()  # what the camera's publishers offered when last looked at
    qos_choice: ImageQoSChoice | None = None
    qos_said: set[str] = field(default_factory=set)  # QoS notes and mismatches already logged (each once)
    transport_logged_s: float = -1e18  # when the transport diagnosis last went to the log
    tracker: Tracker | None = None  # parameter tracking: this camera's vehicle tracks
    lock: threading.Lock = field(default_factory=threading.Lock)


class VehicleDetectorNode(Node):
    """See the module docstring. `detector` may be passed in (shared across nodes in one process; live changes
    of score_threshold, nms_iou and classes then apply to every node that shares it)."""

    def __init__(self, node_name: str = "vehicle_detector", *, detector: Any = None, **kwargs: Any) -> None:
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []
        self._owns_detector = False
        self._node_made = False
        self.detector: Any = None
        self.slots: LatestSlots[Pending] = LatestSlots()
        self._weights = ""  # the camera_weights the slots were last given
        self._batch: BatchPolicy | None = None  # batching of several cameras' frames; None: one by one
        self.cameras: dict[str, Camera] = {}
        self.diagnostics_pub: Any = None
        # Timers of the running node (activate makes them, deactivate destroys them).
        self._diag_timer: Any = None
        self._check_timer: Any = None
        self._graph_timer: Any = None
        self._clock_wait: Any = None
        self._diag_lock = threading.Lock()
        self._options_lock = threading.Lock()
        super().__init__(node_name, **kwargs)
        self._node_made = True
        try:
            self._start(detector)
        except BaseException:  # a bad parameter, a bad model, or Ctrl-C during start-up: free what was made
            self.destroy_node()
            raise

    def _start(self, detector: Any) -> None:
        """The plain node runs at once: declare, configure, activate. The managed variant
        (managed_vehicle_detector.py) only declares here and leaves the rest to its lifecycle transitions."""
        self._declare()
        self._configure(detector)
        self._activate()

    # The phases below are the lifecycle's: declare (construction), configure (model and kernels, publishers),
    # activate (subscriptions, workers, timers), deactivate (their reverse; the model stays), cleanup (the
    # publishers and the detector's devices freed).
    def _declare(self) -> None:
        """Parameters and their callbacks, which exist in every lifecycle state."""
        self.options = declare_options(self)
        self.devices = DeviceStats(self._now_s(), self.options.diagnostics_window_s)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

    def _configure(self, detector: Any) -> None:
        """Load the model and build its kernels (unless `detector` is shared), make the publishers."""
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
            self.detector = detector
            # First run builds kernels; do it now so the first real frame is not a guaranteed miss.
            detector.detect(np.zeros((240, 320, 3), dtype=np.uint8))
        self.detector = detector
        self._batch = self._prepare_batching(detector, opts)
        self._dds_profile = active_profile()
        profile = shm_profile_path()
        self._transport_fix = (f"{PROFILE_VAR}={profile or 'config/fastdds_shm.xml'} in the camera's process and "
                               f"this node's (this node: {self._dds_profile})")
        start = self._now_s()
        self.cameras = {topic: self._make_camera(topic, ns, start) for ns, topic in namespaces.items()}
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", records_qos(10))

    def _activate(self) -> None:
        """Fresh statistics and tracks, timers and workers, the class map on label_info, then the camera
        subscriptions."""
        opts = self.options
        self._stopping = threading.Event()  # set by a previous deactivate, whose workers have ended
        start = self._now_s()
        self._clock_started = start > 0
        self.devices = DeviceStats(start, opts.diagnostics_window_s)
        self._last_levels: dict[str, int] = {}
        for cam in self.cameras.values():
            cam.stats = CameraStats(start, opts.diagnostics_window_s)
            cam.tracker = None  # tracks from before a deactivate would match today's boxes by yesterday's positions
            cam.last_gap_check_ns = self._now_ns()
        self._diag_timer = self.create_timer(opts.diagnostics_period_s, self.publish_diagnostics)
        # Level changes (a camera stopping) go out at once, not at the next 1 Hz tick.
        self._check_timer = self.create_timer(self._check_period_s(opts), self._check_levels)

        self._workers = [
            threading.Thread(target=self._work, name=f"detector-worker-{i}", daemon=True)
            for i in range(opts.frames_in_flight)
        ]
        for worker in self._workers:
            worker.start()
        self._publish_label_info()
        # Subscribing last: a publisher that sees the match knows the node is ready. Under sim time, ready
        # includes having a time: wait for /clock (a steady timer, since sim time stands still until then).
        if self._now_ns() > 0:
            self._subscribe_cameras()
        else:
            self.get_logger().info("use_sim_time: waiting for /clock before subscribing to the camera(s)")
            self._clock_wait = self.create_timer(CLOCK_POLL_S, self._subscribe_when_clock_runs,
                                                 clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _deactivate(self) -> None:
        """Stop taking frames: unsubscribe, stop the timers, end the workers (after the frame each may be
        inferring), discard frames still waiting (no FrameTiming, as at shutdown). The model stays loaded."""
        for cam in self.cameras.values():
            if cam.subscription is not None:
                self.destroy_subscription(cam.subscription)
            cam.subscription, cam.qos_choice, cam.offered = None, None, ()
        for name in ("_diag_timer", "_check_timer", "_graph_timer", "_clock_wait"):
            timer = getattr(self, name)
            if timer is not None:
                self.destroy_timer(timer)
                setattr(self, name, None)
        self._stopping.set()
        for worker in self._workers:
            worker.join(timeout=5.0)
        self._workers = []
        while self.slots.take(timeout=0) is not None:
            pass

    def _cleanup(self) -> None:
        """Undo configure: destroy the publishers and, if this node made it, close the detector (its devices,
        buffers and kernels are freed)."""
        for cam in self.cameras.values():
            for pub in (cam.detections, cam.overlay, cam.timing, cam.label_info):
                if pub is not None:
                    self.destroy_publisher(pub)
        self.cameras = {}
        if self.diagnostics_pub is not None:
            self.destroy_publisher(self.diagnostics_pub)
            self.diagnostics_pub = None
        if self._owns_detector and self.detector is not None:
            detector, self.detector = self.detector, None
            detector.close()
        self.detector = None

    def _publish_label_info(self) -> None:
        """vision_msgs/LabelInfo on each camera's label_info (transient local: late subscribers get it too): the
        model's class ids and names, and the score threshold in force."""
        if self.detector is None:
            return
        names = list(self.detector.class_names)
        for cam in self.cameras.values():
            self._publish(cam.label_info, label_info_msg(names, self.options.score_threshold,
                                                         self.get_clock().now().to_msg()))

    @staticmethod
    def _check_period_s(opts: NodeOptions) -> float:
        return max(min(opts.diagnostics_period_s, (opts.input_deadline_s or 1.0) / 3, 0.5), 0.02)

    def _subscribe_when_clock_runs(self) -> None:
        if self._now_ns() <= 0 or self._stopping.is_set() or self._clock_wait is None:
            return
        self._clock_wait.cancel()
        self.destroy_timer(self._clock_wait)
        self._clock_wait = None
        self._rebase_if_clock_started(self._now_ns())
        self._subscribe_cameras()

    def _subscribe_cameras(self) -> None:
        for cam in self.cameras.values():
            with cam.lock:
                cam.last_gap_check_ns = max(cam.last_gap_check_ns, self._now_ns())
            self._subscribe(cam)
        # Publishers that appear later: subscribe again if one cannot match (steady: sim time may stand still).
        self._graph_timer = self.create_timer(GRAPH_POLL_S, self._check_publishers,
                                              clock=Clock(clock_type=ClockType.STEADY_TIME))
        opts = self.options
        self.get_logger().info(
            f"ready: {len(self.cameras)} camera(s) {[c.resolved for c in self.cameras.values()]}, "
            f"device {getattr(self.detector, 'device', '?')}, deadline {opts.deadline_ms:g} ms, "
            f"late_policy {opts.late_policy}"
        )

    # ------------------------------------------------------------------------------------- live parameters
    def _changes(self, params: list[Parameter]) -> dict[str, Any]:
        return {p.name: p.value for p in params if p.name in LIVE_PARAMETERS}

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """ros2 param set: refuse a bad value with the reason (the same checks as at start-up)."""
        changes = self._changes(params)
        if not changes:
            return SetParametersResult(successful=True)
        try:
            candidate = self.options.updated(changes)
            if "classes" in changes and self.detector is not None:
                self.detector.description.class_ids(candidate.class_filter)
        except OclInferError as err:  # NodeOptions names the parameter; the class lookup does not
            reason = str(err) if str(err).startswith("parameter ") else f"parameter classes: {err}"
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        """After a successful set: the detector's filters, then the options every frame reads, then timers."""
        changes = self._changes(params)
        if not changes:
            return
        with self._options_lock:
            old = self.options
            new = old.updated(changes)
            det = self.detector
            if det is not None:
                if new.class_filter != old.class_filter:
                    det.class_ids = det.description.class_ids(new.class_filter)
                det.score_threshold = new.score_threshold
                det.nms_iou = new.nms_iou
            self.options = new  # one reference swap: a frame reads all of the old or all of the new options
            self.devices.window_s = new.diagnostics_window_s
            for cam in self.cameras.values():
                cam.stats.window_s = new.diagnostics_window_s
            # Timers and subscriptions exist only while active (managed node) and not during teardown; a later
            # activate builds them from the options set here.
            running = not self._stopping.is_set()
            if running and self._diag_timer is not None and new.diagnostics_period_s != old.diagnostics_period_s:
                self._diag_timer.timer_period_ns = int(new.diagnostics_period_s * 1e9)
            if running and self._check_timer is not None and self._check_period_s(new) != self._check_period_s(old):
                self._check_timer.timer_period_ns = int(self._check_period_s(new) * 1e9)
            if running and new.input_deadline_s != old.input_deadline_s:
                for cam in self.cameras.values():
                    if cam.dds_deadline and cam.subscription is not None:
                        self._resubscribe(cam)  # the requested DDS deadline follows
            if running and new.score_threshold != old.score_threshold:
                self._publish_label_info()  # LabelInfo carries the threshold
        self.get_logger().info("parameters changed: " + ", ".join(
            f"{name} {getattr(old, name)!r} -> {getattr(new, name)!r}" for name in changes))

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
        cam.label_info = self.create_publisher(LabelInfo, output_topic(namespace, "label_info"), latched_qos())
        cam.last_gap_check_ns = self._now_ns()
        return cam

    def _offered(self, cam: Camera) -> tuple[OfferedQoS, ...]:
        return tuple(OfferedQoS.from_profile(info.qos_profile)
                     for info in self.get_publishers_info_by_topic(cam.resolved))

    def _choose_qos(self, cam: Camera) -> ImageQoSChoice:
        """The subscription QoS for the camera's publishers as they are now; notes and mismatches logged once."""
        cam.offered = self._offered(cam)
        choice = image_qos_for(self.options, cam.offered)
        for line in (*choice.notes, choice.mismatch):
            if line and line not in cam.qos_said:
                cam.qos_said.add(line)
                self.get_logger().warning(f"{cam.resolved}: {line}")
        return choice

    def _subscribe(self, cam: Camera) -> None:
        choice = self._choose_qos(cam)
        cam.qos_choice = choice
        cam.dds_deadline = choice.dds_deadline
        qos = choice.profile
        msg_type = CompressedImage if cam.compressed else Image
        sub_topic = f"{cam.topic}/compressed" if cam.compressed else cam.topic

        def subscribe(message_lost: bool) -> Any:
            events = SubscriptionEventCallbacks(
                deadline=lambda info, c=cam: self._on_input_gap(c, info.total_count_change),
                incompatible_qos=lambda info, c=cam: self._on_incompatible_qos(c, info),
                message_lost=(lambda info, c=cam: self._on_message_lost(c, info)) if message_lost else None,
            )
            return self.create_subscription(msg_type, sub_topic, lambda msg, c=cam: self._on_image(c, msg), qos,
                                            event_callbacks=events)

        try:  # DDS's count of frames lost on the way: what the transport diagnosis rests on
            cam.subscription = subscribe(message_lost=True)
            cam.stats.track_losses()
        except UnsupportedEventTypeError:  # an RMW without it: the diagnosis falls back on the input rate
            cam.subscription = subscribe(message_lost=False)

    def _resubscribe(self, cam: Camera) -> None:
        """A new image subscription, chosen for the publishers and options as they are now, for the old one."""
        if self._stopping.is_set():
            return
        old = cam.subscription
        self._subscribe(cam)
        self.destroy_subscription(old)
        with cam.lock:
            cam.last_gap_check_ns = self._now_ns()

    def _check_publishers(self) -> None:
        """Graph check: when the camera's publishers changed, re-subscribe if one of them cannot match the
        subscription (input_deadline qos keeps its deadline and only reports the mismatch)."""
        for cam in self.cameras.values():
            current = cam.qos_choice
            if cam.subscription is None or current is None or self._stopping.is_set():
                continue
            offered = self._offered(cam)
            if offered == cam.offered:
                continue
            choice = self._choose_qos(cam)  # logs what is new to say
            cam.qos_choice = replace(current, notes=choice.notes, mismatch=choice.mismatch)
            if matches_all(current, offered, check_deadline=self.options.input_deadline != "qos"):
                continue  # the new publisher matches what we have: keep the subscription (no frame lost)
            self.get_logger().info(f"{cam.resolved}: a camera publisher does not match the subscription "
                                   f"({'; '.join(o.describe() for o in offered)}); subscribing again to match it")
            self._resubscribe(cam)

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
        cam.stats.record_frame(now / 1e9, len(msg.data))
        record = FrameRecord(msg.header, cam.resolved, seq, now, self.options.deadline_ms)
        displaced = self.slots.put(cam.topic, Pending(msg, record))
        if displaced is not None:
            displaced.record.settle(FramePolicy.overwritten(seq))
            cam.stats.record(Outcome.OVERLOAD_DROP.word, now / 1e9)
            self._publish_timing(cam, displaced.record)

    def _on_input_gap(self, cam: Camera, count: int) -> None:
        cam.stats.record("input_gap", self._now_s(), max(int(count), 1))
        self._check_levels()

    def _on_message_lost(self, cam: Camera, info: Any) -> None:
        """DDS lost frames between the camera and this node (e.g. UDP fragments of a large frame dropped)."""
        count = int(info.total_count_change)
        if count > 0:
            cam.stats.record("transport_loss", self._now_s(), count)

    def _on_output_gap(self, cam: Camera, info: Any) -> None:
        cam.stats.record("output_gap", self._now_s(), max(int(info.total_count_change), 1))

    def _on_incompatible_qos(self, cam: Camera, info: Any) -> None:
        """A publisher the subscription cannot match (it appeared after the subscription was chosen): look at
        the publishers again at once, from a one-shot steady timer (not inside the subscription's own event
        callback; sim time may stand still). input_deadline qos: the mismatch is reported, not adapted to."""
        try:
            policy = QoSPolicyKind(int(info.last_policy_kind))
        except ValueError:
            policy = QoSPolicyKind.INVALID
        if policy == QoSPolicyKind.DEADLINE and self.options.input_deadline == "qos":
            return  # reported once by the graph check, with the fix
        if policy not in (QoSPolicyKind.DEADLINE, QoSPolicyKind.RELIABILITY):
            hint = incompatible_qos_hint(policy, cam.resolved, self.options)
            self.get_logger().warning("incompatible QoS: " + hint, throttle_duration_sec=LOG_THROTTLE_S)
            return
        timer = None

        def adapt() -> None:
            if timer is not None:
                timer.cancel()
                self.destroy_timer(timer)
            cam.offered = ()  # force a fresh look
            self._check_publishers()

        timer = self.create_timer(0.001, adapt, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # ---------------------------------------------------------------------------------------------- worker
    def _work(self) -> None:
        while not self._stopping.is_set():
            if self.options.camera_weights != self._weights:  # live parameter: fair shares from the next take
                self._weights = self.options.camera_weights
                self.slots.set_weights(self.options.weights)
            taken = self.slots.take_many(self._batch_size, timeout=WORKER_POLL_S)
            frames = [(self.cameras[str(topic)], pending) for topic, pending in taken]
            try:
                if len(frames) == 1:
                    self._process(*frames[0])
                elif frames:
                    self._process_batch(frames)
            except Exception as err:  # a bug must not silently kill the worker: count, log with traceback
                if self._stopping.is_set():
                    return  # shutting down: the detector or the context may be gone under the frame
                for cam, pending in frames:
                    if len(frames) > 1 and (pending.record.published_ns or
                                            pending.record.outcome is not Outcome.PUBLISHED):
                        continue  # this frame of the batch was already accounted for
                    pending.record.outcome = Outcome.INFERENCE_ERROR
                    pending.record.detail = f"internal error: {err}"
                    cam.stats.record("inference_error", self._now_s())
                    self.get_logger().error(f"{cam.resolved}: internal error on frame {pending.record.sequence}:\n"
                                            + traceback.format_exc())
                    self._publish_timing(cam, pending.record)

    def _prepare_batching(self, detector: Any, opts: NodeOptions) -> BatchPolicy | None:
        """Engines for batches of 2 .. cameras frames, each timed once against one frame alone, so that
        batching auto starts from measured times (and does not try a slow batch on live frames first)."""
        most = min(len(opts.cameras), MAX_BATCH)
        if opts.batching == "off" or most < 2 or not hasattr(detector, "prepare_batch"):
            return None
        sizes = detector.prepare_batch(list(range(2, most + 1)))
        if not sizes:
            return None  # onnxruntime: its model file fixes the batch at 1
        policy = BatchPolicy(sizes, opts.batching)
        frame = np.zeros((480, 640, 3), np.uint8)
        for n in (1, *sizes):
            detector.detect_batch_timed([frame] * n)  # first run of a size: kernels' first launch
            t0 = time.perf_counter()
            detector.detect_batch_timed([frame] * n)
            policy.record(n, (time.perf_counter() - t0) * 1e3)
        self.get_logger().info("batching " + opts.batching + ": ms per frame " + ", ".join(
            f"batch {n}: {policy.per_frame_ms(n):.1f}" for n in (1, *sizes)))
        return policy

    def _batch_size(self, waiting: Sequence[Pending]) -> int:
        """Under the slots' lock: how many of the waiting frames (next to serve first) to run as one batch."""
        if self._batch is None or len(waiting) < 2:
            return 1
        now = self._now_ns()
        return self._batch.choose([(now - p.record.stamp_ns) / 1e6 for p in waiting], self.options.deadline_ms)

    def _process_batch(self, frames: list[tuple[Camera, Pending]]) -> None:
        """Frames of several cameras: each admitted alone (stale check, decode), detected as one batch, then
        each finished alone (deadline verdict, publish)."""
        admitted = [(cam, p, *a) for cam, p in frames if (a := self._admit(cam, p)) is not None]
        if len(admitted) == 1:
            cam, pending, frame, decode_ms = admitted[0]
            self._finish(cam, pending, frame, decode_ms, lambda: self._detect(frame))
            return
        if not admitted:
            return
        error: OclInferError | None = None
        t0 = time.perf_counter()
        try:
            results = self.detector.detect_batch_timed([a[2] for a in admitted])
        except OclInferError as err:
            error, results = err, []
        if error is None and self._batch is not None:
            self._batch.record(len(admitted), (time.perf_counter() - t0) * 1e3)

        def outcome(i: int) -> Any:
            if error is not None:
                raise error
            return results[i]

        for i, (cam, pending, frame, decode_ms) in enumerate(admitted):
            self._finish(cam, pending, frame, decode_ms, lambda i=i: outcome(i), batch=len(admitted))

    def _process(self, cam: Camera, pending: Pending) -> None:
        admitted = self._admit(cam, pending)
        if admitted is not None:
            frame, decode_ms = admitted
            self._finish(cam, pending, frame, decode_ms, lambda: self._detect(frame))

    def _admit(self, cam: Camera, pending: Pending) -> tuple[np.ndarray, float] | None:
        """Stale check and decode: (BGR frame, decode ms), or None when the frame ends here (recorded)."""
        policy = self.options.frame_policy  # the rules in force when the worker took the frame (ocl_infer.deadline)
        record = pending.record
        record.started_ns = self._now_ns()
        stale = policy.at_start(record.age_at_start_ms)
        if stale is not None:
            record.settle(stale)
            cam.stats.record(Outcome.STALE_DROP.word, record.started_ns / 1e9)
            self._publish_timing(cam, record)
            return None
        t0 = time.perf_counter()
        try:
            frame = compressed_to_bgr(pending.msg, cam.resolved) if cam.compressed else image_to_bgr(
                pending.msg, cam.resolved)
        except OclInferError as err:
            record.outcome, record.detail = Outcome.DECODE_ERROR, str(err)
            cam.stats.record("decode_error", self._now_s())
            self.get_logger().warning(f"bad frame {record.sequence}: {err}", throttle_duration_sec=LOG_THROTTLE_S)
            self._publish_timing(cam, record)
            return None
        return frame, (time.perf_counter() - t0) * 1e3

    def _finish(self, cam: Camera, pending: Pending, frame: np.ndarray, decode_ms: float,
                detect: Callable[[], Any], batch: int = 1) -> None:
        """Detect (`detect`: this frame's result, or raises), then the deadline verdict, publish and record."""
        opts = self.options
        policy = opts.frame_policy
        record = pending.record
        try:
            result = detect()
        except OclInferError as err:
            if self._stopping.is_set():
                return  # the detector is closing under this frame: no error to report
            record.outcome, record.detail = Outcome.INFERENCE_ERROR, str(err)
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
        detections, ids = self._tracked(cam, result.detections, record)
        record.detection_count = len(detections)
        self.devices.record(result.device, record.inferred_ns / 1e9, result.inference_ms)

        out = detections_to_msg(detections, pending.msg.header, ids)
        record.published_ns = self._now_ns()
        verdict = policy.at_publish(record.latency_ms)
        publish = verdict.publish
        if publish:
            self._publish(cam.detections, out)
        if publish and opts.overlay and not self._stopping.is_set() and cam.overlay.get_subscription_count() > 0:
            drawn = detections if ids is None else [
                LabelledBox(f"{d.label} #{i}" if i else d.label, d.score, d.box) for d, i in zip(detections, ids,
                                                                                                  strict=True)]
            self._publish(cam.overlay, bgr_to_image(draw_detections(frame, drawn), "bgr8", pending.msg.header))
        record.settle(verdict)
        if batch > 1:  # FrameTiming has no field for it: reports read "batch of N" from the detail
            record.detail = "; ".join(filter(None, (record.detail, f"batch of {batch}")))
        cam.stats.record_processed(record.published_ns / 1e9, record.latency_ms, verdict.outcome is Outcome.MISS,
                                   publish)
        self._publish_timing(cam, record)

    def _detect(self, frame: np.ndarray) -> Any:
        t0 = time.perf_counter()
        if self.options.frames_in_flight > 1:
            result = self.detector.submit(frame).result()
        else:
            result = self.detector.detect_timed(frame)
        if self._batch is not None:  # one frame alone: what a batch must beat per frame
            self._batch.record(1, (time.perf_counter() - t0) * 1e3)
        return result

    def _tracked(self, cam: Camera, detections: Sequence[Any], record: FrameRecord) -> tuple[list[Any],
                                                                                            list[str] | None]:
        """Parameter tracking: the detections to publish and their track ids ('' while a track is new); without
        it, the detections as they are and no ids."""
        opts = self.options
        if not opts.tracking:
            cam.tracker = None  # switched off: the next switch on starts afresh
            return list(detections), None
        with cam.lock:  # frames_in_flight > 1: two workers may finish frames of one camera at once
            if cam.tracker is None:
                cam.tracker = Tracker(opts.tracker_options)
            cam.tracker.options = opts.tracker_options
            tracked = cam.tracker.update(detections, record.stamp_ns / 1e9)
        return [d for d, _ in tracked], ["" if tid is None else str(tid) for _, tid in tracked]

    def _publish_timing(self, cam: Camera, record: FrameRecord) -> None:
        self._publish(cam.timing, timing_msg(record))

    def _publish(self, publisher: Any, msg: Any) -> None:
        """Publish unless the node is stopping. A publish that races the shutdown (the publisher or its
        context gone between the check and the call) is dropped quietly; any other failure propagates."""
        if self._stopping.is_set():
            return
        try:
            publisher.publish(msg)
        except (RCLError, InvalidHandle):
            if self._stopping.is_set() or not self.context.ok():
                return
            raise

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
                late = input_gap_due(now_ns, cam.last_gap_check_ns, period)
                if late:
                    cam.last_gap_check_ns = now_ns
            if late:
                cam.stats.record("input_gap", now_ns / 1e9)

    def reports(self) -> list[diagnostics.StatusReport]:
        now_ns = self._now_ns()
        self._rebase_if_clock_started(now_ns)
        now = now_ns / 1e9
        name = self.get_fully_qualified_name()
        out = [diagnostics.camera_report(name, c.resolved, c.stats.snapshot(now), self.options, self._transport(c))
               for c in self.cameras.values()]
        engine = {}
        if hasattr(self.detector, "device_stats"):
            engine = {e.label: e for e in self.detector.device_stats()}
        snaps = {d.label: d for d in self.devices.snapshot(now)}
        for label in engine.keys() - snaps.keys():  # a device that failed before it ran any frame
            snaps[label] = DeviceSnapshot(label, 0, 0, 0.0, percentiles([]), 0, 0)
        out += [diagnostics.device_report(name, d, engine.get(label)) for label, d in sorted(snaps.items())]
        return out

    def _transport(self, cam: Camera) -> diagnostics.Transport:
        publishers = cam.subscription.get_publisher_count() if cam.subscription is not None else 0
        choice = cam.qos_choice
        return diagnostics.Transport(publishers, self._dds_profile, self._transport_fix,
                                     qos=describe_subscription(choice) if choice is not None else "not subscribed",
                                     qos_mismatch=choice.mismatch if choice is not None else "")

    def _log_transport_diagnosis(self, reports: list[diagnostics.StatusReport]) -> None:
        """The transport diagnosis goes to the log too (at most every TRANSPORT_LOG_S per camera): it is the
        first thing a user with a silent node needs to read."""
        now = time.monotonic()
        for cam in self.cameras.values():
            report = next((r for r in reports if r.hardware_id == cam.resolved), None)
            if report is None or "likely cause: large frames" not in report.message:
                continue
            if now - cam.transport_logged_s >= TRANSPORT_LOG_S:
                cam.transport_logged_s = now
                self.get_logger().warning(f"{cam.resolved}: {report.message}")

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
            self._publish(self.diagnostics_pub, msg)
        self._log_transport_diagnosis(reports)

    # -------------------------------------------------------------------------------------------- teardown
    def destroy_node(self) -> None:
        """Stop the workers (nothing publishes after this), close the detector if this node made it, then
        destroy the node. Safe to call twice, and on a node whose start-up was cut short."""
        self._stopping.set()
        self.slots.close()
        for worker in self._workers:
            worker.join(timeout=5.0)
        if self._owns_detector and self.detector is not None:
            detector, self.detector = self.detector, None
            detector.close()
        if self._node_made:
            self._node_made = False
            super().destroy_node()


def run_nodes(nodes: list[Node], guard: Any = None) -> int:
    """Spin `nodes` in one executor until shutdown (a signal, or the context shut down); destroy them afterwards.
    With a `ShutdownGuard` the loop ends on its flag (see ocl_infer.ros.shutdown), else on KeyboardInterrupt."""
    return spin_until_shutdown(nodes, guard)

