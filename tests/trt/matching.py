"""Compare two sets of detections with a brute-force numpy IoU (independent of the package's ops)."""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4 xyxy) with every box in b (M, 4 xyxy)."""
    iou = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            w = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            h = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = w * h
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            iou[i, j] = inter / union if union > 0 else 0.0
    return iou


def detections(result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyxy, conf, cls) numpy arrays of one Results object."""
    boxes = result.boxes
    return (
        boxes.xyxy.detach().cpu().double().numpy().reshape(-1, 4),
        boxes.conf.detach().cpu().double().numpy().reshape(-1),
        boxes.cls.detach().cpu().numpy().reshape(-1).astype(int),
    )


def agreement(reference: list, candidate: list, iou_min: float = 0.95, extra_conf: float = 0.5) -> tuple[float, int]:
    """(share of reference boxes matched by a same-class candidate box with IoU >= iou_min,
    number of candidate boxes above `extra_conf` that match no reference box of their class)."""
    matched = total = extra = 0
    for ref, cand in zip(reference, candidate, strict=True):
        rb, _, rc = detections(ref)
        cb, cc_conf, cc = detections(cand)
        iou = iou_matrix(rb, cb)
        same = (rc[:, None] == cc[None, :]) if len(rb) and len(cb) else np.zeros((len(rb), len(cb)), bool)
        good = (iou >= iou_min) & same
        total += len(rb)
        matched += int(good.any(axis=1).sum()) if len(cb) else 0
        loose = (iou >= 0.5) & same
        unmatched = ~loose.any(axis=0) if len(rb) else np.ones(len(cb), bool)
        extra += int((unmatched & (cc_conf > extra_conf)).sum())
    return (matched / total if total else 1.0), extra


def assert_identical(reference: list, candidate: list, px: float = 0.1, conf: float = 1e-3) -> None:
    """Same boxes, classes and scores, up to float rounding between backends."""
    for k, (ref, cand) in enumerate(zip(reference, candidate, strict=True)):
        rb, rconf, rc = detections(ref)
        cb, cconf, cc = detections(cand)
        assert len(rb) == len(cb), f"image {k}: {len(rb)} reference boxes, {len(cb)} engine boxes"
        order_r, order_c = np.lexsort((rb[:, 0], rc)), np.lexsort((cb[:, 0], cc))
        assert (rc[order_r] == cc[order_c]).all(), f"image {k}: classes differ"
        assert np.abs(rb[order_r] - cb[order_c]).max(initial=0) < px, f"image {k}: boxes differ by >= {px} px"
        assert np.abs(rconf[order_r] - cconf[order_c]).max(initial=0) < conf, f"image {k}: scores differ"
