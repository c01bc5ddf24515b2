"""The engine facade: NNEF model -> graph -> plan -> one runtime per device -> dispatcher."""

import contextlib
import logging
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ocl_infer.engine.devices.discovery import DeviceInfo
from ocl_infer.engine.devices.dispatch import DeviceStats, Dispatcher
from ocl_infer.engine.devices.facts import KERNEL_FAMILIES, facts_of
from ocl_infer.engine.devices.pipeline import Pipeline
from ocl_infer.engine.devices.selection import cl_device, select_devices
from ocl_infer.engine.graph import Graph, load_graph, save_graph
from ocl_infer.engine.kernels.image import ImageFeeds, ImageToTensor, image_feed
from ocl_infer.engine.plan import Plan, make_plan
from ocl_infer.engine.plan.split import split_graph
from ocl_infer.engine.tuning import device_table
from ocl_infer.errors import ConfigError, ModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str = "float32"


WAIT_MODES = ("auto", "spin", "block")


@dataclass(frozen=True)
class EngineOptions:
    """Engine knobs. `poison` NaN-fills activation buffers before each run (tests); `max_inflight` bounds the
    frames queued per device; a run longer than `watchdog_s` counts as a hang; failed devices return after
    `retry_s`. `warmup` runs one zero frame per device at start, so PoCL's per-kernel JIT at first launch does
    not land on the first real frame (or trip the watchdog)."""

    poison: bool = False
    warmup: bool = True
    pipeline: bool = False  # with several devices: split the layers into one stage per device
    fuse: bool = True
    max_inflight: int = 2
    watchdog_s: float = 30.0
    retry_s: float = 10.0
    disk_cache: bool = True
    prewarm: bool = True  # cold start: share compiling with a child process (runtime/prewarm.py)
    precision: str = "fp32"  # "fp16": conv weights and Winograd scratch stored as half (float math, float32 I/O)
    tuning: bool = True  # use the device's cached tuning table (engine/tuning.py); False: the kernels' rules
    batch: int | None = None  # run N frames at once: every input's first dimension becomes N at load
    kernels: str = "auto"  # kernel family: "auto" (by device type), "cpu" or "gpu" (facts_of)
    tune: bool = False  # first tune the conv steps the table lacks and save it (slow: seconds per layer shape)
    # How a run waits for its device (runtime/executor.py `spin_until_complete`): "spin" yields the CPU in a loop
    # until the frame's last command is done when the device sat idle before the frame (IDLE_BEFORE_SPIN_S; back
    # to back it sleeps), "block" always sleeps in clFinish, "auto" spins on CPU devices only. On a
    # CPU device a sleeping host thread lets an idle core halt, and the device's worker threads, woken once per
    # kernel, then wake on halted cores: YOLO11n's first frame after 0.1 s idle took 25-26 ms instead of 18
    # (docs/performance.md "After an idle pause"); spinning costs a GPU run a host core and gains nothing there.
    wait: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16"):
            raise ConfigError(f"precision must be 'fp32' or 'fp16', got {self.precision!r}")
        if self.kernels not in KERNEL_FAMILIES:
            raise ConfigError(f"kernels must be one of {list(KERNEL_FAMILIES)}, got {self.kernels!r}")
        if self.wait not in WAIT_MODES:
            raise ConfigError(f"wait must be one of {list(WAIT_MODES)}, got {self.wait!r}")
        if self.max_inflight < 1:
            raise ConfigError(f"max_inflight must be >= 1, got {self.max_inflight}")
        if self.watchdog_s <= 0 or self.retry_s < 0:
            raise ConfigError(f"watchdog_s must be > 0 and retry_s >= 0, got {self.watchdog_s}, {self.retry_s}")


