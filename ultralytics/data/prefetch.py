"""Run an iterator one or more items ahead in a background thread.

Predict alternates between decoding a batch (CPU: file reads, JPEG/video decode, the pinned upload)
and running it (GPU). Pulling batch i+1 from the source while batch i is on the GPU hides the slower
of the two behind the other. OpenCV's decoders and the CUDA copy release the GIL, so a thread is
enough. The queue is bounded, so a fast source cannot fill memory; errors from the source are
re-raised in the consumer; closing the prefetcher (or leaving the `for` loop early) stops the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Iterate over `transform(item) for item in source`, computed up to `depth` items ahead."""

    def __init__(self, source: Iterable[Any], transform: Callable[[Any], Any] | None = None, depth: int = 2):
        if depth < 1:
            raise ValueError(f"prefetch depth must be at least 1, got {depth}")
        self._source = source
        self._transform = transform
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="ultralytics-prefetch", daemon=True)
        self._started = False
        self._finished = False

    def _put(self, item: Any) -> bool:
        """Block until there is room, but give up when the consumer has closed us."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._source:
                if self._stop.is_set():
                    return
                if not self._put(self._transform(item) if self._transform else item):
                    return
        except BaseException as e:  # handed to the consumer, which re-raises it
            self._put(_Failure(e))
            return
        finally:
            close = getattr(self._source, "close", None)
            if callable(close) and self._stop.is_set():
                close()
        self._put(_END)

    def __iter__(self) -> Iterator[Any]:
        if not self._started:
            self._started = True
            self._thread.start()
        try:
            while not self._finished:
                item = self._queue.get()
                if item is _END:
                    self._finished = True
                    return
                if isinstance(item, _Failure):
                    self._finished = True
                    raise item.error
                yield item
        finally:
            self.close()

    def ready(self) -> bool:
        """True when the next item (or the end) is already computed: taking it will not wait."""
        return self._finished or not self._queue.empty()

    def close(self) -> None:
        """Stop the producer and wait for it (it checks at least every 0.1 s between items)."""
        self._stop.set()
        if self._started and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
