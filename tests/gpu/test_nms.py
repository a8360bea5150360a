"""Batched fixed-shape NMS against a brute-force greedy NMS written in plain numpy (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.gpu.conftest import requires_cuda
from ultralytics.gpu.nms import BatchedNMS


def greedy_nms(pred: np.ndarray, conf: float, iou: float, max_det=300, agnostic=False, classes=None) -> np.ndarray:
    """One image (4 + nc, A): the textbook loop, one box at a time."""
    x = pred.T.astype(np.float64)
    score, cls = x[:, 4:].max(1), x[:, 4:].argmax(1)
    keep_mask = score > conf
    if classes is not None:
        keep_mask &= np.isin(cls, classes)
    x, score, cls = x[keep_mask], score[keep_mask], cls[keep_mask]
    boxes = np.concatenate([x[:, :2] - x[:, 2:4] / 2, x[:, :2] + x[:, 2:4] / 2], 1)
    order = np.argsort(-score, kind="stable")
    boxes, score, cls = boxes[order], score[order], cls[order]
    shifted = boxes if agnostic else boxes + cls[:, None] * 7680
    area = (shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1])
    kept: list[int] = []
    for i in range(len(shifted)):  # each box against every box kept so far
        k = shifted[kept]
        iw = (np.minimum(k[:, 2], shifted[i, 2]) - np.maximum(k[:, 0], shifted[i, 0])).clip(0)
        ih = (np.minimum(k[:, 3], shifted[i, 3]) - np.maximum(k[:, 1], shifted[i, 1])).clip(0)
        inter = iw * ih
        if not (inter / (area[kept] + area[i] - inter) > iou).any():
            kept.append(i)
    kept = kept[:max_det]
    return np.concatenate([boxes[kept], score[kept, None], cls[kept, None]], 1)


def random_preds(b=3, nc=4, a=500, seed=0, spread=600.0, size=150.0) -> torch.Tensor:
    """Clustered boxes (many overlaps, long suppression chains) with skewed scores."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(b, 2, 8, generator=g) * spread
    pick = torch.randint(0, 8, (b, a), generator=g)
    xy = torch.gather(centres, 2, pick[:, None].expand(-1, 2, -1)) + torch.randn(b, 2, a, generator=g) * 20
    wh = torch.rand(b, 2, a, generator=g) * size + 5
    scores = torch.rand(b, nc, a, generator=g) ** 3
    return torch.cat([xy, wh, scores], 1)


def assert_same(out: list[torch.Tensor], preds: torch.Tensor, **kw):
    for i in range(preds.shape[0]):
        ref = greedy_nms(preds[i].numpy(), **kw)
        got = out[i]
        assert got.shape == ref.shape, f"image {i}: {got.shape[0]} boxes, reference {ref.shape[0]}"
        np.testing.assert_allclose(got, ref, atol=1e-3)


@pytest.mark.parametrize("agnostic", [False, True])
@pytest.mark.parametrize("iou", [0.45, 0.7])
def test_matches_greedy_reference(agnostic, iou):
    preds = random_preds()
    out = BatchedNMS(0.25, iou, agnostic=agnostic, top_k=512)(preds)
    assert_same(out, preds, conf=0.25, iou=iou, agnostic=agnostic)


def test_class_filter_and_max_det():
    preds = random_preds(seed=1)
    out = BatchedNMS(0.2, 0.5, classes=[1, 3], max_det=7, top_k=512)(preds)
    assert_same(out, preds, conf=0.2, iou=0.5, classes=[1, 3], max_det=7)
    assert all(len(o) <= 7 for o in out)


def test_grows_top_k_when_candidates_overflow():
    """More candidates than top_k: redone with room (and remembered), never silently truncated."""
    preds = random_preds(seed=2)
    nms = BatchedNMS(0.3, 0.6, top_k=16)
    out = nms(preds)
    assert nms.top_k > 16
    assert_same(out, preds, conf=0.3, iou=0.6)


def test_long_suppression_chain_converges():
    """A chain where each box suppresses the next: greedy keeps every other one; needs many steps."""
    n = 12
    x = torch.arange(n, dtype=torch.float32) * 10 + 100  # heavy overlap between neighbours only
    preds = torch.zeros(1, 5, n)
    preds[0, 0], preds[0, 1], preds[0, 2], preds[0, 3] = x, 100, 20, 20
    preds[0, 4] = torch.linspace(0.9, 0.5, n)
    out = BatchedNMS(0.25, 0.3, steps=1)(preds)
    assert_same(out, preds, conf=0.25, iou=0.3)
    assert len(out[0]) == n // 2


def test_no_candidates_gives_empty_results():
    preds = random_preds(b=2) * torch.tensor([1, 1, 1, 1, 0, 0, 0, 0.0])[None, :, None]
    out = BatchedNMS(0.25, 0.7)(preds)
    assert [o.shape for o in out] == [(0, 6), (0, 6)]


def test_too_many_candidates_defers_to_sorting_nms():
    preds = random_preds(b=1, a=300)
    assert BatchedNMS(0.0, 0.7, max_top_k=64)(preds) is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="conf and iou"):
        BatchedNMS(conf_thres=1.5)
    with pytest.raises(ValueError, match="raw head output"):
        BatchedNMS()(torch.zeros(5, 6))


def test_matches_package_nms():
    """Same detections as the CPU path's non_max_suppression (ultralytics/utils/ops.py)."""
    from ultralytics.utils.ops import non_max_suppression

    preds = random_preds(seed=3)
    ours = BatchedNMS(0.25, 0.7, top_k=512)(preds)
    theirs = non_max_suppression(preds, 0.25, 0.7, max_det=300)
    for a, b in zip(ours, theirs):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a, b.cpu().numpy(), atol=1e-3)


@requires_cuda
def test_cuda_matches_cpu():
    preds = random_preds(b=4, seed=4)
    cpu = BatchedNMS(0.25, 0.6, top_k=1024)(preds)
    gpu = BatchedNMS(0.25, 0.6, top_k=1024)(preds.cuda())
    for a, b in zip(cpu, gpu):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-3)
