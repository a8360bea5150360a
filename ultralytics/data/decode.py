"""Parallel, order-preserving decoding of image files.

A 720p JPEG takes ~6 ms to decode on one core, so a folder read one file at a time can never go faster
than that per image, whatever the GPU does. OpenCV's decoder releases the GIL, so a pool of threads
decodes several files at once; results are handed out in the files' order, and only a bounded window
of files is in flight, so a huge folder never sits decoded in memory. The pool is created once per
process and shared (threads are kept between predict calls); each iteration has its own window.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ultralytics.utils.settings import settings

T = TypeVar("T")
R = TypeVar("R")


def decode_workers() -> int:
    """Threads for decoding: the setting `ULTRALYTICS_DECODE_WORKERS`, else the machine's cores less two
    (for the main thread and the pipeline's threads, which mostly wait or copy), between 1 and 16."""
    wanted = settings().decode_workers
    if wanted:
        return wanted
    return max(1, min(16, (os.cpu_count() or 1) - 2))


class DecodePool:
    """A lazily started thread pool shared by every source in the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._workers = 0

    @property
    def workers(self) -> int:
        return self._workers or decode_workers()

    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._workers = decode_workers()
                self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="ultralytics-decode")
            return self._executor

    def ordered_map(self, fn: Callable[[T], R], items: Iterable[T], ahead: int | None = None) -> Iterator[Future]:
        """Futures of `fn(item)` in the items' order, at most `ahead` (default 2 × workers) submitted
        before the consumer takes the first; leaving the loop early cancels what has not started."""
        if self.workers <= 1:  # no threads: decode in the caller's thread, still as futures
            for item in items:
                yield resolved_future(fn, item)
            return
        executor = self.executor()
        window = max(1, ahead or 2 * self.workers)
        pending: deque[Future] = deque()
        try:
            for item in items:
                pending.append(executor.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft()
            while pending:
                yield pending.popleft()
        finally:
            for f in pending:
                f.cancel()


def resolved_future(fn: Callable[[Any], Any], item: Any) -> Future:
    """`fn(item)` run here, as an already finished future (its error kept for `.result()`)."""
    future: Future = Future()
    try:
        future.set_result(fn(item))
    except Exception as e:  # handed to the consumer like a pool thread's error
        future.set_exception(e)
    return future


_POOL = DecodePool()


def decode_pool() -> DecodePool:
    """The process's decode pool."""
    return _POOL
