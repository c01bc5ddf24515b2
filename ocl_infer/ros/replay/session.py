"""One replay session: bag → DDS (+ /clock) → vehicle_detector node(s) → recorded outputs → report.

The order matters for a clean result: the clock runs and the recorder listens before the first frame; after
the last frame we wait until every frame is accounted for (one FrameTiming each) or the outputs go quiet;
then the output bag is closed before the nodes are stopped, so Ctrl-C at any point leaves a readable bag
and no child process behind.
"""

import contextlib
import os
import signal
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
from ocl_infer.bag.writer import BAG_FOLDER, is_bag
from ocl_infer.errors import BagError, ConfigError, SetupError
from ocl_infer.fsutil import refuse_existing, staged_output
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
    force: bool = False  # replace an existing output_bag, if it is a rosbag2 folder

    def __post_init__(self) -> None:
        if self.rate is not None and not self.rate > 0:
            raise ConfigError(f"rate: must be > 0, got {self.rate}")
        if self.loop < 1:
            raise ConfigError(f"loop: must be ≥ 1, got {self.loop}")
        if self.params_file is not None and not Path(self.params_file).is_file():
            raise ConfigError(f"params: no such file {self.params_file}")
        if self.output_bag is not None:  # checked again when the finished bag is moved into place
            refuse_existing(Path(self.output_bag), self.force, is_bag, BAG_FOLDER, BagError)


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


@dataclass
class _Played:
    """What one playback produced: the frames sent, whether Ctrl-C ended it, and its timings."""

    sent: list[tuple[str, int]] = field(default_factory=list)
    interrupted: bool = False
    recorded: bool = False  # the output bag was created
    bag_closed: bool = False  # ... and closed: complete and readable
    wall_s: float = 0.0
    play_s: float = 0.0
    player: "BagPlayer | None" = None


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Ctrl-C while the output bag is being closed waits until it is closed (a fraction of a second), then
    interrupts as usual: an impatient second Ctrl-C must not leave a half-closed bag that is then discarded."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; a SIGINT cannot reach us here anyway
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


class _NothingRecorded(Exception):
    """Ctrl-C came before the output bag existed: nothing to move into place (internal)."""


@contextlib.contextmanager
def _output_bag(opts: ReplayOptions) -> Iterator[Path]:
    """Where the recorder writes: for `-o`, a staged path moved to `opts.output_bag` only when the replay ends
    (finished or Ctrl-C, with the bag closed); a failure removes it, so the disk is as it was. Without `-o`, a
    temporary bag removed after the report is built."""
    if opts.output_bag is None:
        with tempfile.TemporaryDirectory(prefix="ocl_infer_replay_") as tmp:
            yield Path(tmp) / "outputs"
        return
    with contextlib.suppress(_NothingRecorded), staged_output(
            opts.output_bag, force=opts.force, replaceable=is_bag, kind=BAG_FOLDER, error=BagError) as staged:
        yield staged
        if not staged.exists():
            raise _NothingRecorded


def run_replay(
    opts: ReplayOptions, log: Callable[[str], None] = print, progress: bool = False
) -> ReplayResult:
    """Replay `opts.bag` through detector node(s) and return the report; Ctrl-C ends it cleanly.

    The caller sets the process environment first (DDS on loopback, the shared-memory profile: see
    `ocl_infer.cli.replay.prepare_environment`); this library reads it and never changes it."""
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
    # Beside the output bag (it outlives a failed run: it says why); with no output bag, in the temp folder.
    node_log = (opts.output_bag.parent / f"{opts.output_bag.name}.nodes.log" if opts.output_bag is not None
                else Path(tempfile.gettempdir()) / f"ocl_infer_replay_{os.getpid()}.nodes.log")
    bar = _Progress(sum(counts[t] for t in topics) * opts.loop, progress)
    with _output_bag(opts) as out_bag:
        played = _play(opts, info, topics, {t: types[t] for t in topics}, out_bag, node_log, bar, log)
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
            "wall_s": round(played.wall_s, 3),
            "play_s": round(played.play_s, 3),  # publishing alone; at --max-speed, sent / play_s is the rate
            "interrupted": played.interrupted,
        }
        last_sent = max((stamp for _, stamp in played.sent), default=None)
        try:
            outputs = read_outputs(out_bag, last_sent) if played.recorded else None
            report = build_report(played.sent, outputs, meta) if outputs is not None else {**meta}
        except KeyboardInterrupt:
            # Another Ctrl-C while the report is read back: the bag is complete, so keep it (moved into place
            # as after one Ctrl-C); only the report is cut short.
            if not played.bag_closed:
                raise
            played.interrupted = True
            report = {**meta, "interrupted": True}
    output_bag = opts.output_bag if played.recorded else None
    return ReplayResult(report, output_bag, played.interrupted, None if opts.external else node_log, played.sent)


