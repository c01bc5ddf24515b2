"""QoS profiles of the vehicle_detector, from NodeOptions, and the hint for an incompatible-QoS event."""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy

from ocl_infer.ros.options import NodeOptions


def image_qos(options: NodeOptions, with_deadline: bool = True) -> QoSProfile:
    """Camera subscription: sensor-data style by default (best effort, newest frame only).

    With input_deadline qos or auto (and `with_deadline`) it requests a DDS deadline of tolerance /
    expected_rate_hz: a missed period fires the deadline event (an input gap). DDS only matches a publisher
    that offers a deadline <= that period.
    """
    reliability = (
        ReliabilityPolicy.RELIABLE if options.qos_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    )
    profile = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=options.qos_depth,
        reliability=reliability,
        durability=DurabilityPolicy.VOLATILE,
    )
    if with_deadline and options.input_deadline in ("qos", "auto") and options.input_deadline_s is not None:
        profile.deadline = Duration(seconds=options.input_deadline_s)
    return profile


def detections_qos(options: NodeOptions) -> QoSProfile:
    """Detections: reliable, a short history, and an offered deadline of one input-deadline period.

    Offering a deadline lets a subscriber request one (<= offered is refused by DDS, >= matches); a subscriber
    that requests none always matches.
    """
    profile = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )
    period = options.input_deadline_tolerance / options.expected_rate_hz if options.expected_rate_hz > 0 else None
    if period is not None:
        profile.deadline = Duration(seconds=period)
    return profile


def records_qos(depth: int = 100) -> QoSProfile:
    """Timing and diagnostics: reliable, deep enough that a recorder loses nothing in a burst."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def incompatible_qos_hint(policy: QoSPolicyKind, topic: str, options: NodeOptions) -> str:
    """One line saying what to change when the camera's publisher and our subscription do not match."""
    name = getattr(policy, "name", str(policy))
    if policy == QoSPolicyKind.DEADLINE:
        return (
            f"{topic}: the camera publisher offers no deadline (or a longer one) than the "
            f"{(options.input_deadline_s or 0) * 1000:.0f} ms this node requests, so DDS delivers nothing from it: "
            "set input_deadline:=auto or watchdog, or make the camera offer a deadline <= that period"
        )
    if policy == QoSPolicyKind.RELIABILITY:
        return (
            f"{topic}: the camera publishes best effort but this node requests reliable: "
            "set qos_reliability:=best_effort"
        )
    if policy == QoSPolicyKind.DURABILITY:
        return f"{topic}: durability mismatch: the publisher must be at least as durable as the subscription"
    return f"{topic}: incompatible QoS policy {name} between the camera publisher and this node"
