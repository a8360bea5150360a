"""Pure-torch NMS against a brute-force numpy greedy reference, and box helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ultralytics.utils.ops as ops
from ultralytics.utils.ops import nms, non_max_suppression, scale_boxes, xywh2xyxy, xyxy2xywh


def greedy_reference(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """torchvision.ops.nms as documented: visit boxes by decreasing score, drop any box whose IoU
    with an already kept box is > thr. Ties keep input order."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # Python's sort is stable
    kept: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in order:
        k = np.array(kept, dtype=int)
        w = np.clip(np.minimum(boxes[i, 2], boxes[k, 2]) - np.maximum(boxes[i, 0], boxes[k, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[k, 3]) - np.maximum(boxes[i, 1], boxes[k, 1]), 0, None)
        inter = w * h
        union = area[i] + area[k] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
        if not (iou > thr).any():
            kept.append(i)
    return kept


def random_boxes(rng, n, spread=200.0, size=80.0):
    xy = rng.random((n, 2)) * spread
    wh = rng.random((n, 2)) * size + 1
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(16))
def test_nms_equals_greedy_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    boxes = random_boxes(rng, n)
    scores = rng.random(n).astype(np.float32)
    if seed % 3 == 0:  # many exact ties
        scores = np.round(scores, 1)
    thr = float(rng.choice([0.3, 0.45, 0.7]))
    got = nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr).tolist()
    assert got == greedy_reference(boxes.astype(np.float64), scores, thr)


def test_nms_long_chains_and_small_blocks(monkeypatch):
    """Dense boxes force many fixed-point sweeps (host fallback) and several blocks."""
    monkeypatch.setattr(ops, "NMS_BLOCK", 64)
    monkeypatch.setattr(ops, "NMS_MAX_SWEEPS", 2)
    rng = np.random.default_rng(123)
    boxes = random_boxes(rng, 400, spread=100)
    scores = rng.random(400).astype(np.float32)
    got = nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.5).tolist()
    assert got == greedy_reference(boxes.astype(np.float64), scores, 0.5)


def test_nms_equal_boxes_and_threshold_is_strict():
    box = torch.tensor([[0.0, 0, 10, 10]] * 3)
    assert nms(box, torch.tensor([0.5, 0.9, 0.9]), 0.5).tolist() == [1]
    # IoU exactly 0.5 (10x10 vs 10x20 sharing half) is not > 0.5: both kept
    pair = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 20]])
    assert nms(pair, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert nms(pair, torch.tensor([0.9, 0.8]), 0.49).tolist() == [0]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


def reference_pipeline(pred, conf, iou, classes=None, agnostic=False, max_det=300, max_wh=7680):
    """The NMS pipeline step by step in numpy, with the greedy reference."""
    out = []
    for p in pred.transpose(0, 2, 1).astype(np.float64):
        cls_scores = p[:, 4:]
        best, j = cls_scores.max(1), cls_scores.argmax(1)
        keep = best > conf
        xywh, best, j = p[keep, :4], best[keep], j[keep]
        xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
        if classes is not None:
            m = np.isin(j, classes)
            xyxy, best, j = xyxy[m], best[m], j[m]
        shifted = xyxy + (0 if agnostic else j[:, None] * max_wh)
        idx = greedy_reference(shifted, best, iou)[:max_det]
        out.append(np.concatenate([xyxy[idx], best[idx, None], j[idx, None]], 1))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_non_max_suppression_matches_reference(seed):
    rng = np.random.default_rng(1000 + seed)
    bs, nc, anchors = 2, 4, int(rng.integers(50, 250))
    centers = rng.random((bs, 2, anchors)) * 300
    sizes = rng.random((bs, 2, anchors)) * 60 + 2
    scores = rng.random((bs, nc, anchors)) ** 3
    pred = np.concatenate([centers, sizes, scores], 1).astype(np.float32)
    kw = [{}, {"agnostic": True}, {"classes": [1, 3]}, {"max_det": 5}][seed % 4]
    got = non_max_suppression(torch.from_numpy(pred), 0.25, 0.5, **kw)
    expected = reference_pipeline(pred, 0.25, 0.5, **kw)
    for g, e in zip(got, expected):
        assert g.shape == (len(e), 6)
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-3)


