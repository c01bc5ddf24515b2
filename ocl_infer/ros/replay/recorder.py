"""Record the detector's outputs (detections, timing, /diagnostics) as raw CDR into a rosbags writer.

Topics are found by type, like `ros2 bag record -e`: every Detection2DArray and FrameTiming topic and
/diagnostics, so one node or several (outputs under each camera's namespace) record the same way. Each raw
message is written as received; FrameTiming messages are also decoded (rosbags, no rclpy conversion) so the
replay can follow progress live. The bag is written by one thread of its own (sqlite3 objects must stay in the
thread that made them, and DDS callbacks then never wait on the disk).
"""

import queue
import threading
from collections.abc import Callable
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from ocl_infer.bag.typestore import build_typestore, require_type
from ocl_infer.errors import BagError
from ocl_infer.ros.replay.player import SimClock, message_class

DETECTIONS = "vision_msgs/msg/Detection2DArray"
TIMING = "ocl_infer_msgs/msg/FrameTiming"
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"
RECORDED_TYPES = (DETECTIONS, TIMING, DIAGNOSTICS)
STORAGE = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


class OutputRecorder:
    """Subscribes (raw) to output topics as they appear and writes them to a new bag at `path`."""

    def __init__(
        self,
        node: Node,
        path: Path,
        clock: SimClock,
        storage: str = "sqlite3",
        on_timing: Callable[[str, object], None] | None = None,
    ) -> None:
        self.node = node
        self.clock = clock
        self.on_timing = on_timing
        self.store = build_typestore()
        for msgtype in RECORDED_TYPES:
            require_type(self.store, msgtype)
        self._lock = threading.Lock()
        self._discover_lock = threading.Lock()
        self.path = path
        self.closed = False
        self._connections: dict[str, str] = {}  # topic → msgtype
        self._subscriptions: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self._queue: queue.SimpleQueue[tuple[str, str, int, bytes] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        opened = threading.Event()
        self._thread = threading.Thread(target=self._write_loop, args=(storage, opened), name="replay-recorder")
        try:
            self._thread.start()
            opened.wait()
        except BaseException:  # Ctrl-C here: stop the (non-daemon) writer, or the process never exits
            self._queue.put(None)
            raise
        if self._error is not None:
            self._thread.join()
            raise BagError(f"{path}: cannot create output bag: {self._error}") from self._error

    def _write_loop(self, storage: str, opened: threading.Event) -> None:
        try:
            writer = Writer(self.path, version=9, storage_plugin=STORAGE[storage])
            writer.open()
        except (WriterError, OSError) as err:
            self._error = err
            opened.set()
            return
        opened.set()
        conns: dict[str, object] = {}
        try:
            while (item := self._queue.get()) is not None:
                topic, msgtype, t, raw = item
                if topic not in conns:
                    conns[topic] = writer.add_connection(topic, msgtype, typestore=self.store)
                if raw:
                    writer.write(conns[topic], t, raw)  # type: ignore[arg-type]
        except Exception as err:  # storage plugins raise their own (sqlite3, mcap) errors; report, never hide
            self._error = err
        finally:
            writer.close()

    def discover(self) -> list[str]:
        """Subscribe to output topics that appeared since the last call; returns the new ones."""
        with self._discover_lock:
            return self._discover()

    def _discover(self) -> list[str]:
        new = []
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self._subscriptions:
                continue
            msgtype = next((t for t in types if t in RECORDED_TYPES), None)
            if msgtype is None or (msgtype == DIAGNOSTICS and topic != "/diagnostics"):
                continue
            self._subscribe(topic, msgtype)
            new.append(topic)
        return new

    def topics(self, msgtype: str) -> list[str]:
        return [t for t, m in self._connections.items() if m == msgtype]

    def matched(self, msgtype: str) -> list[str]:
        """Topics of `msgtype` whose subscription has matched at least one publisher (ready to record)."""
        return [
            t for t in self.topics(msgtype)
            if t in self._subscriptions and self._subscriptions[t].get_publisher_count() > 0  # type: ignore[attr-defined]
        ]

    def _qos_for(self, topic: str) -> QoSProfile:
        # Match the publishers' reliability and durability (a reliable reader would not match a best-effort
        # writer); a deep history so a burst of outputs is not lost while the writer is busy.
        infos = self.node.get_publishers_info_by_topic(topic)
        reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos) if infos else True
        latched = any(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=1000,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )

    def _subscribe(self, topic: str, msgtype: str) -> None:
        with self._lock:
            if self.closed:
                return
            self._connections[topic] = msgtype
            self.counts[topic] = 0
            self._queue.put((topic, msgtype, 0, b""))  # the connection exists even if nothing comes

        def callback(raw: bytes, topic: str = topic, msgtype: str = msgtype) -> None:
            self._write(topic, msgtype, raw)

        self._subscriptions[topic] = self.node.create_subscription(
            message_class(msgtype), topic, callback, self._qos_for(topic), raw=True
        )

    def _write(self, topic: str, msgtype: str, raw: bytes) -> None:
        with self._lock:
            if self.closed:
                return
            self._queue.put((topic, msgtype, self.clock.now(), raw))
            self.counts[topic] += 1
        if msgtype == TIMING and self.on_timing is not None:
            self.on_timing(topic, self.store.deserialize_cdr(raw, msgtype))

    def close(self) -> None:
        """Close the bag (idempotent); it is complete and readable afterwards. Raises BagError on write errors."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._queue.put(None)
        self._thread.join()
        for sub in self._subscriptions.values():
            self.node.destroy_subscription(sub)  # type: ignore[arg-type]
        self._subscriptions.clear()
        if self._error is not None:
            raise BagError(f"{self.path}: writing the output bag failed: {self._error}") from self._error
