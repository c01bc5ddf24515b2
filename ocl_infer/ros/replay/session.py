"""One replay session: bag → DDS (+ /clock) → vehicle_detector node(s) → recorded outputs → report.

The order matters for a clean result: the clock runs and the recorder listens before the first frame; after
the last frame we wait until every frame is accounted for (one FrameTiming each) or the outputs go quiet;
then the output bag is closed before the nodes are stopped, so Ctrl-C at any point leaves a readable bag
and no child process behind.
"""

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ocl_infer.bag.reader import BagInfo, header_stamp_ns, inspect_bag, iter_raw_messages, open_bag
from ocl_infer.bag.reader import select_camera_topics as choose_topics
from ocl_infer.bag.report import OUTCOMES, build_report, read_outputs
from ocl_infer.errors import BagError, ConfigError, SetupError
from ocl_infer.ros.replay.player import PlayItem, set_header_stamp

if TYPE_CHECKING:
    from ocl_infer.ros.replay.detector_processes import DetectorProcesses
    from ocl_infer.ros.replay.player import BagPlayer
    from ocl_infer.ros.replay.recorder import OutputRecorder


@dataclass(frozen=True)
class ReplayOptions:
    bag: Path
    output_bag: Path | None = None  # None: a temporary bag, removed after the report is built
    rate: float | None = 1.0  # None: as fast as possible
    topics: tuple[str, ...] = ()  # () : every Image / CompressedImage topic
    loop: int = 1
    params_file: Path | None = None
    external: bool = False
    ready_timeout_s: float = 120.0  # node start-up includes model load and kernel builds
    drain_idle_s: float = 15.0  # give up waiting for outputs after this long without one
    clock_hz: float = 200.0  # the nodes see sim time in these steps: latency resolution 5 ms
    node_executable: str | None = None
    node_parameters: tuple[tuple[str, str], ...] = ()  # (name, value) set with -p after the params file

    def __post_init__(self) -> None:
        if self.rate is not None and not self.rate > 0:
            raise ConfigError(f"rate: must be > 0, got {self.rate}")
        if self.loop < 1:
            raise ConfigError(f"loop: must be ≥ 1, got {self.loop}")
        if self.params_file is not None and not Path(self.params_file).is_file():
            raise ConfigError(f"params: no such file {self.params_file}")
        if self.output_bag is not None and Path(self.output_bag).exists():
            raise BagError(f"{self.output_bag}: exists already, not overwriting")


@dataclass
class ReplayResult:
    report: dict[str, object]
    output_bag: Path | None
    interrupted: bool = False
    node_log: Path | None = None
    sent: list[tuple[str, int]] = field(default_factory=list)


class _Progress:
    """Live counts from FrameTiming messages, drawn as one stderr line."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.lock = threading.Lock()
        self.sent = 0
        self.outcomes: dict[str, int] = {}
        self.last_output = time.monotonic()
        self.sent_all = False
        self.longest_gap = 0.0  # longest wait between FrameTimings after the last frame was sent
        self._drawn = 0.0
        self._state = (-1, -1)
        self._width = 0

    def on_sent(self, _item: PlayItem) -> None:
        self.sent += 1
        self.draw()

    def on_timing(self, _topic: str, msg: object) -> None:
        name = OUTCOMES.get(int(msg.outcome), "other")  # type: ignore[attr-defined]
        with self.lock:
            self.outcomes[name] = self.outcomes.get(name, 0) + 1
            now = time.monotonic()
            if self.sent_all:  # gaps while frames still arrive say little about the node's pace
                self.longest_gap = max(self.longest_gap, now - self.last_output)
            self.last_output = now
        self.draw()

    @property
    def accounted(self) -> int:
        with self.lock:
            return sum(self.outcomes.values())

    def draw(self, final: bool = False) -> None:
        if not self.enabled or (not final and time.monotonic() - self._drawn < 0.1):
            return
        state = (self.sent, self.accounted)
        if not final and state == self._state:
            return
        self._drawn, self._state = time.monotonic(), state
        width = 30
        done = int(width * self.accounted / max(1, self.total))
        o = self.outcomes
        processed = o.get("published", 0) + o.get("miss", 0)
        dropped = o.get("stale_drop", 0) + o.get("overload_drop", 0)
        line = (
            f"\r[{'#' * done}{'.' * (width - done)}] sent {self.sent}/{self.total}  processed {processed}  "
            f"missed {o.get('miss', 0)}  dropped {dropped}"
        )
        pad = max(0, self._width - len(line))  # wipe what a longer previous line left behind
        self._width = len(line)
        print(line + " " * pad + ("\n" if final else ""), end="", file=sys.stderr, flush=True)


def _items(bag: Path, topics: list[str], info: BagInfo, loops: int) -> Iterator[PlayItem]:
    """The bag's camera messages, `loops` times; later loops shifted in time (stamps too) to stay monotonic."""
    count = sum(t.count for t in info.topics if t.name in topics)
    span = max(0, info.end_ns - info.start_ns)
    period = span // max(1, count - 1) if count > 1 else 100_000_000
    for k in range(loops):
        offset = k * (span + period)
        reader = open_bag(bag)
        try:
            for topic, msgtype, t, raw in iter_raw_messages(reader, topics):
                stamp = header_stamp_ns(raw) + offset
                data = set_header_stamp(raw, stamp) if offset else bytes(raw)
                yield PlayItem(topic, msgtype, t + offset, stamp, data)
        finally:
            reader.close()


