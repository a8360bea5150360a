"""Constants on a device that captured CUDA graphs read: resize tables, anchor grids.

A graph replays the kernels it captured, reading whatever memory they read. A constant built *inside*
a capture is built again by its kernels at every replay (the letterbox's resize tables were ~50 small
kernels per batch-1 replay on the H200, the head's anchor grids ~20; benchmarks/NOTES.md, session 5).
So a constant is made once outside any capture and cached; a capture that finds it cached reads it as
it is, and from then on it is kept for the life of the cache, since the graph reads that memory at
every replay. One first needed during a capture is still made by the graph (it holds nothing until the
graph replays) and not cached. Outside a capture a new constant costs one wait for its stream, so that
another stream (a graph's) never reads it half-made.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


class CaptureSafeCache(Generic[T]):
    """`get(key, device, make)`: the constant of `key` on `device`; `make(capturing)` builds it (inside a
    capture it must build on the device). At most `recent` constants are kept that no graph has read."""

    def __init__(self, recent: int = 64):
        self.limit = recent
        self._recent: OrderedDict[Hashable, T] = OrderedDict()  # least recently used first
        self._captured: dict[Hashable, T] = {}  # read by captured graphs: never dropped
        self._lock = threading.Lock()

    def get(self, key: Hashable, device: torch.device, make: Callable[[bool], T]) -> T:
        device = torch.device(device)
        capturing = device.type == "cuda" and torch.cuda.is_current_stream_capturing()
        with self._lock:
            value = self._recent.get(key)
            if value is None:
                value = self._captured.get(key)
            elif not capturing:
                self._recent.move_to_end(key)
            if value is not None and capturing:
                self._captured[key] = value
        if value is not None:
            return value
        value = make(capturing)
        if capturing:
            return value
        if device.type == "cuda":
            torch.cuda.current_stream(device).synchronize()
        with self._lock:
            self._recent[key] = value
            while len(self._recent) > self.limit:
                self._recent.popitem(last=False)
        return value
