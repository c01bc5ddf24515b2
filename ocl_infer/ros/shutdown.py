"""Clean shutdown of a node process: SIGINT (once or twice), SIGTERM, at any moment -> exit code 0, no traceback.

Why our own handling: under `ros2 launch`, Ctrl-C reaches the node twice (the terminal signals the whole process
group, then launch forwards SIGINT). With rclpy's handlers the first signal shuts the context down at once,
while worker threads may still publish ("publisher's context is invalid"), and the second raises
KeyboardInterrupt wherever the main thread is, e.g. inside Detector.close.

So: `ShutdownGuard.install()` runs first thing in the entry point (before the heavy imports). While the node
starts (model load, kernel builds) the first signal raises KeyboardInterrupt so start-up stops at once; once
running, a signal only sets `requested` and the spin loop returns. Any further signal is ignored while the
process cleans up (workers joined, detector closed, nodes destroyed, then the context shut down, in that
order, so nothing publishes into a dead context); one that comes FORCE_AFTER_S after the first, when clean-up
hangs (`ros2 launch` escalates to SIGTERM after 5 s), ends the process at once with exit code 1. rclpy is
initialised with SignalHandlerOptions.NO so that its handlers do not replace ours. When the entry point
returns, `exiting()` makes both signals ignored: Python's finalisation resets a Python handler to the default
action, so the second Ctrl-C, arriving while the interpreter shuts down, would otherwise kill the process
(exit code -2). No rclpy at import time.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

SPIN_POLL_S = 0.1  # the spin loop's wait: how soon a signal is seen (Python handlers run between waits)
FORCE_AFTER_S = 3.0


class ShutdownGuard:
    """SIGINT/SIGTERM handler for a node process; see the module docstring."""

    def __init__(self, name: str = "ocl_infer") -> None:
        self.name = name
        self.requested = threading.Event()
        self.signals = 0
        self._raise = True
        self._first_at = 0.0

    def install(self) -> ShutdownGuard:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)
        return self

    def started(self) -> None:
        """Start-up is over: from now on a signal only sets `requested` (the spin loop polls it)."""
        self._raise = False

    def exiting(self) -> None:
        """The entry point is returning: ignore SIGINT/SIGTERM for the rest of the interpreter's life (its
        finalisation would otherwise restore the default action, which kills the process)."""
        self._raise = False
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        if self.requested.is_set():
            if time.monotonic() - self._first_at > FORCE_AFTER_S:
                sys.stderr.write(f"{self.name}: clean-up takes too long; exiting now\n")
                sys.stderr.flush()
                os._exit(1)
            return  # the second Ctrl-C of `ros2 launch`: already stopping
        self._first_at = time.monotonic()
        self.requested.set()
        if self._raise:
            raise KeyboardInterrupt


def spin_until_shutdown(nodes: list[Any], guard: ShutdownGuard | None = None) -> int:
    """Spin `nodes` in one executor until a signal (or an external context shutdown); destroy them afterwards,
    before the caller shuts the context down. Returns 0."""
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    context = nodes[0].context if nodes else None
    executor = SingleThreadedExecutor(context=context) if context is not None else SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    try:
        while executor.context.ok() and not (guard is not None and guard.requested.is_set()):
            executor.spin_once(timeout_sec=SPIN_POLL_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # without a guard (a library caller): Ctrl-C as rclpy delivers it
    finally:
        for node in nodes:
            executor.remove_node(node)
        executor.shutdown(timeout_sec=1.0)
        for node in nodes:
            node.destroy_node()
    return 0


def run_node_process(build: Callable[[list[Any]], None], args: list[str] | None, guard: ShutdownGuard) -> int:
    """rclpy.init (our signal handling, not rclpy's), `build(nodes)` appending each node as it is made, spin
    until a signal, destroy the nodes, shut down. A signal during start-up destroys the nodes built so far
    and returns 0; any other error destroys them and propagates."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    nodes: list[Any] = []
    with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
        try:
            build(nodes)
            guard.started()
        except BaseException as err:
            guard.started()  # clean-up below must not be interrupted
            for node in nodes:
                node.destroy_node()
            if isinstance(err, KeyboardInterrupt):
                return 0
            raise
        if guard.requested.is_set():  # a signal came just as start-up ended
            for node in nodes:
                node.destroy_node()
            return 0
        return spin_until_shutdown(nodes, guard)
