"""The detection head's per-level branches run side by side inside a graph capture (gpu/streams.py):
same outputs as one after another, on streams of our own that no other part of the pipeline uses."""

from __future__ import annotations

import torch

from tests.gpu.conftest import requires_cuda
from ultralytics import YOLO
from ultralytics.gpu import streams
from ultralytics.gpu.graphs import CudaGraphRunner


def test_branches_run_in_order_outside_a_capture():
    """Eager code and the CPU: no side streams, the branches' outputs in the order given."""
    order = []

    def branch(k: int):
        return lambda: order.append(k) or torch.full((1,), float(k))

    outs = streams.run_branches([branch(k) for k in range(4)])
    assert order == [0, 1, 2, 3]
    assert [float(o) for o in outs] == [0.0, 1.0, 2.0, 3.0]
    with streams.parallel_branches(torch.device("cpu")):  # nothing to fork on the CPU
        assert [float(o) for o in streams.run_branches([branch(5), branch(6)])] == [5.0, 6.0]


@requires_cuda
def test_side_streams_are_our_own():
    device = torch.device("cuda", 0)
    side = {s.cuda_stream for s in streams.branch_streams(device, 6)}
    assert len(side) == 6
    others = {streams.copy_stream(device).cuda_stream, streams.letterbox_stream(device).cuda_stream}
    others.add(streams.graph_stream(device)[0].cuda_stream)
    others.add(torch.cuda.current_stream(device).cuda_stream)
    assert not side & others


@requires_cuda
def test_graph_with_parallel_head_equals_eager_network(shapes_pt):
    """The captured network (head branches on side streams) gives the eager, sequential output exactly."""
    backend = YOLO(shapes_pt)._backend(torch.device("cuda", 0), True)
    model = backend.backend.model
    x = torch.rand(1, 3, 320, 320, device="cuda").half()
    with torch.inference_mode():
        eager = model(x)
        runner = CudaGraphRunner(backend.backend.forward, backend.device)
        graphed = runner(x)
        again = runner(x + 0)  # a replay, not the capture's own run
    torch.cuda.synchronize()
    assert runner.disabled_reason is None
    assert torch.equal(graphed, eager) and torch.equal(again, eager)


def test_no_side_streams_means_branches_in_turn(monkeypatch):
    """Where side streams cannot be made (no libcuda.so.1, e.g. Windows), the branches run one after
    another with one warning, and are not tried again, instead of failing the capture."""
    monkeypatch.setattr(streams, "_BROKEN", [])

    def unavailable(device, n):
        raise OSError("libcuda.so.1: cannot open shared object file")

    monkeypatch.setattr(streams, "branch_streams", unavailable)
    monkeypatch.setattr(streams, "_SIDE_STREAMS_IN_POOL", True)
    with streams.parallel_branches(torch.device("cuda", 0)):
        outs = streams.run_branches([lambda: torch.ones(1), lambda: torch.zeros(1)])
    assert [float(o) for o in outs] == [1.0, 0.0]
    assert streams._BROKEN and "libcuda" in streams._BROKEN[0]
    with streams.parallel_branches(torch.device("cuda", 0)):
        assert streams._PARALLEL.device is None  # not tried again