def check_fits(plan: Plan, info: DeviceInfo, model: Path | str = "model") -> None:
    """Refuse before allocating anything when the plan cannot fit the device, total or per buffer (a shape in
    a model file can ask for terabytes). A ModelError naming the file: the model is too big for this device."""
    if plan.peak_bytes > info.global_mem_bytes:
        raise ModelError(f"{model}: needs {plan.peak_bytes / 2**20:.1f} MiB of device memory, {info.label} has "
                         f"{info.global_mem_bytes / 2**20:.1f} MiB")
    sizes = {**{f"constant {n}": int(a.nbytes) for n, a in plan.constants.items()},
             **{f"activation slot {i}": n for i, n in enumerate(plan.buffers.slot_bytes)},
             **{f"tensor {n}": b for n, b in plan.buffers.pinned_bytes.items()}}
    for what, n in sizes.items():
        if n > info.max_alloc_bytes:
            raise ModelError(f"{model}: {what} needs {n / 2**20:.1f} MiB in one buffer, more than the device "
                             f"memory allocation limit of {info.label} ({info.max_alloc_bytes / 2**20:.1f} MiB)")


class Engine:
    """Run an NNEF model on one or several OpenCL devices. See docs/architecture.md for the contract."""

    def __init__(self, model: str | Path, devices: str | int | Sequence[str | int] | None = None,
                 **options: Any) -> None:
        from ocl_infer.engine.runtime import DeviceRuntime
        from ocl_infer.engine.runtime.prewarm import stop_prewarm

        known = {f.name for f in fields(EngineOptions)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown engine option(s) {unknown}; known: {sorted(known)}")
        self.options = EngineOptions(**options)
        self.model_path = Path(model)
        self.graph: Graph = load_graph(model, batch=self.options.batch)
        self.devices = select_devices(devices)
        self.plans: list[Plan] = []
        self.runtimes: list[DeviceRuntime] = []
        self._children: list[subprocess.Popen[bytes]] = []  # prewarm children (runtime/prewarm.py)
        pipelined = self.options.pipeline and len(self.devices) > 1
        # one graph per device: the whole graph (frames spread over devices) or one stage each (pipeline)
        graphs = split_graph(self.graph, len(self.devices)) if pipelined else [self.graph] * len(self.devices)
        self.devices = self.devices[: len(graphs)]
        try:
            for info, graph in zip(self.devices, graphs, strict=True):
                table = None
                if self.options.tuning or self.options.tune:
                    table = device_table(info, graph, self.options.tune, self.options.fuse, self.options.precision,
                                         self.options.kernels)
                plan = make_plan(graph, facts_of(info, self.options.kernels), fuse=self.options.fuse,
                                 precision=self.options.precision, tuning=table)
                check_fits(plan, info, self.model_path)
                self.plans.append(plan)
                device = cl_device(info)
                child = self._start_prewarm(plan, device)
                try:
                    spin = self.options.wait == "spin" or (self.options.wait == "auto" and info.type == "cpu")
                    self.runtimes.append(DeviceRuntime(plan, device, info.label, poison=self.options.poison,
                                                       disk_cache=self.options.disk_cache,
                                                       prime=self.options.warmup, spin_wait=spin))
                finally:
                    stop_prewarm(child)
        except BaseException:
            self._release()
            raise
        self.inputs = {n: TensorSpec(tuple(self.graph.tensors[n].shape)) for n in self.graph.inputs}
        self.outputs = {n: TensorSpec(tuple(self.graph.tensors[n].shape)) for n in self.graph.outputs}
        if self.options.warmup:
            try:
                for rt in self.runtimes:
                    rt.run({n: np.zeros(rt.plan.shapes[n], np.float32) for n in rt.plan.inputs})
                    rt.frames = 0
            except BaseException:
                self._release()
                raise
        self._cache_writers: list[subprocess.Popen[bytes]] = []
        self._write_program_cache()
        self._dispatcher: Dispatcher | Pipeline
        if pipelined:
            self._dispatcher = Pipeline(self.runtimes, [g.inputs for g in graphs], [g.outputs for g in graphs],
                                        self.graph.outputs, self.options.max_inflight)
        else:
            self._dispatcher = Dispatcher(self.runtimes, self.options.max_inflight, self.options.watchdog_s,
                                          self.options.retry_s)
        self._closed = False

    @property
    def plan(self) -> Plan:
        return self.plans[0]

    def _check_feeds(self, feeds: Mapping[str, np.ndarray],
                     expected: Mapping[str, TensorSpec] | None = None) -> dict[str, np.ndarray]:
        expected = self.inputs if expected is None else expected
        missing = [n for n in expected if n not in feeds]
        extra = [n for n in feeds if n not in expected]
        if missing or extra:
            raise ModelError(f"{self.model_path}: inputs expected {list(expected)}; missing {missing}, "
                             f"unknown {extra}")
        out = {}
        for name, spec in expected.items():
            arr = np.asarray(feeds[name])
            if tuple(arr.shape) != spec.shape:
                raise ModelError(f"{self.model_path}: input '{name}' has shape {list(arr.shape)}, "
                                 f"expected {list(spec.shape)}")
            if not np.issubdtype(arr.dtype, np.number):
                raise ModelError(f"{self.model_path}: input '{name}' has dtype {arr.dtype}, expected float32")
            out[name] = np.ascontiguousarray(arr, dtype=np.float32)
        return out

    def submit(self, feeds: Mapping[str, np.ndarray]) -> Future:
        """Queue one frame; the Future's result is {output name: array}; `future.device` names the device."""
        if self._closed:
            raise ModelError(f"{self.model_path}: engine is closed")
        return self._dispatcher.submit(self._check_feeds(feeds))

    def submit_image(self, image: np.ndarray, transform: ImageToTensor,
                     feeds: Mapping[str, np.ndarray] | None = None) -> Future:
        """Queue one frame given as a raw H×W×C uint8 image for input `transform.input`: the device gets the
        uint8 pixels and builds the float32 NCHW input itself (resize, letterbox, colour order, scale) on the
        queue of the plan. `feeds` holds the model's other inputs, if any. Same Future as `submit`. The frame is
        read (not copied) when its device runs it: leave it unchanged until the Future is done. An engine with a
        batch of N > 1 takes its frames through `submit_images`."""
        return self.submit_images([image], [transform], feeds)

    def submit_images(self, images: Sequence[np.ndarray], transforms: Sequence[ImageToTensor],
                      feeds: Mapping[str, np.ndarray] | None = None) -> Future:
        """Queue a batch of raw uint8 frames for one image input, `transforms[n]` placing `images[n]` into image
        n of the N×3×H×W input (each camera has its own size, so its own letterbox): as `submit_image`, each
        frame is uploaded as uint8 into its own device buffer and letterboxed by the device into its slice of the
        input. There must be exactly N frames (the engine's `batch`), all for the same input."""
        if self._closed:
            raise ModelError(f"{self.model_path}: engine is closed")
        if len(images) != len(transforms):
            raise ModelError(f"{self.model_path}: {len(images)} images but {len(transforms)} transforms; give one "
                             "ImageToTensor per image")
        names = sorted({t.input for t in transforms})
        if len(names) != 1:
            raise ModelError(f"{self.model_path}: the transforms of one batch must name one image input, got "
                             f"{names or 'none'}")
        name = names[0]
        if name not in self.inputs:
            raise ModelError(f"{self.model_path}: image input {name!r} is not a model input ({list(self.inputs)})")
        shape = self.inputs[name].shape
        frames: ImageFeeds = tuple(image_feed(img, t, shape, f"image {n} for input '{name}'")
                                   for n, (img, t) in enumerate(zip(images, transforms, strict=True)))
        if len(frames) != shape[0]:
            raise ModelError(f"{self.model_path}: input '{name}' of shape {list(shape)} takes a batch of "
                             f"{shape[0]} image(s), got {len(frames)} (an engine runs the batch it was loaded with)")
        others = {n: s for n, s in self.inputs.items() if n != name}
        checked: dict[str, np.ndarray | ImageFeeds] = {**self._check_feeds(feeds or {}, others)}
        checked[name] = frames
        return self._dispatcher.submit(checked)  # type: ignore[arg-type]

    def run_image(self, image: np.ndarray, transform: ImageToTensor,
                  feeds: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """`submit_image`, blocking."""
        return self.submit_image(image, transform, feeds).result()

    def run_images(self, images: Sequence[np.ndarray], transforms: Sequence[ImageToTensor],
                   feeds: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """`submit_images`, blocking."""
        return self.submit_images(images, transforms, feeds).result()

    def warm_image(self, transform: ImageToTensor) -> None:
        """Compile and first-launch the image kernel for `transform`'s pixel format on every device that takes
        its input (one black frame of the box's size, no network run), so the first real frame does not pay."""
        if transform.input not in self.inputs:
            raise ModelError(f"{self.model_path}: image input {transform.input!r} is not a model input "
                             f"({list(self.inputs)})")
        black = np.zeros((transform.box[3], transform.box[2], transform.channels), np.uint8)
        feed = image_feed(black, transform, self.inputs[transform.input].shape)
        for rt in self.runtimes:
            if transform.input in rt.plan.inputs:
                rt.warm_image(transform.input, feed)
        self._write_program_cache()

    def _start_prewarm(self, plan: Plan, device: Any) -> subprocess.Popen[bytes] | None:
        """On a cold start, a child that compiles the plan from its last step while we start from the first
        (see runtime/prewarm.py): about halves the time to the first frame on a 2-core CPU."""
        from ocl_infer.engine.runtime.prewarm import MIN_MISSING, missing_programs, start_prewarm

        o = self.options
        # a second device of the same kind finds the first one's kernels in the driver's cache already
        same_kind = any(rt.device.name == device.name for rt in self.runtimes)
        if (not (o.prewarm and o.disk_cache and o.warmup) or same_kind
                or missing_programs(plan, device) < MIN_MISSING):
            return None
        child = start_prewarm(plan, device)
        if child is not None:
            self._children.append(child)
        return child

    def _write_program_cache(self) -> None:
        """Hand the programs compiled so far to a background writer (see runtime/cache_writer.py): the next
        start loads their binaries, and this one does not wait for them."""
        from ocl_infer.engine.runtime.cache_writer import start_writer

        jobs: dict[tuple[str, str], dict[Path, tuple[Path, str, str]]] = {}
        for rt in self.runtimes:
            for job in rt.programs.take_pending():
                jobs.setdefault((rt.device.platform.name, rt.device.name), {})[job[0]] = job
        for (platform, device), todo in jobs.items():
            writer = start_writer(platform, device, todo.values())
            if writer is not None:
                self._cache_writers.append(writer)

    def wait_for_program_cache(self, timeout: float | None = None) -> bool:
        """Wait until the background writers have put this engine's programs on disk (tests, benchmarks, and
        tools that prepare a machine). True when none is left running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for writer in self._cache_writers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(subprocess.TimeoutExpired):
                writer.wait(left)
        self._cache_writers = [w for w in self._cache_writers if w.poll() is None]
        return not self._cache_writers

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One frame, blocking."""
        return self.submit(feeds).result()

    def profile(self, feeds: Mapping[str, np.ndarray]) -> list[tuple[str, float]]:
        """Per-step device milliseconds of one frame on the first device: [(step name [variant], ms), ...]."""
        return self.runtimes[0].profile(self._check_feeds(feeds))

    def stats(self) -> list[DeviceStats]:
        return self._dispatcher.stats()

    @property
    def events(self) -> list[tuple[float, str, str]]:
        """Device faults and recoveries seen so far: (unix time, device label, what)."""
        return list(self._dispatcher.events)

    def memory_bytes(self) -> int:
        """Planned peak device memory per device: weights in device layout plus activations at their peak."""
        return max(p.peak_bytes for p in self.plans)

    def save(self, path: str | Path) -> Path:
        """Write the model (as loaded, before fusion) back out as an NNEF folder."""
        return save_graph(self.graph, path)

    def close(self) -> None:
        if getattr(self, "_closed", True) and not getattr(self, "runtimes", None):
            return
        self._closed = True
        for child in (*getattr(self, "_children", ()), *getattr(self, "_cache_writers", ())):
            child.poll()  # reap a finished child; a running one ends by itself
        stuck = self._dispatcher.close() if hasattr(self, "_dispatcher") else []
        self._release(keep=stuck)

    def _release(self, keep: Sequence[object] = ()) -> None:
        for rt in self.runtimes:
            if rt in keep:  # a hung run may still use its buffers: leak them rather than crash
                log.warning("%s: still running at close; its buffers are left to the driver", rt.label)
                continue
            rt.close()
        self.runtimes = []

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
