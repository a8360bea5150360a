"""Host arrays that video frames are decoded into and PIL images converted into, kept and reused across calls.

Why: a freshly allocated 720p frame (2.7 MB) costs ~675 page faults the first time it is written. In a CUDA
predict over a video at batch 32, ~130 frames are in flight (read ahead, gathered, staged, waiting for
results); when the call ends they are freed, glibc hands their heaps back to the system, and the next call
faults them in again. On the H200 host that was ~300 faults per frame over a 256-frame clip, and its first
three batches read at 2.1-2.6 ms/frame against 1.0 once memory was being reused (benchmarks/NOTES.md,
session 9, probe T).

An array is handed out again only when nothing else references it: the pool's list is its only owner
(CPython's reference count, compared with that of a sentinel array measured the same way at every search),
so a frame a caller keeps (a `Results.orig_img`, a view, a tensor made with `torch.from_numpy`) is never
overwritten. Free-threaded builds of Python do not keep exact reference counts; there the pool is off.

Limits: at most `ULTRALYTICS_FRAME_POOL_MB` (default 384; 0 = off), which stays allocated after a call, as
torch keeps its pinned buffers. That covers the ~130 frames in flight at 720p and batch 32; at 1080p or 4K the
frames beyond it are allocated as before. At most MAX_SHAPES frame sizes are kept: a stream of photos of every
size (PIL images) would otherwise keep one array per size, none ever reused.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading

import numpy as np

from ultralytics.utils.settings import settings

MAX_SHAPES = 4  # frame sizes kept; the least recently used size's unused arrays go first


def _references(arrays: list[np.ndarray], i: int) -> int:
    """`arrays[i]`'s reference count, always read at this one place, so that the interpreter's own temporary
    references (which differ between versions and specialisations) are the same for every array compared."""
    return sys.getrefcount(arrays[i])


def _exact_refcounts() -> bool:
    """False on a free-threaded build (3.13t/3.14t), whose counts are not exact even while the GIL is on."""
    return not sysconfig.get_config_var("Py_GIL_DISABLED")


class FramePool:
    """uint8 arrays by shape: `take(shape)` returns one that nobody else holds, or a new one."""

    def __init__(self, max_bytes: int | None = None):
        self._max_bytes = max_bytes  # None: the setting, read at every take
        self._arrays: dict[tuple[int, ...], list[np.ndarray]] = {}  # by shape, least recently used first
        self._next: dict[tuple[int, ...], int] = {}  # where the last search for a free array ended
        self._bytes = 0
        self._lock = threading.Lock()
        self._exact = _exact_refcounts()
        self._sentinel = [np.empty(0, np.uint8)]  # referenced by this list only: what "unused" reads as

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
            unused = _references(self._sentinel, 0)
            arrays = self._arrays.pop(shape, [])
            self._arrays[shape] = arrays  # now the most recently used size
            n, start = len(arrays), self._next.get(shape, 0)
            for k in range(n):
                i = (start + k) % n
                if _references(arrays, i) == unused:  # any other reference is a user of the array
                    self._next[shape] = (i + 1) % n
                    return arrays[i]
            if len(self._arrays) > MAX_SHAPES or self._bytes + size > limit:
                self._drop_unused(unused, shape, size, limit)
            if self._bytes + size > limit:
                return np.empty(shape, np.uint8)  # full of frames in use: this one is not kept
            array = np.empty(shape, np.uint8)
            arrays.append(array)
            self._bytes += size
            return array

    def _drop_unused(self, unused: int, keep: tuple[int, ...], need: int, limit: int) -> None:
        """Forget the unused arrays of other sizes, least recently used size first, until at most MAX_SHAPES
        sizes are kept and `need` more bytes fit under `limit` (arrays in use stay: their users hold them)."""
        excess = len(self._arrays) - MAX_SHAPES
        for rank, shape in enumerate([s for s in self._arrays if s != keep]):
            if rank >= excess and self._bytes + need <= limit:
                break  # the more recently used sizes fit
            arrays = self._arrays[shape]
            kept = [arrays[i] for i in range(len(arrays)) if _references(arrays, i) > unused]
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

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a fork while another thread held the lock must not leave it held


_POOL = FramePool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _POOL._after_fork())


def frame_pool() -> FramePool:
    """The process's pool for decoded video frames and converted PIL images."""
    return _POOL
