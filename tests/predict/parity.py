"""Matching our predictions against upstream's recorded ones (shared by the CPU tests and the GPU script)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def load_reference(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between (n,4) and (m,4) xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a[:, None] + area_b[None] - inter + 1e-9)


def match_boxes(ref_xyxy, ref_cls, xyxy, cls):
    """Greedy one-to-one matching by IoU among boxes of the same class: list of (ref_i, ours_j)."""
    ref_xyxy, xyxy = np.asarray(ref_xyxy, float).reshape(-1, 4), np.asarray(xyxy, float).reshape(-1, 4)
    iou = box_iou_np(ref_xyxy, xyxy)
    iou[np.asarray(ref_cls)[:, None] != np.asarray(cls)[None, :]] = -1
    pairs = []
    while iou.size and iou.max() > 0:
        i, j = np.unravel_index(iou.argmax(), iou.shape)
        pairs.append((int(i), int(j)))
        iou[i, :] = -1
        iou[:, j] = -1
    return pairs


def compare_image(ref: dict, xyxy, conf, cls, px_tol: float, conf_tol: float | None) -> list[str]:
    """Differences between one image's reference and our boxes, as readable strings (empty: equal)."""
    problems = []
    if len(ref["cls"]) != len(cls):
        problems.append(f"{len(ref['cls'])} reference boxes vs {len(cls)} ours")
    pairs = match_boxes(ref["xyxy"], ref["cls"], xyxy, cls)
    if len(pairs) != min(len(ref["cls"]), len(cls)):
        problems.append(f"only {len(pairs)} boxes matched by class")
    for i, j in pairs:
        d = np.abs(np.asarray(ref["xyxy"][i]) - np.asarray(xyxy[j])).max()
        if d > px_tol:
            problems.append(f"box {i}: corners differ by {d:.3f} px")
        if conf_tol is not None and abs(ref["conf"][i] - float(conf[j])) > conf_tol:
            problems.append(f"box {i}: conf {ref['conf'][i]:.5f} vs {float(conf[j]):.5f}")
    return problems
