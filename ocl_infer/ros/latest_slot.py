"""Latest-slots: one depth-1 mailbox per camera between DDS callbacks and the worker thread(s).

A callback `put`s the newest frame of its camera and gets back the frame it displaced (an **overload drop**,
never processed). A worker `take`s the waiting frame that arrived first across all cameras, so no camera
starves another. Nothing here knows about ROS; items are whatever the node stores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    item: T
    order: int  # arrival order across cameras: the worker takes the oldest first


class LatestSlots(Generic[T]):
    """Depth-1 slots keyed by camera, with a blocking take over all of them."""

    def __init__(self) -> None:
        self._slots: dict[Hashable, _Entry[T]] = {}
        self._cond = threading.Condition()
        self._counter = 0
        self._closed = False

    def put(self, key: Hashable, item: T) -> T | None:
        """Store `item` as `key`'s newest frame; return the frame it overwrote (an overload drop), if any."""
        with self._cond:
            old = self._slots.get(key)
            self._counter += 1
            self._slots[key] = _Entry(item, self._counter)
            self._cond.notify()
        return None if old is None else old.item

    def take(self, timeout: float | None = None) -> tuple[Hashable, T] | None:
        """The waiting frame that arrived first, removed from its slot; None on timeout or after close()."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._slots and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._closed:
                return None
            key = min(self._slots, key=lambda k: self._slots[k].order)
            return key, self._slots.pop(key).item

    def pending(self) -> int:
        """How many slots hold a frame now."""
        with self._cond:
            return len(self._slots)

    def close(self) -> list[tuple[Hashable, T]]:
        """Wake every waiting worker (take returns None from now on); return the frames still waiting."""
        with self._cond:
            self._closed = True
            left = [(k, e.item) for k, e in self._slots.items()]
            self._slots.clear()
            self._cond.notify_all()
        return left