def _play(opts: ReplayOptions, info: BagInfo, topics: list[str], types: dict[str, str], out_bag: Path,
          node_log: Path, bar: _Progress, log: Callable[[str], None]) -> _Played:
    """Start the nodes and our ROS side, play, drain, and close everything again: one `ExitStack` owns every
    resource and closes them in the reverse order of opening, so the output bag is closed before the nodes
    are stopped. Ctrl-C stops playing and keeps what was recorded; any other error propagates after the
    clean-up."""
    played = _Played()
    try:
        with contextlib.ExitStack() as resources:
            try:
                _open_and_play(resources, played, opts, info, topics, types, out_bag, node_log, bar, log)
            except KeyboardInterrupt:
                # Ctrl-C: stop playing, keep what was recorded.
                played.interrupted = True
                played.wall_s = played.play_s = 0.0
                if played.player is not None:
                    played.player.stop.set()
                bar.draw(final=True)
                log("interrupted: closing the output bag and stopping the nodes")
    except KeyboardInterrupt:
        # A second Ctrl-C during the clean-up: every resource was still closed (the stack runs them all); once
        # the bag is complete, keep it as after one Ctrl-C.
        if not played.bag_closed:
            raise
        played.interrupted = True
    played.sent = list(played.player.sent) if played.player is not None else []
    return played


def _open_and_play(resources: contextlib.ExitStack, played: _Played, opts: ReplayOptions, info: BagInfo,
                   topics: list[str], types: dict[str, str], out_bag: Path, node_log: Path, bar: _Progress,
                   log: Callable[[str], None]) -> None:
    """Each resource is handed to `resources` as soon as it exists; `played` records how far we got."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    from ocl_infer.ros.replay.detector_processes import DetectorProcesses, node_commands
    from ocl_infer.ros.replay.player import BagPlayer, SimClock
    from ocl_infer.ros.replay.recorder import OutputRecorder

    procs = None
    if not opts.external:
        procs = DetectorProcesses(node_commands(types, opts.params_file, opts.node_executable,
                                                opts.node_parameters), node_log)
        resources.callback(procs.stop)  # last: the nodes keep publishing until the bag is closed
    context = Context()
    # Our own SIGINT handling (KeyboardInterrupt): rclpy's handler would shut the context down under us before
    # the output bag is closed.
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    resources.callback(rclpy.try_shutdown, context=context)
    if procs is not None:
        procs.start()
        log(f"started vehicle_detector (pid {', '.join(str(p.pid) for p in procs.procs)}), log {node_log}")
    node = Node("ocl_infer_replay", context=context)
    resources.callback(node.destroy_node)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, name="replay-spin", daemon=True)
    spin.start()
    resources.callback(spin.join, timeout=2.0)
    resources.callback(executor.shutdown, timeout_sec=2.0)
    clock = SimClock(info.start_ns, rate=0.0)  # paused at the first stamp until playback starts
    player = played.player = BagPlayer(node, types, clock, opts.clock_hz)
    recorder = OutputRecorder(node, out_bag, clock, _storage(info), on_timing=bar.on_timing)
    played.recorded = True

    def close_bag() -> None:
        with _sigint_deferred():
            recorder.close()
            played.bag_closed = True

    resources.callback(close_bag)
    player.start_clock()
    resources.callback(player.stop_clock)
    resources.callback(player.stop.set)
    # A node serving one camera publishes detections/timing once; several cameras: once per camera.
    outputs = 1 if opts.external or len(topics) == 1 else len(topics)
    _wait_ready(player, recorder, procs, outputs, opts.ready_timeout_s, log)
    node.create_timer(0.5, recorder.discover)  # outputs that appear later (/diagnostics, more cameras)
    start = time.monotonic()
    player.play(_items(opts.bag, topics, info, opts.loop), opts.rate, bar.on_sent)
    played.play_s = time.monotonic() - start
    with bar.lock:
        bar.last_output = time.monotonic()  # the idle timer starts when the last frame has left
        bar.sent_all = True
    _drain(bar, len(player.sent), procs, opts.drain_idle_s)
    bar.draw(final=True)
    played.wall_s = time.monotonic() - start


def _storage(info: BagInfo) -> str:
    """The output bag's storage: the input's, where the recorder can write it."""
    return info.storage if info.storage in ("sqlite3", "mcap") else "sqlite3"


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
