"""Layer pipelining: the graph's stages run on different devices, frames flow stage to stage through FIFO
queues, so several frames are in flight at once (each in a different stage) and order is kept. Intermediate
tensors cross devices through the host. No failover here: a failing stage fails that frame's future."""

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future

import numpy as np

from ocl_infer.engine.devices.dispatch import DeviceStats, Runner
from ocl_infer.errors import DeviceError

log = logging.getLogger(__name__)
_STOP = object()


class _Stage:
    def __init__(self, runner: Runner, inputs: Sequence[str], outputs: Sequence[str], depth: int) -> None:
        self.runner = runner
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.latencies: deque[float] = deque(maxlen=2000)
        self.frames = 0
        self.errors = 0
        self.busy_s = 0.0
        self.thread: threading.Thread | None = None


class Pipeline:
    """Same surface as the Dispatcher (submit, stats, events, close) for a chain of stage runners."""

    def __init__(self, runners: Sequence[Runner], stage_inputs: Sequence[Sequence[str]],
                 stage_outputs: Sequence[Sequence[str]], graph_outputs: Sequence[str], max_inflight: int = 2) -> None:
        if not runners:
            raise DeviceError("no device to run on")
        self.graph_outputs = tuple(graph_outputs)
        self.events: list[tuple[float, str, str]] = []
        self._closed = False
        self._lock = threading.Lock()
        self._stages = [_Stage(r, i, o, max(1, max_inflight)) for r, i, o in
                        zip(runners, stage_inputs, stage_outputs, strict=True)]
        for k, st in enumerate(self._stages):
            st.thread = threading.Thread(target=self._work, args=(k,), name=f"ocl-stage{k}", daemon=True)
            st.thread.start()

    def submit(self, feeds: Mapping[str, np.ndarray]) -> Future:
        if self._closed:
            raise DeviceError("engine is closed")
        fut: Future = Future()
        self._stages[0].queue.put((dict(feeds), fut))  # blocks while the first stage is full: back-pressure
        return fut

    def _work(self, k: int) -> None:
        st = self._stages[k]
        nxt = self._stages[k + 1] if k + 1 < len(self._stages) else None
        while True:
            item = st.queue.get()
            if item is _STOP:
                if nxt is not None:
                    nxt.queue.put(_STOP)
                return
            tensors, fut = item
            if fut.done():  # failed in an earlier stage or cancelled
                continue
            t0 = time.perf_counter()
            try:
                out = st.runner.run({n: tensors[n] for n in st.inputs})
            except Exception as err:  # any failure fails this frame only; the pipeline keeps going
                with self._lock:
                    st.errors += 1
                    self.events.append((time.time(), st.runner.label, f"stage {k} failed: {err}"))
                log.warning("%s: stage %d failed: %s", st.runner.label, k, err)
                fut.set_exception(err if isinstance(err, DeviceError) else DeviceError(f"stage {k}: {err}"))
                continue
            elapsed = time.perf_counter() - t0
            with self._lock:
                st.frames += 1
                st.busy_s += elapsed
                st.latencies.append(elapsed)
            tensors.update(out)
            if nxt is not None:
                nxt.queue.put((tensors, fut))
            else:
                fut.device = " > ".join(s.runner.label for s in self._stages)  # type: ignore[attr-defined]
                fut.set_result({n: tensors[n] for n in self.graph_outputs})

    def stats(self) -> list[DeviceStats]:
        with self._lock:
            out = []
            for st in self._stages:
                lat = np.asarray(st.latencies, dtype=np.float64) * 1e3
                p50, p95, p99 = (float(np.percentile(lat, q)) if lat.size else 0.0 for q in (50, 95, 99))
                out.append(DeviceStats(st.runner.label, st.frames, st.busy_s, p50, p95, p99, st.errors, 0, True,
                                       st.queue.qsize()))
            return out

    def close(self, join_s: float = 5.0) -> list[Runner]:
        if self._closed:
            return []
        self._closed = True
        self._stages[0].queue.put(_STOP)  # drains: frames already submitted finish first
        for st in self._stages:
            if st.thread is not None:
                st.thread.join(timeout=join_s)
        return [st.runner for st in self._stages if st.thread is not None and st.thread.is_alive()]
