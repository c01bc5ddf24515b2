"""Diagnostic levels from frame statistics: the rules of docs/architecture.md, without ROS.

Per camera:
- ERROR: no frame for `stall_periods` expected periods (or none at all after that long), or every frame processed
  in the window (at least 3) missed the deadline.
- WARN: a frame is overdue (more than input_deadline_tolerance periods since the last), or in the window there
  were misses, stale/overload drops, decode or inference errors, input gaps, or the input rate was below
  expected_rate_hz / tolerance (judged once the node has run a full window).
- OK otherwise.
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


def camera_level(snap: CameraSnapshot, options: NodeOptions) -> tuple[int, str]:
    """(level, message) for one camera."""
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
    if (
        period is not None
        and snap.uptime_s >= snap.window_s
        and snap.input_rate_hz < options.expected_rate_hz / options.input_deadline_tolerance
    ):
        causes.append(f"input {snap.input_rate_hz:.1f} Hz below expected {options.expected_rate_hz:g} Hz")
    if causes:
        return WARN, "; ".join(causes) + f" in the last {snap.window_s:g} s"
    if since is None:
        return OK, "waiting for the first frame"
    return OK, f"{snap.output_rate_hz:.1f} Hz, p95 latency {_fmt(snap.latency_ms['p95'])} ms"


def camera_report(node_name: str, topic: str, snap: CameraSnapshot, options: NodeOptions) -> StatusReport:
    level, message = camera_level(snap, options)
    values = [
        ("input_rate_hz", _fmt(snap.input_rate_hz)),
        ("output_rate_hz", _fmt(snap.output_rate_hz)),
        ("expected_rate_hz", _fmt(options.expected_rate_hz)),
        ("deadline_ms", _fmt(options.deadline_ms)),
        ("latency_p50_ms", _fmt(snap.latency_ms["p50"])),
        ("latency_p95_ms", _fmt(snap.latency_ms["p95"])),
        ("latency_p99_ms", _fmt(snap.latency_ms["p99"])),
        ("latency_max_ms", _fmt(snap.latency_ms["max"])),
        ("since_last_frame_s", "never" if snap.since_last_frame_s is None else _fmt(snap.since_last_frame_s)),
        ("window_s", _fmt(snap.window_s)),
    ]
    for kind in ("received", "published", "miss", "stale_drop", "overload_drop", "decode_error",
                 "inference_error", "input_gap", "output_gap"):
        plural = {"received": "received", "published": "published", "miss": "misses"}.get(kind, kind + "s")
        values.append((f"{plural}_window", str(snap.window[kind])))
        values.append((f"{plural}_total", str(snap.totals[kind])))
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
        ("inference_p50_ms", _fmt(snap.inference_ms["p50"])),
        ("inference_p95_ms", _fmt(snap.inference_ms["p95"])),
        ("inference_p99_ms", _fmt(snap.inference_ms["p99"])),
        ("inference_max_ms", _fmt(snap.inference_ms["max"])),
        ("errors_total", str(snap.errors)),
        ("errors_window", str(snap.errors_in_window)),
    )
    if engine is not None:
        values += (("in_rotation", str(bool(engine.in_rotation)).lower()),
                   ("engine_errors_total", str(engine.errors)), ("engine_hangs_total", str(engine.hangs)))
    return StatusReport(f"{node_name}: device {snap.label}", level, message, snap.label, values)
