"""One device's runtime: context, in-order queue, weights uploaded once, activation buffers from the plan,
kernel arguments bound once. `run` enqueues the whole plan and reads the outputs once."""

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyopencl as cl

from ocl_infer.engine.kernels.base import Launch
from ocl_infer.engine.kernels.image import ImageFeed, ImageKernel, split_feeds
from ocl_infer.engine.kernels.registry import kernel_for
from ocl_infer.engine.plan.model import Plan, scratch_slots
from ocl_infer.engine.runtime.program_cache import ProgramCache
from ocl_infer.errors import DeviceError, KernelError

MF = cl.mem_flags


class InjectedFault(DeviceError):
    """Raised by the fault hook (tests and drills): behaves like an OpenCL failure of this device."""


class DeviceRuntime:
    """Runs a Plan on one OpenCL device. Not re-entrant: one frame at a time (the dispatcher ensures it)."""

    def __init__(self, plan: Plan, device: cl.Device, label: str, poison: bool = False,
                 disk_cache: bool = True, prime: bool = False, reverse: bool = False,
                 stop: Callable[[], bool] | None = None, spin_wait: bool = False) -> None:
        """`prime`, `reverse` and `stop` are for cold starts: see `_bind`. `spin_wait`: a run that follows an idle
        spell (IDLE_BEFORE_SPIN_S) waits for its last command in `spin_until_complete` instead of sleeping in
        clFinish (EngineOptions.wait)."""
        self.plan = plan
        self.spin_wait = spin_wait
        self._idle_since = 0.0  # monotonic time the last run ended
        self.device = device
        self.label = label
        self.poison = poison
        self._lock = threading.Lock()
        # Test hook: called with the frame number before each run; may raise or sleep to fake a fault/hang.
        self.fault_hook: Any = None
        self.frames = 0
        try:
            self.context = cl.Context([device])
            self.queue = cl.CommandQueue(self.context)
        except cl.Error as err:
            raise DeviceError(f"{label}: cannot create an OpenCL context/queue: {err}") from err
        self.programs = ProgramCache(self.context, device, disk=disk_cache)
        # image inputs (Engine.submit_images): one uint8 upload buffer per input and frame of its batch, grown as
        # frames need
        self._image_bufs: dict[tuple[str, int], cl.Buffer] = {}
        self._image_launches: dict[tuple[object, ...], tuple[ImageKernel, Launch]] = {}
        self.scratch_bufs: tuple[cl.Buffer, ...] = ()  # shared by every step's scratch (see `_bind`)
        try:
            self._allocate()
            self.launches = self._bind(prime, reverse, stop)
        except cl.Error as err:
            raise DeviceError(f"{label}: cannot allocate or bind buffers ({err})") from err

    def _allocate(self) -> None:
        p = self.plan
        self.const_bufs = {
            name: cl.Buffer(self.context, MF.READ_ONLY | MF.COPY_HOST_PTR,
                            hostbuf=arr if arr.size else np.zeros(1, np.float32))
            for name, arr in p.constants.items()
        }
        self.slot_bufs = [cl.Buffer(self.context, MF.READ_WRITE, max(n, 4)) for n in p.buffers.slot_bytes]
        self.pinned_bufs = {root: cl.Buffer(self.context, MF.READ_WRITE, max(n, 4))
                            for root, n in p.buffers.pinned_bytes.items()}
        self._views: dict[str, cl.Buffer] = {}

    def buffer(self, tensor: str) -> cl.Buffer:
        if tensor in self.const_bufs:
            return self.const_bufs[tensor]
        b = self.plan.buffers
        root = b.storage_of[tensor]
        whole = self.pinned_bufs[root] if root in self.pinned_bufs else self.slot_bufs[b.slot_of[root]]
        offset = b.offset_of.get(tensor, 0)
        if not offset:
            return whole
        if tensor not in self._views:  # a placed concat's input: its slice of the concat's storage
            self._views[tensor] = whole.get_sub_region(offset, self.plan.size(tensor) * 4)
        return self._views[tensor]

    def _bind(self, prime: bool = False, reverse: bool = False, stop: Callable[[], bool] | None = None,
              ) -> list[Launch]:
        """Build each step's program and bind its launches, in plan order (`reverse`: from the last step, as the
        prewarm child does; `stop()` ends the walk early, leaving later steps unbound).

        With `prime`, a step whose program had to be compiled from source is launched once right away: PoCL
        compiles a kernel at its first launch, and doing it step by step lets a prewarm child working from the
        other end share that work through PoCL's own cache. The inputs are whatever the buffers hold."""
        steps = [s for s in self.plan.steps if s.variant != "alias"]
        kernels = [kernel_for(step)(step, self.plan.shapes) for step in steps]
        # one scratch buffer per slot for every step (they run one after another on this in-order queue)
        self.scratch_bufs = tuple(cl.Buffer(self.context, MF.READ_WRITE, n)
                                  for n in scratch_slots(k.scratch_sizes() for k in kernels))
        order = range(len(steps) - 1, -1, -1) if reverse else range(len(steps))
        bound: dict[int, tuple[str, list[Launch]]] = {}
        for i in order:
            if stop is not None and stop():
                break
            step, kernel = steps[i], kernels[i]
            kernel.shared_scratch = self.scratch_bufs
            compiled = self.programs.compiles
            prg = self.programs.get(kernel.source(), kernel.build_options(), f"{kernel.variant} kernel for {step.name}")
            try:
                mine = kernel.launches(prg, [self.buffer(t) for t in step.inputs],
                                       [self.buffer(t) for t in step.outputs])
            except cl.Error as err:
                raise KernelError(f"{kernel.variant} kernel for op {step.name}: cannot bind arguments: {err}") from err
            bound[i] = (f"{step.name} [{kernel.variant}]", mine)
            if prime and self.programs.compiles > compiled:
                for launch in mine:
                    cl.enqueue_nd_range_kernel(self.queue, launch.kernel, launch.global_size, launch.local_size)
                self.queue.finish()
        launches: list[Launch] = []
        self.launch_steps: list[str] = []  # the step name of each launch, for profiles
        for i in sorted(bound):
            name, mine = bound[i]
            launches += mine
            self.launch_steps += [name] * len(mine)
        return launches

    def profile(self, feeds: Mapping[str, np.ndarray]) -> list[tuple[str, float]]:
        """Device milliseconds per step (OpenCL profiling events on a separate queue), in plan order."""
        with self._lock:
            q = cl.CommandQueue(self.context, properties=cl.command_queue_properties.PROFILING_ENABLE)
            for name in self.plan.inputs:
                cl.enqueue_copy(q, self.buffer(name), np.ascontiguousarray(feeds[name], dtype=np.float32))
            out: list[tuple[str, float]] = []
            for name, launch in zip(self.launch_steps, self.launches, strict=True):
                ev = cl.enqueue_nd_range_kernel(q, launch.kernel, launch.global_size, launch.local_size)
                ev.wait()
                ms = (ev.profile.end - ev.profile.start) * 1e-6
                if out and out[-1][0] == name:
                    out[-1] = (name, out[-1][1] + ms)
                else:
                    out.append((name, ms))
            q.finish()
            return out

    def activation_buffers(self) -> list[cl.Buffer]:
        return [*self.slot_bufs, *(b for r, b in self.pinned_bufs.items() if r not in self.plan.inputs)]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One frame: write inputs, enqueue every launch, read outputs; blocks until done."""
        with self._lock:
            self.frames += 1
            if self.fault_hook is not None:
                self.fault_hook(self.frames)
            try:
                return self._run(feeds)
            except cl.Error as err:
                raise DeviceError(f"{self.label}: OpenCL error while running: {err}") from err

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        q = self.queue
        if self.poison:  # NaN everywhere a kernel should write, so an unwritten element cannot pass a test
            nan = np.full(1, np.nan, np.float32)
            for buf in self.activation_buffers():
                cl.enqueue_fill_buffer(q, buf, nan, 0, buf.size)
        arrays, images = split_feeds(feeds)
        keep: list[np.ndarray] = []
        for name in self.plan.inputs:
            if name in images:  # per frame: uint8 upload + the image kernel into its slice, before the plan
                for index, feed in enumerate(images[name]):
                    keep.append(feed.pixels)
                    launch = self._image_launch(name, feed, index)
                    cl.enqueue_copy(q, self._image_bufs[name, index], feed.pixels, is_blocking=False)
                    cl.enqueue_nd_range_kernel(q, launch.kernel, launch.global_size, launch.local_size)
                continue
            arr = np.ascontiguousarray(arrays[name], dtype=np.float32)
            keep.append(arr)
            cl.enqueue_copy(q, self.buffer(name), arr, is_blocking=False)
        for launch in self.launches:
            cl.enqueue_nd_range_kernel(q, launch.kernel, launch.global_size, launch.local_size)
        outs: dict[str, np.ndarray] = {}
        events = []
        for name in self.plan.outputs:
            out = np.empty(self.plan.shapes[name], np.float32)
            if out.size:
                events.append(cl.enqueue_copy(q, out, self.buffer(name), is_blocking=False))
            outs[name] = out
        if self.spin_wait and time.monotonic() - self._idle_since >= IDLE_BEFORE_SPIN_S:
            spin_until_complete(q, events[-1] if events else None)
        for ev in events:
            ev.wait()
        q.finish()
        self._idle_since = time.monotonic()
        del keep
        return outs

    def warm_image(self, name: str, feed: ImageFeed) -> None:
        """Build and launch the image kernel once for this pixel format (PoCL compiles a kernel at its first
        launch), without running the plan or counting a frame."""
        with self._lock:
            try:
                launch = self._image_launch(name, feed, 0)
                cl.enqueue_copy(self.queue, self._image_bufs[name, 0], feed.pixels, is_blocking=False)
                cl.enqueue_nd_range_kernel(self.queue, launch.kernel, launch.global_size, launch.local_size)
                self.queue.finish()
            except cl.Error as err:
                raise DeviceError(f"{self.label}: OpenCL error while warming the image kernel: {err}") from err

    def _image_launch(self, name: str, feed: ImageFeed, index: int) -> Launch:
        """The bound image kernel for this input, frame `index` of its batch, transform and frame geometry (bound
        once per geometry: each frame of a batch has its own upload buffer and output slice)."""
        need = int(feed.pixels.nbytes)
        buf = self._image_bufs.get((name, index))
        if buf is None or buf.size < need:
            if buf is not None:
                buf.release()
            self._drop_image_launches(lambda key: key[:2] == (name, index))
            buf = self._image_bufs[name, index] = cl.Buffer(self.context, MF.READ_ONLY, need)
        key = (name, index, feed.transform, feed.width, feed.height, feed.row_stride)
        bound = self._image_launches.get(key)
        if bound is None:
            wrapper = ImageKernel(feed.transform)
            prg = self.programs.get(wrapper.source(), wrapper.build_options(), f"{wrapper.variant} kernel for {name}")
            # a camera changing geometry often: keep the table small (16 geometries per frame of the batch)
            if len(self._image_launches) >= 16 * self.plan.shapes[name][0]:
                self._drop_image_launches(lambda key: True)
            launch = wrapper.launches(prg, feed, buf, self.buffer(name), self.plan.shapes[name], index)[0]
            bound = self._image_launches[key] = (wrapper, launch)
        return bound[1]

    def _drop_image_launches(self, which: Callable[[tuple[object, ...]], bool]) -> None:
        """Forget bound image launches (callers run under the run lock: no frame is using them)."""
        for key in [k for k in self._image_launches if which(k)]:
            wrapper, _ = self._image_launches.pop(key)
            wrapper.release()

    def close(self) -> None:
        for buf in (*self.const_bufs.values(), *self.slot_bufs, *self.pinned_bufs.values(), *self._image_bufs.values(),
                    *self.scratch_bufs):
            with contextlib.suppress(cl.Error):
                buf.release()
        with contextlib.suppress(cl.Error):
            self._drop_image_launches(lambda key: True)
        self.const_bufs, self.slot_bufs, self.pinned_bufs, self._image_bufs = {}, [], {}, {}
        self.scratch_bufs = ()


# A run spins only after the device sat idle this long: the slow wake-ups follow idle spells (100 ms idle: +5-8 ms
# on YOLO11n; 30 ms: nothing), while back to back a spinning host thread competed with the device's workers (p99
# 28 -> 32 ms on YOLO11n, 22 -> 38 ms on YOLOv3-tiny, medians equal; bench/idle_wait.py).
IDLE_BEFORE_SPIN_S = 0.02


def spin_until_complete(queue: cl.CommandQueue, event: cl.Event | None) -> None:
    """Wait for `event` (else everything queued so far) by polling its status and yielding the CPU in between.

    On a CPU device the device's worker threads are woken once per kernel of an in-order queue; a host thread
    asleep in clFinish lets its core halt when a worker sleeps between kernels, and on a virtual machine each
    wake-up of a halted core is slow (after 0.1 s idle, YOLO11n's frame took 25-26 ms instead of 18). A yielding
    host thread keeps the core awake and gives it up to any runnable thread (the workers first). An error status
    (negative) ends the loop: the caller's wait() raises it."""
    if event is None:
        event = cl.enqueue_marker(queue)
    queue.flush()
    while event.command_execution_status > 0:  # CL_COMPLETE is 0, errors are negative
        os.sched_yield()
