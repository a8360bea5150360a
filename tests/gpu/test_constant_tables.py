"""Constants of the graphed stages (resize tables, anchor grids) are made once and read by every replay,
instead of being rebuilt by small kernels inside each captured graph."""

from __future__ import annotations

import pickle

import torch

from tests.gpu.conftest import requires_cuda
from ultralytics import YOLO
from ultralytics.gpu.cv2_linear import device_tables
from ultralytics.nn.modules.head import make_anchors


def test_anchor_grids_are_kept_without_gradients_and_never_pickled(shapes_pt):
    model = YOLO(shapes_pt).model.eval()
    head = model.model[-1]
    before = len(pickle.dumps(model))
    x = torch.rand(1, 3, 96, 128)
    feats = [torch.rand(1, 8, 96 // s, 128 // s) for s in (8, 16, 32)]
    with torch.no_grad():
        first = head._anchors(feats)
        again = head._anchors(feats)
        model(x)
    assert first is again  # kept
    expected = make_anchors(feats, head.stride)
    assert all(torch.equal(a, b) for a, b in zip(first, expected))
    with torch.enable_grad():
        assert head._anchors(feats) is not first  # while gradients are recorded: made fresh
    assert len(pickle.dumps(model)) == before  # the kept grids live outside the module


@requires_cuda
def test_a_cached_table_is_read_inside_a_capture_not_rebuilt():
    builds = []

    def build(in_size: int, out_size: int, device: torch.device, is_rows: bool) -> torch.Tensor:
        builds.append(device.type)
        return torch.arange(out_size, dtype=torch.int32, device=device) * in_size

    get = device_tables(build)
    device = torch.device("cuda", 0)
    outside = get(10, 4, device, is_rows=True)
    assert builds == ["cpu"]
    stream = torch.cuda.Stream()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        inside = get(10, 4, device, is_rows=True)
        fresh = get(11, 4, device, is_rows=True)  # first needed in the capture: built by the graph
    assert inside is outside and builds == ["cpu", "cuda"]
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(fresh, torch.arange(4, dtype=torch.int32, device=device) * 11)
    assert get(11, 4, device, is_rows=True) is not fresh  # a graph-made table is never cached


def test_anchor_grids_are_made_fresh_while_exporting(shapes_pt, monkeypatch):
    """An ONNX export must record the anchor arithmetic (a dynamic model derives them from its input
    shape), never a grid kept from an earlier inference at one size."""
    head = YOLO(shapes_pt).model.eval().model[-1]
    feats = [torch.rand(1, 8, 96 // s, 128 // s) for s in (8, 16, 32)]
    with torch.no_grad():
        kept = head._anchors(feats)
        monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
        assert head._anchors(feats) is not kept


def test_capture_safe_cache_makes_once_and_keeps_the_most_recent():
    from ultralytics.gpu.constants import CaptureSafeCache

    made = []
    cache = CaptureSafeCache(recent=2)

    def make(key):
        return lambda capturing: made.append((key, capturing)) or torch.full((1,), float(key))

    cpu = torch.device("cpu")
    first = cache.get(1, cpu, make(1))
    assert cache.get(1, cpu, make(1)) is first and made == [(1, False)]
    cache.get(2, cpu, make(2))
    cache.get(1, cpu, make(1))  # 1 is now the most recent
    cache.get(3, cpu, make(3))  # drops 2, the least recently used
    assert cache.get(1, cpu, make(1)) is first
    cache.get(2, cpu, make(2))
    assert made == [(1, False), (2, False), (3, False), (2, False)]
