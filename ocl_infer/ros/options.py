"""NodeOptions: the vehicle_detector's configuration, one frozen dataclass checked once.

`PARAMETERS` is the single table of the node's ROS parameters (name, default, description, range or choices,
and whether it may change while the node runs). The node declares exactly these; `ocl-infer launch` reads the
same names from YAML; config/vehicle_detection.yaml lists them all (a test checks). Values are validated in one
place, with messages that name the parameter: at start-up and for every live change (`NodeOptions.updated`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ocl_infer.deadline import LATE_POLICIES, FramePolicy
from ocl_infer.detection.tracking import TrackerOptions
from ocl_infer.errors import ConfigError
from ocl_infer.scheduling.batching import BATCH_MODES

INPUT_TYPES = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")
BACKENDS = ("opencl", "onnxruntime")
PRECISIONS = ("fp32", "fp16")
INPUT_DEADLINES = ("auto", "qos", "watchdog", "off")


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: its default (which also fixes its type), what it means, and what it may be."""

    name: str
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    # A list parameter with no default (ROS cannot type an empty list): unset means "not used".
    string_list: bool = False
    # Changes while the node runs (`ros2 param set`), from the next frame. The others shape the model, the
    # devices, the subscriptions or the workers, which are built once: they are read-only.
    live: bool = False

    @property
    def full_description(self) -> str:
        """The description ROS shows (`ros2 param describe`), saying whether it can change at run time."""
        if self.live:
            return f"{self.description} (live: ros2 param set applies it from the next frame)"
        return f"{self.description} (read-only: set it at start-up; changing it means restarting the node)"


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model", "", "Prepared model folder (model.json, model.nnef/); empty: the one `make setup` prepared"),
    ParamSpec("backend", "opencl", "Inference backend: opencl (our engine) or onnxruntime (reference)",
              choices=BACKENDS),
    ParamSpec("precision", "fp32", "opencl backend: fp16 stores conv weights and Winograd scratch as half "
              "(half the memory, float math; docs/performance.md 'fp16 storage')", choices=PRECISIONS),
    ParamSpec("devices", "", "OpenCL device selectors, comma separated ('0', 'cl:1', 'gpu', 'all'); "
              "empty: the first device"),
    ParamSpec("classes", "", "Class names or ids to report, comma separated; empty: vehicles "
              "(bicycle, car, motorbike, bus, train, truck)", live=True),
    ParamSpec("score_threshold", 0.25, "Minimum detection score", 0.0, 1.0, live=True),
    ParamSpec("nms_iou", 0.45, "IoU above which NMS suppresses the weaker box of a class", 0.0, 1.0, live=True),
    ParamSpec("image_topics", None, "Camera image topics served by this node (one Detector shared); unset: one "
              "camera on 'image'. Outputs go under each topic's namespace", string_list=True),
    ParamSpec("input_type", "raw", "raw: sensor_msgs/Image on <topic>; compressed: CompressedImage on "
              "<topic>/compressed", choices=INPUT_TYPES),
    ParamSpec("qos_reliability", "best_effort", "Image subscription reliability (sensor data: best_effort)",
              choices=RELIABILITIES),
    ParamSpec("qos_depth", 1, "Image subscription history depth (1: only the newest frame matters)", 1, 100),
    ParamSpec("deadline_ms", 100.0, "End-to-end budget: latency = published - image stamp", 1.0, 600000.0,
              live=True),
    ParamSpec("expected_rate_hz", 10.0, "Expected camera rate; sets the input deadline and stall detection "
              "(0: unknown, neither is checked)", 0.0, 1000.0, live=True),
    ParamSpec("input_deadline_tolerance", 1.5, "Input deadline = tolerance / expected_rate_hz; each miss of it "
              "is an input gap", 1.0, 100.0, live=True),
    ParamSpec("input_deadline", "auto", "How input gaps are detected. auto: a DDS deadline on the image "
              "subscription when every camera publisher offers one <= the period, else the node's own watchdog; "
              "qos: always the DDS deadline (a camera offering none is never delivered; the node says so); "
              "watchdog: only the node's timer; off", choices=INPUT_DEADLINES),
    ParamSpec("stall_periods", 5.0, "Diagnostics ERROR after this many expected periods without a frame",
              1.0, 1000.0, live=True),
    ParamSpec("late_policy", "publish", "A frame whose latency exceeds deadline_ms (a miss): publish it anyway "
              "or drop it", choices=LATE_POLICIES, live=True),
    ParamSpec("diagnostics_period_s", 1.0, "Period of /diagnostics (level changes are published at once)",
              0.05, 3600.0, live=True),
    ParamSpec("diagnostics_window_s", 5.0, "Window over which rates, latency percentiles and WARN causes count",
              0.5, 3600.0, live=True),
    ParamSpec("overlay", True, "Publish detections/overlay (boxes drawn on the frame) while someone subscribes",
              live=True),
    ParamSpec("frames_in_flight", 1, "Worker threads taking frames (more than 1 only pays with several devices)",
              1, 16),
    ParamSpec("camera_weights", "", "Fair shares under overload: one weight > 0 per camera of image_topics, comma "
              "separated (e.g. '2,1': the first keeps twice the fraction of its frames); empty: equal, so every "
              "camera loses the same fraction whatever its rate", live=True),
    ParamSpec("batching", "off", "Frames of several cameras waiting: auto runs them as one batch while the "
              "measured time per frame is lower than one by one (and the batch fits deadline_ms); off: one by one; "
              "always: the largest batch that fits deadline_ms. opencl backend only", choices=BATCH_MODES),
    ParamSpec("tracking", False, "Vehicle tracks per camera: Detection2D.id = a stable track id (ByteTrack-style; "
              "low-score boxes that continue no track are not published)", live=True),
    ParamSpec("track_high_score", 0.5, "Tracking: detections at or above this score start and extend tracks; "
              "lower ones (down to score_threshold) only extend them", 0.0, 1.0, live=True),
    ParamSpec("track_match_iou", 0.3, "Tracking: minimum IoU between a track's predicted box and a detection",
              0.0, 1.0, live=True),
    ParamSpec("track_max_age", 5, "Tracking: frames a vehicle may go undetected before its track ends", 0, 1000,
              live=True),
)
PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)
LIVE_PARAMETERS = frozenset(p.name for p in PARAMETERS if p.live)
SPECS = {p.name: p for p in PARAMETERS}