def test_non_max_suppression_multi_label_and_extras():
    # one anchor, two classes above threshold → two detections with multi_label
    pred = torch.tensor([[[50.0], [50.0], [20.0], [20.0], [0.9], [0.6], [0.1], [7.0]]])  # 3 classes + 1 extra
    one = non_max_suppression(pred, 0.25, 0.5, nc=3)[0]
    assert one.shape == (1, 7) and one[0, 5] == 0 and one[0, 6] == 7
    both = non_max_suppression(pred, 0.25, 0.5, nc=3, multi_label=True)[0]
    assert sorted(both[:, 5].tolist()) == [0.0, 1.0]
    np.testing.assert_allclose(both[0, :4].numpy(), [40, 40, 60, 60])


def test_non_max_suppression_errors():
    with pytest.raises(ValueError, match="batch, 4 \\+ classes"):
        non_max_suppression(torch.zeros(8, 100))
    with pytest.raises(ValueError, match="conf_thres"):
        non_max_suppression(torch.zeros(1, 8, 100), conf_thres=2)


def test_box_conversions_round_trip():
    rng = np.random.default_rng(0)
    xyxy = random_boxes(rng, 50)
    np.testing.assert_allclose(xywh2xyxy(xyxy2xywh(xyxy)), xyxy, rtol=1e-6, atol=1e-4)
    t = torch.from_numpy(xyxy)
    np.testing.assert_allclose(xyxy2xywh(t).numpy(), xyxy2xywh(xyxy), rtol=1e-6)
    with pytest.raises(ValueError, match="4 values"):
        xywh2xyxy(np.zeros((3, 5)))


@pytest.mark.parametrize("orig", [(280, 320), (500, 741), (300, 451), (1, 1000), (640, 640)])
@pytest.mark.parametrize("auto", [False, True])
def test_scale_boxes_inverts_letterbox(orig, auto):
    """Boxes mapped into the letterboxed canvas with LetterBox's own geometry come back unchanged."""
    from ultralytics.data.augment import letterbox_params

    p = letterbox_params(orig, (320, 320), auto=auto)
    rng = np.random.default_rng(7)
    h, w = orig
    xy1 = rng.random((20, 2)) * [w / 2, h / 2]
    boxes = np.concatenate([xy1, xy1 + rng.random((20, 2)) * [w / 2, h / 2]], 1)
    gx, gy = p.new_unpad[0] / w, p.new_unpad[1] / h
    canvas = boxes * [gx, gy, gx, gy] + [p.left, p.top, p.left, p.top]
    back = scale_boxes(p.canvas_hw, torch.tensor(canvas), orig)
    np.testing.assert_allclose(back.numpy(), boxes, rtol=1e-6, atol=1e-6)


def test_scale_boxes_clips_and_ratio_pad():
    boxes = torch.tensor([[-10.0, -10.0, 400.0, 400.0]])
    out = scale_boxes((320, 320), boxes.clone(), (160, 160))
    assert out.tolist() == [[0.0, 0.0, 160.0, 160.0]]
    out = scale_boxes((320, 320), torch.tensor([[10.0, 20.0, 30.0, 40.0]]), (1000, 1000), ratio_pad=((2.0,), (10, 20)))
    assert out.tolist() == [[0.0, 0.0, 10.0, 10.0]]


def test_profile_measures_time():
    import time

    p = ops.Profile("cpu")
    with p:
        time.sleep(0.02)
    with p:
        pass
    assert 0 <= p.dt < 0.02 <= p.total
