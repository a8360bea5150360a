"""Host arrays that video frames are decoded into, kept and reused across predict calls.

Why: a freshly allocated 720p frame (2.7 MB) costs ~675 page faults the first time it is written. In a CUDA
predict over a video at batch 32, ~130 frames are in flight (read ahead, gathered, staged, waiting for
results); when the call ends they are freed, glibc hands their heaps back to the system, and the next call
faults them in again. On the H200 host that was ~300 faults per frame over a 256-frame clip, and its first
three batches read at 2.1-2.6 ms/frame against 1.0 once memory was being reused (benchmarks/NOTES.md,
session 9, probe T).

An array is handed out again only when nothing else references it: the pool's list is its only owner
(CPython's reference count), so a frame a caller keeps (a `Results.orig_img`, a view, a tensor made with
`torch.from_numpy`) is never overwritten. Free-threaded Python does not keep exact reference counts, so
there the pool is off. The pool holds at most `ULTRALYTICS_FRAME_POOL_MB` (default 384; 0 = off): that much
host memory stays allocated after a video call, as torch keeps its pinned buffers.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

from ultralytics.utils.settings import settings


def _references(arrays: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(arrays[i])


# what an array referenced only by the pool's list reads as, measured the way the pool measures (the
# interpreter's own temporary references differ between Python versions)
_UNUSED = _references([np.empty(0, np.uint8)], 0)


def _exact_refcounts() -> bool:
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)  # Python 3.13+; absent means the GIL is on
    return is_gil_enabled is None or bool(is_gil_enabled())


class FramePool:
    """uint8 arrays by shape: `take(shape)` returns one that nobody else holds, or a new one."""

    def __init__(self, max_bytes: int | None = None):
        self._max_bytes = max_bytes  # None: the setting, read at every take
        self._arrays: dict[tuple[int, ...], list[np.ndarray]] = {}
        self._next: dict[tuple[int, ...], int] = {}  # where the last search for a free array ended
        self._bytes = 0
        self._lock = threading.Lock()
        self._exact = _exact_refcounts()

    @property
    def max_bytes(self) -> int:
        return self._max_bytes if self._max_bytes is not None else settings().frame_pool_mb << 20

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """An array of `shape` (uint8, contents undefined) that the caller owns until it drops it."""
        shape = tuple(int(s) for s in shape)
        size = int(np.prod(shape))
        limit = self.max_bytes
        if not self._exact or limit <= 0 or size > limit:
            return np.empty(shape, np.uint8)
        with self._lock:
            arrays = self._arrays.setdefault(shape, [])
            n, start = len(arrays), self._next.get(shape, 0)
            for k in range(n):
                i = (start + k) % n
                if _references(arrays, i) == _UNUSED:  # any other reference is a user of the array
                    self._next[shape] = (i + 1) % n
                    return arrays[i]
            if self._bytes + size > limit:
                self._drop_unused(other_than=shape)
            if self._bytes + size > limit:
                return np.empty(shape, np.uint8)  # full of frames in use: this one is not kept
            array = np.empty(shape, np.uint8)
            arrays.append(array)
            self._bytes += size
            return array

    def _drop_unused(self, other_than: tuple[int, ...]) -> None:
        """Forget unused arrays of other shapes (a previous video's resolution) to make room."""
        for shape, arrays in list(self._arrays.items()):
            if shape == other_than:
                continue
            kept = [arrays[i] for i in range(len(arrays)) if _references(arrays, i) > _UNUSED]
            self._bytes -= sum(a.nbytes for a in arrays) - sum(a.nbytes for a in kept)
            if kept:
                self._arrays[shape] = kept
            else:
                del self._arrays[shape]
            self._next.pop(shape, None)

    def clear(self) -> None:
        """Forget every array (those still in use stay valid: their users hold them)."""
        with self._lock:
            self._arrays.clear()
            self._next.clear()
            self._bytes = 0


_POOL = FramePool()


def frame_pool() -> FramePool:
    """The process's pool for decoded video frames."""
    return _POOL