def split_list(value: str) -> tuple[str, ...]:
    """'a, b,,c' -> ('a', 'b', 'c')."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class NodeOptions:
    """Validated configuration of one vehicle_detector node."""

    model: str = ""
    backend: str = "opencl"
    precision: str = "fp32"
    devices: str = ""
    classes: str = ""
    score_threshold: float = 0.25
    nms_iou: float = 0.45
    image_topics: tuple[str, ...] = ()
    input_type: str = "raw"
    qos_reliability: str = "best_effort"
    qos_depth: int = 1
    deadline_ms: float = 100.0
    expected_rate_hz: float = 10.0
    input_deadline_tolerance: float = 1.5
    input_deadline: str = "auto"
    stall_periods: float = 5.0
    late_policy: str = "publish"
    diagnostics_period_s: float = 1.0
    diagnostics_window_s: float = 5.0
    overlay: bool = True
    frames_in_flight: int = 1
    camera_weights: str = ""
    batching: str = "off"
    tracking: bool = False
    track_high_score: float = 0.5
    track_match_iou: float = 0.3
    track_max_age: int = 5

    def __post_init__(self) -> None:
        for spec in PARAMETERS:
            value = getattr(self, spec.name)
            if spec.choices and value not in spec.choices:
                raise ConfigError(f"parameter {spec.name}: {value!r} is not one of {', '.join(spec.choices)}")
            if spec.minimum is not None or spec.maximum is not None:
                if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                    raise ConfigError(f"parameter {spec.name}: expected a number, got {value!r}")
                if (spec.minimum is not None and value < spec.minimum) or (
                    spec.maximum is not None and value > spec.maximum
                ):
                    raise ConfigError(
                        f"parameter {spec.name}: {value} is outside [{spec.minimum}, {spec.maximum}]"
                    )
        if self.precision != "fp32" and self.backend != "opencl":
            raise ConfigError(f"parameter precision: {self.precision!r} needs backend 'opencl' "
                              f"(backend {self.backend!r} runs in float32)")
        if len(set(self.image_topics)) != len(self.image_topics):
            raise ConfigError(f"parameter image_topics: a topic is listed twice: {list(self.image_topics)}")
        if any(not t or t.endswith("/") or " " in t for t in self.image_topics):
            raise ConfigError(f"parameter image_topics: invalid topic name in {list(self.image_topics)}")
        _ = self.weights  # checked here, so a bad value is refused at start-up and by ros2 param set

    @property
    def weights(self) -> dict[str, float]:
        """camera topic -> fair-share weight (camera_weights; every camera 1.0 when empty)."""
        parts = split_list(self.camera_weights)
        if not parts:
            return dict.fromkeys(self.cameras, 1.0)
        try:
            values = [float(p) for p in parts]
        except ValueError as err:
            raise ConfigError(f"parameter camera_weights: {self.camera_weights!r} is not a list of numbers") from err
        if len(values) != len(self.cameras) or not all(0 < v < math.inf for v in values):
            raise ConfigError(f"parameter camera_weights: need {len(self.cameras)} weight(s) > 0, one per camera "
                              f"of {list(self.cameras)}; got {self.camera_weights!r}")
        return dict(zip(self.cameras, values, strict=True))

    @property
    def tracker_options(self) -> TrackerOptions:
        return TrackerOptions(high_score=self.track_high_score, match_iou=self.track_match_iou,
                              max_age=self.track_max_age)

    @property
    def cameras(self) -> tuple[str, ...]:
        """The camera base topics: image_topics, or the single relative topic 'image'."""
        return self.image_topics or ("image",)

    @property
    def device_selectors(self) -> str | list[str] | None:
        """What Detector(devices=...) takes: None (first device), 'all', or a list of selectors."""
        parts = split_list(self.devices)
        if not parts:
            return None
        if parts == ("all",):
            return "all"
        return list(parts)

    @property
    def class_filter(self) -> list[str | int] | None:
        """What Detector(classes=...) takes: None (vehicles) or names and ids."""
        parts = split_list(self.classes)
        if not parts:
            return None
        return [int(p) if p.isdigit() else p for p in parts]

    @property
    def frame_policy(self) -> FramePolicy:
        """The deadline rules a frame is judged by under these options."""
        return FramePolicy(self.deadline_ms, self.late_policy)

    @property
    def input_deadline_s(self) -> float | None:
        """QoS deadline period of the image subscription, or None when the rate is unknown."""
        if self.expected_rate_hz <= 0 or self.input_deadline == "off":
            return None
        return self.input_deadline_tolerance / self.expected_rate_hz

    @property
    def expected_period_s(self) -> float | None:
        return None if self.expected_rate_hz <= 0 else 1.0 / self.expected_rate_hz

    def updated(self, changes: Mapping[str, Any]) -> NodeOptions:
        """These options with live parameters changed (a `ros2 param set`), validated like at start-up.

        ConfigError naming the parameter for a bad value, or for a parameter that cannot change at run time."""
        for name in changes:
            if name not in LIVE_PARAMETERS:
                raise ConfigError(f"parameter {name}: read-only while the node runs (restart the node to change it)")
        return replace(self, **{name: coerce(SPECS[name], value) for name, value in changes.items()})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> NodeOptions:
        """Build from parameter name -> value (a ROS params file section, CLI flags); unknown names refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known - {"use_sim_time"})
        if unknown:
            raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(PARAMETER_NAMES)})")
        kwargs: dict[str, Any] = {}
        for spec in PARAMETERS:
            if spec.name not in values or values[spec.name] is None:
                continue
            kwargs[spec.name] = coerce(spec, values[spec.name])
        return cls(**kwargs)


def coerce(spec: ParamSpec, value: Any) -> Any:
    """A value from YAML/CLI into the parameter's type, or ConfigError naming it."""
    try:
        if spec.string_list:
            if isinstance(value, str):
                return split_list(value)
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise TypeError
            return tuple(value)
        if isinstance(spec.default, bool):
            if isinstance(value, str) and value.lower() in {"true", "false"}:
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(spec.default, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if isinstance(spec.default, float):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if isinstance(spec.default, str):
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError) as err:
        kind = "list of strings" if spec.string_list else type(spec.default).__name__
        raise ConfigError(f"parameter {spec.name}: expected {kind}, got {value!r}") from err
    return value
