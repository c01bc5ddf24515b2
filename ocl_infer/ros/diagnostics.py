"""Diagnostic levels from frame statistics: the rules of docs/architecture.md, without ROS.

Per camera:
- ERROR: no frame for `stall_periods` expected periods (or none at all after that long), or every frame processed
  in the window (at least 3) missed the deadline.
- WARN: a frame is overdue (more than input_deadline_tolerance periods since the last), or in the window there
  were misses, stale/overload drops, decode or inference errors, input gaps, or the input rate was below
  expected_rate_hz / tolerance (judged once the node has run a full window).
- OK otherwise.
Transport: when large frames (over one UDP datagram) arrive far below the camera's rate, the likely cause is
Fast DDS's default transports (each frame goes over UDP in fragments and most frames lose one), and the
message says so with the fix (the shared-memory profile on both sides). "Far below": DDS reported at least a
third of the frames in the window lost on the way (the subscription's message-lost event; this also covers a
camera none of whose frames arrives), or, with an RMW that reports no lost messages, the rate WARN below.
QoS: a camera publisher the image subscription cannot match (input_deadline qos with a camera offering no
such deadline) makes the camera WARN with the fix.
Per device: WARN when it failed a frame in the window or the engine has it out of rotation (it failed or hung;
the engine re-ran its frames elsewhere, so no camera sees an error), else OK.
The node turns `StatusReport`s into diagnostic_msgs/DiagnosticStatus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ocl_infer.ros.frame_stats import CameraSnapshot, DeviceSnapshot
from ocl_infer.ros.options import NodeOptions

OK, WARN, ERROR, STALE = 0, 1, 2, 3  # diagnostic_msgs/DiagnosticStatus levels
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}

# Window counts that make a camera WARN, with the words the message uses.
WARN_EVENTS = (
    ("miss", "deadline misses"),
    ("stale_drop", "stale drops"),
    ("overload_drop", "overload drops"),
    ("decode_error", "decode errors"),
    ("inference_error", "inference errors"),
    ("input_gap", "input gaps"),
)
MIN_FRAMES_FOR_ALL_MISSED = 3
LARGE_FRAME_BYTES = 64 * 1024  # one UDP datagram: above it, Fast DDS's UDP transport sends a frame in fragments
LOSS_HINT_FRACTION = 1 / 3  # lost / sent in the window from which the transport is named as the likely cause


@dataclass(frozen=True)
class Transport:
    """What the node knows about a camera's DDS link: matched publishers (reported), its own profile, and the fix
    to name."""

    publishers: int = 0
    profile: str = "default"  # what configures this node's Fast DDS (a profiles file, or default)
    fix: str = "load config/fastdds_shm.xml (FASTDDS_DEFAULT_PROFILES_FILE) in the camera's process and this node's"
    qos: str = ""  # the image subscription's QoS, in words
    qos_mismatch: str = ""  # a camera publisher the subscription cannot match, with the fix (qos.image_qos_for)


@dataclass(frozen=True)
class StatusReport:
    """One diagnostic status: name, level, a one-line message, hardware id and key/value pairs."""

    name: str
    level: int
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]


def _fmt(value: float) -> str:
    return "nan" if value != value else f"{value:.2f}"


def _percentile_values(name: str, dist: dict[str, float]) -> list[tuple[str, str]]:
    """`name_p50_ms` ... `name_max_ms`, the key names every dashboard of ours reads."""
    return [(f"{name}_{q}_ms", _fmt(dist[q])) for q in ("p50", "p95", "p99", "max")]


def transport_hint(snap: CameraSnapshot, options: NodeOptions, transport: Transport) -> str | None:
    """The likely cause and the fix when large frames are lost on the way or arrive far below the camera's rate
    (module docstring)."""
    fix = f"likely cause: large frames over Fast DDS's default UDP transport (fragments dropped); fix: {transport.fix}"
    if snap.frame_bytes and snap.frame_bytes <= LARGE_FRAME_BYTES:
        return None  # small frames fit one datagram: whatever loses them, it is not this
    if snap.losses_known:
        lost, received = snap.window["transport_loss"], snap.window["received"]
        if lost == 0 or lost < LOSS_HINT_FRACTION * (lost + received):
            return None
        size = f" ({snap.frame_bytes / 1e6:.1f} MB each)" if snap.frame_bytes else ""
        return f"{lost} of {lost + received} frames{size} lost on the way to the node; {fix}"
    if snap.frame_bytes and _rate_low(snap, options):  # an RMW that does not report lost messages
        return f"{snap.frame_bytes / 1e6:.1f} MB frames; {fix}"
    return None


def _rate_low(snap: CameraSnapshot, options: NodeOptions) -> bool:
    """The input rate in the window is below expected_rate_hz / tolerance (judged after one full window)."""
    return (options.expected_period_s is not None and snap.uptime_s >= snap.window_s
            and snap.input_rate_hz < options.expected_rate_hz / options.input_deadline_tolerance)


def camera_level(snap: CameraSnapshot, options: NodeOptions, transport: Transport | None = None) -> tuple[int, str]:
    """(level, message) for one camera."""
    transport = transport or Transport()
    level, message = _camera_level(snap, options)
    for extra in (transport_hint(snap, options, transport), transport.qos_mismatch or None):
        if extra is not None:
            level, message = max(level, WARN), f"{message}. {extra}" if level > OK else extra
    return level, message


def _camera_level(snap: CameraSnapshot, options: NodeOptions) -> tuple[int, str]:
    period = options.expected_period_s
    since = snap.since_last_frame_s
    if period is not None:
        stall_s = options.stall_periods * period
        if since is None and snap.uptime_s > stall_s:
            return ERROR, f"no frame received in {snap.uptime_s:.1f} s"
        if since is not None and since > stall_s:
            return ERROR, f"no frame for {since:.1f} s (expected every {period:.3f} s)"
    if snap.processed >= MIN_FRAMES_FOR_ALL_MISSED and snap.window["miss"] >= snap.processed:
        return ERROR, (
            f"all {snap.processed} frames in the last {snap.window_s:g} s missed the "
            f"{options.deadline_ms:g} ms deadline"
        )
    causes = [f"{snap.window[kind]} {words}" for kind, words in WARN_EVENTS if snap.window[kind]]
    if period is not None and since is not None and since > options.input_deadline_tolerance * period:
        causes.insert(0, f"no frame for {since:.2f} s")
    if _rate_low(snap, options):
        causes.append(f"input {snap.input_rate_hz:.1f} Hz below expected {options.expected_rate_hz:g} Hz")
    if causes:
        return WARN, "; ".join(causes) + f" in the last {snap.window_s:g} s"
    if since is None:
        return OK, "waiting for the first frame"
    return OK, f"{snap.output_rate_hz:.1f} Hz, p95 latency {_fmt(snap.latency_ms['p95'])} ms"


def camera_report(node_name: str, topic: str, snap: CameraSnapshot, options: NodeOptions,
                  transport: Transport | None = None) -> StatusReport:
    transport = transport or Transport()
    level, message = camera_level(snap, options, transport)
    values = [
        ("input_rate_hz", _fmt(snap.input_rate_hz)),
        ("output_rate_hz", _fmt(snap.output_rate_hz)),
        ("expected_rate_hz", _fmt(options.expected_rate_hz)),
        ("deadline_ms", _fmt(options.deadline_ms)),
        *_percentile_values("latency", snap.latency_ms),
        ("since_last_frame_s", "never" if snap.since_last_frame_s is None else _fmt(snap.since_last_frame_s)),
        ("window_s", _fmt(snap.window_s)),
    ]
    for kind in ("received", "published", "miss", "stale_drop", "overload_drop", "decode_error",
                 "inference_error", "input_gap", "output_gap", "transport_loss"):
        plural = {"received": "received", "published": "published", "miss": "misses",
                  "transport_loss": "transport_losses"}.get(kind, kind + "s")
        if kind == "transport_loss" and not snap.losses_known:
            values += [(f"{plural}_window", "unknown"), (f"{plural}_total", "unknown")]
            continue
        values.append((f"{plural}_window", str(snap.window[kind])))
        values.append((f"{plural}_total", str(snap.totals[kind])))
    values += [("frame_bytes", str(snap.frame_bytes)), ("publishers", str(transport.publishers)),
               ("dds_profile", transport.profile), ("qos", transport.qos), ("qos_mismatch", transport.qos_mismatch)]
    return StatusReport(f"{node_name}: camera {topic}", level, message, topic, tuple(values))


def device_report(node_name: str, snap: DeviceSnapshot, engine: Any = None) -> StatusReport:
    """`engine`: the engine's DeviceStats for this device (errors, hangs, in_rotation), when it has one."""
    if engine is not None and not engine.in_rotation:
        level, message = WARN, (f"out of rotation (engine: {engine.errors} errors, {engine.hangs} hangs); "
                                "its frames run on other devices")
    elif snap.errors_in_window:
        level, message = WARN, f"{snap.errors_in_window} failed frames in the window"
    else:
        level, message = OK, f"{snap.rate_hz:.1f} frames/s, p95 inference {_fmt(snap.inference_ms['p95'])} ms"
    values = (
        ("frames_total", str(snap.frames)),
        ("frames_window", str(snap.frames_in_window)),
        ("rate_hz", _fmt(snap.rate_hz)),
        *_percentile_values("inference", snap.inference_ms),
        ("errors_total", str(snap.errors)),
        ("errors_window", str(snap.errors_in_window)),
    )
    if engine is not None:
        values += (("in_rotation", str(bool(engine.in_rotation)).lower()),
                   ("engine_errors_total", str(engine.errors)), ("engine_hangs_total", str(engine.hangs)))
    return StatusReport(f"{node_name}: device {snap.label}", level, message, snap.label, values)
