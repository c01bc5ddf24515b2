"""Publish a bag's camera messages as raw CDR bytes, paced by bag time, with /clock for sim-time nodes."""

import importlib
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from ocl_infer.errors import BagError


def message_class(msgtype: str) -> type:
    """rclpy message class for "pkg/msg/Name"; BagError naming the package when it is not installed."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as err:
        raise BagError(f"message type {msgtype} is not available to rclpy (is {package} installed?)") from err


class SimClock:
    """Simulation time = anchor + (wall elapsed) × rate; moved forward (never back) to each played stamp."""

    def __init__(self, start_ns: int, rate: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._anchor_sim = start_ns
        self._anchor_wall = time.monotonic_ns()
        self.rate = rate

    def now(self) -> int:
        with self._lock:
            return self._anchor_sim + int((time.monotonic_ns() - self._anchor_wall) * self.rate)

    def jump_to(self, sim_ns: int, rate: float | None = None) -> int:
        """Set the clock to max(now, sim_ns) and optionally change its rate; returns the new time."""
        with self._lock:
            wall = time.monotonic_ns()
            current = self._anchor_sim + int((wall - self._anchor_wall) * self.rate)
            self._anchor_sim, self._anchor_wall = max(current, sim_ns), wall
            if rate is not None:
                self.rate = rate
            return self._anchor_sim


def set_header_stamp(raw: bytes, stamp_ns: int) -> bytes:
    """CDR bytes of a message starting with std_msgs/Header, with its stamp replaced (for --loop)."""
    out = bytearray(raw)
    endian = "<" if out[1] == 1 else ">"
    struct.pack_into(endian + "iI", out, 4, stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
    return bytes(out)


@dataclass
class PlayItem:
    topic: str
    msgtype: str
    time_ns: int  # bag (receive) time: paces playback and drives /clock
    stamp_ns: int  # header stamp: how outputs refer back to this frame
    raw: bytes


class BagPlayer:
    """Publishers for camera topics and /clock on `node`; `play` blocks until done or `stop` is set.

    `rate` None means as fast as possible (the clock still jumps to each stamp, so sim time runs ahead of
    wall time and deadlines in sim time get tight, as on a faster camera).
    """

    def __init__(self, node: Node, topics: dict[str, str], clock: SimClock, clock_hz: float = 200.0) -> None:
        self.node = node
        self.clock = clock
        # Reliable, keep-last: a late subscriber still gets frames in order; the node's own latest-slot
        # decides what to drop (that is what the replay measures).
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        # Like a camera driver, the player offers no QoS deadline; vehicle_detector (input_deadline auto) then
        # asks for none. A node that does (input_deadline qos, or another node) logs it itself: here it is noise.
        events = PublisherEventCallbacks(incompatible_qos=lambda event: node.get_logger().debug(
            f"incompatible QoS on a camera topic ({event.last_policy_kind}); the subscriber adapts"))
        self.publishers = {t: node.create_publisher(message_class(m), t, qos, event_callbacks=events)
                           for t, m in topics.items()}
        from rosgraph_msgs.msg import Clock

        self._clock_msg = Clock
        self._clock_pub = node.create_publisher(Clock, "/clock", 10)
        self._clock_period = 1.0 / clock_hz
        self._clock_thread: threading.Thread | None = None
        self.stop = threading.Event()
        self.sent: list[tuple[str, int]] = []  # (topic, header stamp) in send order

    def publish_clock(self, sim_ns: int | None = None) -> None:
        t = self.clock.now() if sim_ns is None else sim_ns
        msg = self._clock_msg()
        msg.clock.sec, msg.clock.nanosec = t // 1_000_000_000, t % 1_000_000_000
        self._clock_pub.publish(msg)

    def start_clock(self) -> None:
        """Publish /clock at clock_hz from a thread until `stop_clock` (sim-time timers need it from the start)."""

        def loop() -> None:
            while not self._clock_stop.wait(self._clock_period):
                self.publish_clock()

        self._clock_stop = threading.Event()
        self._clock_thread = threading.Thread(target=loop, name="replay-clock", daemon=True)
        self._clock_thread.start()

    def stop_clock(self) -> None:
        if self._clock_thread is not None:
            self._clock_stop.set()
            self._clock_thread.join()
            self._clock_thread = None

    def subscriber_counts(self) -> dict[str, int]:
        return {t: p.get_subscription_count() for t, p in self.publishers.items()}

    def play(
        self, items: Iterable[PlayItem], rate: float | None, on_sent: Callable[[PlayItem], None] | None = None
    ) -> int:
        """Publish every item at its bag time (scaled by `rate`), or back to back when `rate` is None."""
        first: int | None = None
        wall0 = time.monotonic()
        n = 0
        for item in items:
            if self.stop.is_set():
                break
            if first is None:
                first = item.time_ns
                self.clock.jump_to(item.time_ns, rate or 1.0)
                wall0 = time.monotonic()
            if rate is not None:
                due = wall0 + (item.time_ns - first) / 1e9 / rate
                while not self.stop.is_set() and (delay := due - time.monotonic()) > 0:
                    self.stop.wait(min(delay, 0.1))
                if self.stop.is_set():
                    break
            # The clock reaches the frame's time as the frame leaves: its age starts at zero.
            self.publish_clock(self.clock.jump_to(item.time_ns))
            self.publishers[item.topic].publish(item.raw)
            self.sent.append((item.topic, item.stamp_ns))
            n += 1
            if on_sent is not None:
                on_sent(item)
        if rate is None:
            self.clock.jump_to(0, 1.0)  # after a max-speed burst the clock goes on in real time
        return n