def _warn_about_stamps(bag: Path, topics: list[str], log: Callable[[str], None]) -> None:
    """The node measures age and latency from header stamps: say so when they are far from the record time."""
    reader = open_bag(bag)
    try:
        seen: set[str] = set()
        for topic, _, t, raw in iter_raw_messages(reader, topics):
            if topic in seen:
                continue
            seen.add(topic)
            offset_s = (t - header_stamp_ns(raw)) / 1e9
            if abs(offset_s) > 1.0:
                log(f"  warning  {topic}: header stamps are {offset_s:.1f} s from the record time; the node "
                    "measures latency from header stamps, so expect stale drops")
            if len(seen) == len(topics):
                break
    finally:
        reader.close()


def ensure_local_ros_env() -> None:
    """DDS discovery on loopback only and the shared-memory profile for big images, unless already set."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") or "LOCALHOST"
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    from ocl_infer.ros.dds_profile import use_shm_profile

    use_shm_profile()  # the checkout's or the installed profile; a Fast DDS set-up of the user's own wins


def run_replay(
    opts: ReplayOptions, log: Callable[[str], None] = print, progress: bool = False
) -> ReplayResult:
    """Replay `opts.bag` through detector node(s) and return the report; Ctrl-C ends it cleanly."""
    ensure_local_ros_env()
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    from ocl_infer.ros.replay.detector_processes import DetectorProcesses, node_commands
    from ocl_infer.ros.replay.player import BagPlayer, SimClock
    from ocl_infer.ros.replay.recorder import OutputRecorder

    info = inspect_bag(opts.bag)
    topics, ignored = choose_topics(info, list(opts.topics) or None)
    types = {t.name: t.msgtype for t in info.topics}
    counts = {t.name: t.count for t in info.topics}
    log(f"bag {opts.bag} ({info.storage}, {info.duration_s:.1f} s, {info.message_count} messages)")
    for t in topics:
        log(f"  playing  {t}  {types[t]}  {counts[t]} msgs")
    for t in ignored:
        log(f"  ignored  {t}  {types[t]}  (not a camera image topic)")
    _warn_about_stamps(opts.bag, topics, log)

    tmp = None
    out_bag = opts.output_bag
    if out_bag is None:
        tmp = tempfile.TemporaryDirectory(prefix="ocl_infer_replay_")
        out_bag = Path(tmp.name) / "outputs"
    storage = info.storage if info.storage in ("sqlite3", "mcap") else "sqlite3"
    # Beside the output bag; with no output bag, in the temp folder's parent, so it survives the clean-up.
    node_log = out_bag.parent / f"{out_bag.name}.nodes.log" if tmp is None else Path(
        tempfile.gettempdir()) / f"ocl_infer_replay_{os.getpid()}.nodes.log"
    total = sum(counts[t] for t in topics) * opts.loop

    procs = None
    if not opts.external:
        commands = node_commands(
            {t: types[t] for t in topics}, opts.params_file, opts.node_executable, opts.node_parameters
        )
        procs = DetectorProcesses(commands, node_log)
    bar = _Progress(total, progress)
    context = Context()
    # Our own SIGINT handling (KeyboardInterrupt): rclpy's handler would shut the context down under us
    # before the output bag is closed.
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = executor = spin = recorder = player = None
    interrupted = False
    failed = False
    try:
        if procs is not None:
            procs.start()
            log(f"started vehicle_detector (pid {', '.join(str(p.pid) for p in procs.procs)}), log {node_log}")
        node = Node("ocl_infer_replay", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spin = threading.Thread(target=executor.spin, name="replay-spin", daemon=True)
        spin.start()
        clock = SimClock(info.start_ns, rate=0.0)  # paused at the first stamp until playback starts
        player = BagPlayer(node, {t: types[t] for t in topics}, clock, opts.clock_hz)
        recorder = OutputRecorder(node, out_bag, clock, storage, on_timing=bar.on_timing)
        player.start_clock()
        # A node serving one camera publishes detections/timing once; several cameras: once per camera.
        outputs = 1 if opts.external or len(topics) == 1 else len(topics)
        _wait_ready(player, recorder, procs, outputs, opts.ready_timeout_s, log)
        node.create_timer(0.5, recorder.discover)  # outputs that appear later (/diagnostics, more cameras)
        start = time.monotonic()
        player.play(_items(opts.bag, topics, info, opts.loop), opts.rate, bar.on_sent)
        play_s = time.monotonic() - start
        with bar.lock:
            bar.last_output = time.monotonic()  # the idle timer starts when the last frame has left
            bar.sent_all = True
        _drain(bar, len(player.sent), procs, opts.drain_idle_s)
        bar.draw(final=True)
        wall = time.monotonic() - start
    except BaseException as err:
        if not isinstance(err, KeyboardInterrupt):
            failed = True
            raise
        # Ctrl-C: stop playing, keep what was recorded.
        interrupted = True
        wall = play_s = 0.0
        if player is not None:
            player.stop.set()
        bar.draw(final=True)
        log("interrupted: closing the output bag and stopping the nodes")
    finally:
        if player is not None:
            player.stop.set()
            player.stop_clock()
        if recorder is not None:
            recorder.close()
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if spin is not None:
            spin.join(timeout=2.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
        if procs is not None:
            procs.stop()
        if failed and player is not None and not player.sent and recorder is not None:
            shutil.rmtree(out_bag, ignore_errors=True)  # nothing was played: leave no empty output bag
        if failed and tmp is not None:
            tmp.cleanup()
    sent = list(player.sent) if player is not None else []
    meta = {
        "bag": str(opts.bag),
        "output_bag": str(opts.output_bag) if opts.output_bag else None,
        "topics": topics,
        "ignored_topics": ignored,
        "rate": opts.rate,
        "max_speed": opts.rate is None,
        "loops": opts.loop,
        "external_nodes": opts.external,
        "clock_hz": opts.clock_hz,
        "wall_s": round(wall, 3),
        "play_s": round(play_s, 3),  # publishing alone; at --max-speed, sent / play_s is the replay's rate
        "interrupted": interrupted,
    }
    last_sent = max((stamp for _, stamp in sent), default=None)
    outputs = read_outputs(out_bag, last_sent) if recorder is not None else None
    report = build_report(sent, outputs, meta) if outputs is not None else {**meta}
    if tmp is not None:
        tmp.cleanup()
    return ReplayResult(report, opts.output_bag, interrupted, node_log if procs else None, sent)


def _wait_ready(
    player: "BagPlayer", recorder: "OutputRecorder", procs: "DetectorProcesses | None", outputs: int,
    timeout_s: float, log: Callable[[str], None],
) -> None:
    """Until every camera topic has a subscriber (the node subscribes once its detector is warm) and the
    recorder's readers have matched `outputs` timing and detections publishers; else a SetupError that says why."""
    from ocl_infer.ros.replay.recorder import DETECTIONS, TIMING

    deadline = time.monotonic() + timeout_s
    while True:
        recorder.discover()
        if procs is not None and (why := procs.failed()):
            raise SetupError(f"vehicle_detector did not start: {why}")
        subs = player.subscriber_counts()
        timing, detections = recorder.matched(TIMING), recorder.matched(DETECTIONS)
        if all(subs.values()) and len(timing) >= outputs and len(detections) >= outputs:
            time.sleep(0.3)  # matching is seen from the reader side first; let the writers see it too
            log(f"node ready: subscribed to {', '.join(subs)}; recording {', '.join(recorder.counts)}")
            return
        if time.monotonic() > deadline:
            missing = [t for t, n in subs.items() if not n]
            raise SetupError(
                f"no detector ready after {timeout_s:.0f} s: "
                + (f"no subscriber on {', '.join(missing)}" if missing else "no timing/detections topic published")
                + ("; is the node running in this ROS_DOMAIN_ID with loopback discovery?" if procs is None else "")
            )
        time.sleep(0.1)


def _drain(bar: _Progress, sent: int, procs: "DetectorProcesses | None", idle_s: float) -> None:
    """Wait until every sent frame has its FrameTiming, the node died, or outputs stopped: no FrameTiming for
    4× the longest gap seen since the last frame left (at least 3 s; `idle_s` at most, and before any came).

    Frames still missing then never reached the node (a best-effort, depth-1 reader overwritten during a
    --max-speed burst): the report counts them as undelivered rather than waiting for ever.
    """
    while bar.accounted < sent:
        accounted = bar.accounted  # takes bar.lock itself
        with bar.lock:
            quiet = time.monotonic() - bar.last_output
            limit = min(idle_s, max(3.0, 4 * bar.longest_gap)) if accounted else idle_s
        if quiet > limit:
            return
        if procs is not None and procs.failed():
            return
        time.sleep(0.05)
        bar.draw()
