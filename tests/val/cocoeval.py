"""Helpers that score predictions with pycocotools (the independent reference for our mAP)."""

from __future__ import annotations

import contextlib
import io

import numpy as np


def coco_map(
    sizes: list[tuple[int, int]],
    gt: list[tuple[np.ndarray, np.ndarray]],
    preds: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    max_dets: int = 100,
) -> tuple[float, float]:
    """(mAP50-95, mAP50) from pycocotools for per-image (h, w), (xyxy, cls) truths, (xyxy, conf, cls) predictions."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, detections = [], [], []
    classes = set()
    for image_id, ((h, w), (gt_xyxy, gt_cls), (xyxy, conf, cls)) in enumerate(zip(sizes, gt, preds), 1):
        images.append({"id": image_id, "height": int(h), "width": int(w)})
        for box, c in zip(np.asarray(gt_xyxy, dtype=float), gt_cls):
            x1, y1, x2, y2 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(c) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
            classes.add(int(c) + 1)
        for box, s, c in zip(np.asarray(xyxy, dtype=float), conf, cls):
            x1, y1, x2, y2 = box
            detections.append(
                {"image_id": image_id, "category_id": int(c) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(s)}
            )
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c} for c in sorted(classes)],
        }
        truth.createIndex()
        result = truth.loadRes(detections) if detections else COCO()
        evaluator = COCOeval(truth, result, "bbox")
        evaluator.params.maxDets = [1, 10, max_dets]
        evaluator.evaluate()
        evaluator.accumulate()
    # summarize() hard-codes maxDets=100; read the accumulated precision (T, R, K, area, maxDets) directly.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    at_50 = precision[0]
    return float(precision[precision > -1].mean()), float(at_50[at_50 > -1].mean())
