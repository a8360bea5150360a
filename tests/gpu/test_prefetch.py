"""The background prefetcher: order, bounded look-ahead, errors, early stop."""

from __future__ import annotations

import threading
import time

import pytest

from ultralytics.data.prefetch import Prefetcher


def test_yields_every_item_in_order_transformed():
    assert list(Prefetcher(range(50), lambda x: x * 2, depth=3)) == [2 * i for i in range(50)]


def test_look_ahead_is_bounded():
    produced: list[int] = []

    def source():
        for i in range(100):
            produced.append(i)
            yield i

    it = iter(Prefetcher(source(), depth=2))
    assert next(it) == 0
    time.sleep(0.3)  # give the producer every chance to run ahead
    # one consumed + `depth` queued + one blocked in put
    assert len(produced) <= 4
    it.close()


def test_source_error_reaches_the_consumer_after_earlier_items():
    def source():
        yield 1
        raise OSError("cannot decode frame 2")

    got = []
    with pytest.raises(OSError, match="frame 2"):
        for x in Prefetcher(source()):
            got.append(x)
    assert got == [1]


def leave_early(wrap) -> None:
    """Iterate `wrap(source)` over a long source, break after a few items, and check that the source was
    closed and every thread the prefetchers started has ended."""
    closed = threading.Event()

    def source():
        try:
            yield from range(10_000)
        finally:
            closed.set()

    before = threading.active_count()
    for k, _ in enumerate(wrap(source())):
        if k == 3:
            break
    assert closed.wait(5), "the source generator was not closed"
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_leaving_early_stops_the_thread_and_closes_the_source():
    leave_early(lambda source: Prefetcher(source, depth=2))


def test_overlaps_producer_and_consumer():
    """A slow source and a slow consumer take about max(), not the sum, of their times."""

    def slow_source():
        for i in range(6):
            time.sleep(0.05)
            yield i

    start = time.perf_counter()
    for _ in Prefetcher(slow_source(), depth=2):
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"no overlap: {elapsed:.2f}s for 6 × (50 ms + 50 ms)"


def test_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        Prefetcher([], depth=0)


def test_nested_prefetchers_stop_both_threads_and_pass_errors_through():
    """The CUDA path gathers file batches in one prefetcher and stages them in another
    (`gpu_pipeline.reads_files_ahead`): leaving early stops both threads and closes the source, and a
    source error reaches the consumer after the items before it."""
    leave_early(lambda source: Prefetcher(Prefetcher(source, depth=2), lambda v: v + 1, depth=2))

    def failing():
        yield 1
        yield 2
        raise ValueError("could not decode image 3")

    got = []
    with pytest.raises(ValueError, match="image 3"):
        for x in Prefetcher(Prefetcher(failing(), depth=2), lambda v: v * 10, depth=2):
            got.append(x)
    assert got == [10, 20]
