"""Uploads on the copy stream, overlapped with the network: the pattern that once crashed.

The crash: a capture stream drawn from torch's 32-stream pool became the upload stream after 32 graph
runners, so a prefetch thread's copy landed inside the main thread's graph capture. The shapes val set
has 33 frame sizes, which at batch 1 means a new letterbox graph (and runner) for most of them.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import SHAPES
from tests.gpu.conftest import requires_cuda, run_in_threads
from tests.gpu.test_pipeline import assert_boxes_match, boxes_of
from ultralytics import YOLO
from ultralytics.gpu import graphs, streams, upload


def test_streams_need_cuda():
    with pytest.raises(ValueError, match="CUDA device"):
        streams.copy_stream("cpu")
    with pytest.raises(ValueError, match="CUDA device"):
        streams.graph_stream(torch.device("cpu"))


@requires_cuda
def test_copy_stream_is_never_a_pool_stream_graphs_could_get():
    copy = streams.copy_stream(0)
    assert streams.copy_stream("cuda:0") is copy
    pool = [torch.cuda.Stream() for _ in range(80)]  # more than the pool holds: it wraps around
    assert len({s.cuda_stream for s in pool}) < len(pool), "torch's stream pool is expected to repeat"
    assert copy.cuda_stream not in {s.cuda_stream for s in pool}
    stream, lock = streams.graph_stream(0)
    runner = graphs.CudaGraphRunner(lambda x: x * 2, torch.device("cuda", 0))
    assert runner._stream is stream and runner._lock is lock and stream.cuda_stream != copy.cuda_stream


@requires_cuda
@pytest.mark.parametrize("batch", [1, 4])
def test_overlapped_uploads_of_mixed_sizes_equal_default_stream_uploads(shapes_pt, monkeypatch, batch):
    """100 val images (33 sizes) through prefetch + copy stream, at two sizes, against uploads made on the
    default stream (no cross-stream ordering at all); batch 4 also mixes sizes inside a batch."""
    files = [str(p) for p in sorted((SHAPES / "val" / "images").glob("*.jpg"))[:100]]
    assert len(files) == 100

    def run() -> list:
        model = YOLO(shapes_pt)  # a new model: a new pipeline state, so the uploader picks its stream anew
        out = []
        for imgsz in (320, 640):
            out += boxes_of(model.predict(files, device=0, imgsz=imgsz, batch=batch, verbose=False))
        return out

    overlapped = run()
    with monkeypatch.context() as m:
        m.setattr(upload, "copy_stream", lambda device: torch.cuda.default_stream(device))
        serial = run()
    assert sum(len(b) for b in serial) > 100, "the val images should give detections"
    assert_boxes_match(overlapped, serial, px=1e-3, conf=1e-4)


@requires_cuda
def test_four_threads_with_prefetched_files_and_captures(shapes_pt):
    """Four threads predicting files of many sizes at once: uploads, captures and replays interleave."""
    files = [str(p) for p in sorted((SHAPES / "val" / "images").glob("*.jpg"))[:40]]
    model = YOLO(shapes_pt)

    def one_by_one(m: YOLO, paths: list[str]) -> list:
        # one file per call: a list is one batch (upstream), and the same image in batches of other
        # sizes may differ in the last float bits; this test is about threads, not batch composition
        return [boxes_of(m.predict(p, device=0, imgsz=320, verbose=False))[0] for p in paths]

    single = one_by_one(YOLO(shapes_pt), files)

    def work(k: int) -> list:
        order = files[k * 10 :] + files[: k * 10]
        got = one_by_one(model, order)
        return got[len(got) - k * 10 :] + got[: len(got) - k * 10]

    outputs = run_in_threads(4, work)
    for got in outputs:
        assert_boxes_match(got, single, px=1e-3, conf=1e-4)
