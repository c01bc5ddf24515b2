"""QoS profiles of the vehicle_detector, from NodeOptions, and the hint for an incompatible-QoS event.

The image subscription is chosen against what the camera's publishers offer (`OfferedQoS`, read from the ROS
graph before subscribing): DDS matches a reader only with writers that offer at least what it requests, and a
mismatch makes both sides log and delivers nothing. `image_qos_for` never requests more than every publisher
offers, so the QoS profiles camera drivers use (sensor data; reliable/volatile; reliable/transient local)
match at the first subscription, with no warning and no frame lost to a re-subscription.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy

from ocl_infer.ros.options import NodeOptions


def image_qos(options: NodeOptions) -> QoSProfile:
    """Camera subscription before adapting it to the camera: sensor-data style by default (best effort, newest
    frame only), volatile, no deadline. `image_qos_for` adapts it and adds the DDS deadline where it can."""
    reliability = (
        ReliabilityPolicy.RELIABLE if options.qos_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=options.qos_depth,
        reliability=reliability,
        durability=DurabilityPolicy.VOLATILE,
    )


# The RMW reports "no deadline" as 2**63 - 1 ns (or 0 for a default profile); any deadline this long is none.
NO_DEADLINE_FROM_NS = 10**17  # about 3 years


@dataclass(frozen=True)
class OfferedQoS:
    """What one camera publisher offers (from get_publishers_info_by_topic)."""

    reliable: bool
    transient_local: bool = False
    deadline_s: float | None = None  # None: no deadline offered

    @classmethod
    def from_profile(cls, profile: QoSProfile) -> OfferedQoS:
        ns = profile.deadline.nanoseconds
        return cls(reliable=profile.reliability == ReliabilityPolicy.RELIABLE,
                   transient_local=profile.durability == DurabilityPolicy.TRANSIENT_LOCAL,
                   deadline_s=None if ns <= 0 or ns >= NO_DEADLINE_FROM_NS else ns / 1e9)

    def describe(self) -> str:
        return (f"{'reliable' if self.reliable else 'best effort'}, "
                f"{'transient local' if self.transient_local else 'volatile'}, "
                + ("no deadline" if self.deadline_s is None else f"deadline {self.deadline_s * 1000:g} ms"))


@dataclass(frozen=True)
class ImageQoSChoice:
    """The image subscription's QoS, whether it uses a DDS deadline, and what the node should say about it."""

    profile: QoSProfile
    dds_deadline: bool
    notes: tuple[str, ...] = ()  # adaptations to the camera (informational, logged once)
    mismatch: str = ""  # a publisher this subscription cannot match, and the fix (logged once, on /diagnostics)


def image_qos_for(options: NodeOptions, offered: Sequence[OfferedQoS]) -> ImageQoSChoice:
    """The image subscription that every publisher in `offered` matches (see the module docstring).

    - reliability: `qos_reliability`, but best effort as soon as one publisher is best effort (a reliable reader
      matches only reliable writers); best effort takes frames from every publisher.
    - durability: volatile, which every writer matches (only the newest frame matters; no history replay).
    - deadline (input_deadline auto): the DDS deadline only when there are publishers and each offers a deadline
      no longer than the input-deadline period; else none, and the node's watchdog counts input gaps.
      input_deadline qos keeps the DDS deadline whatever is offered (the user's choice): a publisher without a
      matching deadline is then a real mismatch, reported with the fix.
    """
    notes: list[str] = []
    mismatch = ""
    profile = image_qos(options)
    if options.qos_reliability == "reliable" and any(not o.reliable for o in offered):
        profile.reliability = ReliabilityPolicy.BEST_EFFORT
        notes.append("a camera publisher is best effort, which a reliable subscription cannot match: subscribing "
                     "best effort (qos_reliability reliable applies to reliable cameras only)")
    period = options.input_deadline_s
    deadline = False
    if period is not None and options.input_deadline == "qos":
        deadline = True
        short = [o for o in offered if o.deadline_s is None or o.deadline_s > period]
        if short:
            mismatch = (f"{len(short)} camera publisher(s) offer no deadline of at most {period * 1000:g} ms "
                        f"({short[0].describe()}), so input_deadline qos gets no frame from them: set "
                        "input_deadline:=auto or watchdog, or make the camera offer that deadline")
    elif period is not None and options.input_deadline == "auto" and offered:
        deadline = all(o.deadline_s is not None and o.deadline_s <= period for o in offered)
    if deadline:
        profile.deadline = Duration(seconds=period)
    return ImageQoSChoice(profile, deadline, tuple(notes), mismatch)


def describe_subscription(choice: ImageQoSChoice) -> str:
    """The subscription's QoS in words, for /diagnostics: 'best effort, volatile, depth 1, no deadline'."""
    p = choice.profile
    deadline = f"deadline {p.deadline.nanoseconds / 1e6:g} ms" if choice.dds_deadline else "no deadline"
    return (f"{'reliable' if p.reliability == ReliabilityPolicy.RELIABLE else 'best effort'}, volatile, "
            f"depth {p.depth}, {deadline}")


def matches_all(choice: ImageQoSChoice, offered: Sequence[OfferedQoS], check_deadline: bool = True) -> bool:
    """Whether every publisher in `offered` matches the subscription `choice` (DDS's request/offer rules for
    reliability and deadline; durability volatile matches any)."""
    reliable = choice.profile.reliability == ReliabilityPolicy.RELIABLE
    period = choice.profile.deadline.nanoseconds / 1e9 if choice.dds_deadline and check_deadline else None
    return all((o.reliable or not reliable) and (period is None or (o.deadline_s is not None
                                                                    and o.deadline_s <= period))
               for o in offered)


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


def latched_qos() -> QoSProfile:
    """label_info: reliable and transient local, depth 1, so a subscriber that comes later still gets the one
    message (what vision_msgs asks of LabelInfo, like a latched topic). A volatile subscriber matches it too."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


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
