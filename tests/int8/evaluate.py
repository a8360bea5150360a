"""A small, independent mAP evaluation of an ONNX detector with ONNX Runtime and pycocotools.

Independent of the project's validator on purpose: the INT8 accuracy claim is checked against COCO's
reference implementation of AP (pycocotools), with brute-force NMS in numpy.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ultralytics.export.calibration import letterbox

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS, highest score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[overlap <= iou]
    return keep


def detect(raw: np.ndarray, conf: float = 0.001, iou: float = 0.7, max_det: int = 300) -> np.ndarray:
    """(4+nc, A) raw head output → (n, 6) xyxy, score, class; class-aware NMS like upstream's val."""
    xywh, scores = raw[:4].T, raw[4:].T
    cls = scores.argmax(1)
    best = scores.max(1)
    mask = best > conf
    xywh, best, cls = xywh[mask], best[mask], cls[mask]
    xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    offset = cls[:, None] * 7680.0  # separate classes so one NMS pass is class-aware
    keep = nms(xyxy + offset, best, iou)[:max_det]
    return np.concatenate([xyxy[keep], best[keep, None], cls[keep, None].astype(np.float64)], 1)


def evaluate_onnx(onnx_file: str | Path, image_dir: Path, imgsz: int = 320) -> dict[str, float]:
    """mAP50-95 and mAP50 of `onnx_file` on a YOLO-format folder (images/ next to labels/)."""
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    half = session.get_inputs()[0].type == "tensor(float16)"
    images = sorted(p for p in Path(image_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    gt = {"images": [], "annotations": [], "categories": []}
    detections = []
    classes: set[int] = set()
    for image_id, file in enumerate(images):
        image = cv2.imread(str(file))
        h, w = image.shape[:2]
        gt["images"].append({"id": image_id, "width": w, "height": h})
        label = file.parent.parent / "labels" / f"{file.stem}.txt"
        for line in label.read_text().splitlines() if label.exists() else []:
            c, x, y, bw, bh = map(float, line.split())
            classes.add(int(c))
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": int(c),
                    "bbox": [(x - bw / 2) * w, (y - bh / 2) * h, bw * w, bh * h],
                    "area": bw * w * bh * h,
                    "iscrowd": 0,
                }
            )
        boxed = letterbox(image, (imgsz, imgsz))
        tensor = np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0
        raw = session.run(None, {input_name: tensor.astype(np.float16) if half else tensor})[0][0].astype(np.float32)
        gain = min(imgsz / h, imgsz / w)
        pad_x, pad_y = round((imgsz - round(w * gain)) / 2 - 0.1), round((imgsz - round(h * gain)) / 2 - 0.1)
        for x1, y1, x2, y2, score, c in detect(raw):
            x1, x2 = np.clip([(x1 - pad_x) / gain, (x2 - pad_x) / gain], 0, w)
            y1, y2 = np.clip([(y1 - pad_y) / gain, (y2 - pad_y) / gain], 0, h)
            detections.append(
                {"image_id": image_id, "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
            )
    gt["categories"] = [{"id": c} for c in sorted(classes | {int(d["category_id"]) for d in detections})]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        result = coco.loadRes(detections) if detections else COCO()
        evaluator = COCOeval(coco, result, "bbox")
        evaluator.params.maxDets = [1, 10, 300]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # (iou thresholds, recall, class), all areas, 300 dets

    def mean_ap(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else 0.0

    return {"mAP50-95": mean_ap(precision), "mAP50": mean_ap(precision[0])}
