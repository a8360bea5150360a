"""`val` end to end on the shapes model: upstream's reference numbers, pycocotools, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import MODELS, REFERENCE, SHAPES
from tests.val.cocoeval import coco_map
from ultralytics.data.dataset import DatasetError, load_split
from ultralytics.engine.validator import DetectionValidator, rect_batches
from ultralytics.utils.metrics import DetMetrics

SHAPES_PT = MODELS / "shapes_yolov8n.pt"


@pytest.fixture(scope="module")
def shapes_val(tmp_path_factory):
    """One full val of the shapes model at imgsz 320 with val's defaults (conf 0.001), predictions saved."""
    torch.set_num_threads(1)  # the CPU is shared with the rest of the suite
    project = tmp_path_factory.mktemp("val")
    validator = DetectionValidator(
        {"data": str(SHAPES / "shapes.yaml"), "imgsz": 320, "device": "cpu", "save_json": True, "project": str(project)}
    )
    metrics = validator.run(str(SHAPES_PT))
    return validator, metrics


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((REFERENCE / "shapes_val_320.json").read_text())


def test_val_reproduces_upstream_precision_recall_and_map50(shapes_val, reference):
    """P and R (at the best-F1 confidence) depend on every prediction's class, confidence and IoU>=0.5
    match: equal to upstream's to 1e-6 means the same detections come out of the same pipeline."""
    validator, metrics = shapes_val
    assert validator.args.conf == 0.001  # val's documented default, not passed by the fixture
    assert metrics.box.mp == pytest.approx(reference["precision"], abs=1e-6)
    assert metrics.box.mr == pytest.approx(reference["recall"], abs=1e-6)
    assert metrics.box.map50 == pytest.approx(reference["mAP50"], abs=1e-6)
    assert metrics.seen == 100 and metrics.nt_per_class.sum() == load_split(SHAPES / "shapes.yaml").n_instances


def test_val_map50_95_matches_upstream_overall_and_per_class(shapes_val, reference):
    """Issue 7's bar is 0.3 points; we hold 0.05 (measured: equal to upstream 8.4.190's to 1e-15)."""
    _, metrics = shapes_val
    assert abs(metrics.box.map - reference["mAP50-95"]) < 0.0005
    for i, c in enumerate(metrics.ap_class_index):
        assert abs(metrics.box.ap[i] - reference["per_class_mAP50-95"][metrics.names[c]]) < 0.0005


def test_val_map_does_not_depend_on_the_low_confidence_tail(shapes_val, reference):
    """Upstream 8.4's AP ends at the highest recall reached, so dropping the 0.001..0.01 detections (about
    440 of 770 here) changes nothing; the 8.3 integration on the same detections is the +0.53 points
    this project once reported (docs/validation.md)."""
    _, metrics = shapes_val
    assert metrics.above(0.01).box.map == pytest.approx(metrics.box.map, abs=1e-12)
    legacy = metrics.above(0.0, ap_method="upstream-8.3").box.map
    assert legacy - reference["mAP50-95"] > 0.003


def test_val_predictions_scored_by_pycocotools_agree(shapes_val):
    """Our saved val predictions scored by pycocotools and by us: within 0.5 points."""
    validator, metrics = shapes_val
    records = json.loads((validator.save_dir / "predictions.json").read_text())
    split = load_split(SHAPES / "shapes.yaml")
    by_name: dict[str, list] = {}
    for r in records:
        by_name.setdefault(r["file_name"], []).append(r)
    sizes, truths, preds = [], [], []
    for path, labels in zip(split.im_files, split.labels):
        p = next(x for x in validator.predictions if Path(x["file"]).name == path.name)
        h, w = p["shape"]
        xywh = labels[:, 1:] * np.array([w, h, w, h])
        truths.append((np.concatenate((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1), labels[:, 0]))
        rows = by_name.get(path.name, [])
        boxes = np.array([r["bbox"] for r in rows], dtype=float).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        # category_id is class + 1, as upstream numbers it for non-COCO datasets
        preds.append((boxes, np.array([r["score"] for r in rows]), np.array([r["category_id"] - 1 for r in rows])))
        sizes.append((h, w))
    coco_5095, coco_50 = coco_map(sizes, truths, preds, max_dets=300)
    assert abs(metrics.box.map - coco_5095) < 0.005, (metrics.box.map, coco_5095)
    assert abs(metrics.box.map50 - coco_50) < 0.006, (metrics.box.map50, coco_50)


def test_val_table_and_speed(shapes_val, capsys):
    validator, metrics = shapes_val
    assert isinstance(metrics, DetMetrics)
    assert set(metrics.speed) == {"preprocess", "inference", "loss", "postprocess"}
    assert metrics.speed["inference"] > 0
    assert len(metrics.maps) == 4 and metrics.results_dict["metrics/mAP50-95(B)"] == metrics.box.map


def test_rect_batches_follow_upstream_rule():
    """Aspect-sorted batches padded to ceil(side * imgsz / stride + 0.5) * stride, computed by hand."""
    shapes = [(200, 320), (320, 160), (300, 320), (320, 240), (320, 320)]
    plan = rect_batches(shapes, batch=2, imgsz=320, stride=32)
    # h/w: 0.625, 2, 0.9375, 1.333, 1 → sorted indices 0, 2, 4, 3, 1
    assert [idx for idx, _ in plan] == [[0, 2], [4, 3], [1]]
    # all wider than tall: height follows the tallest (0.9375), width is imgsz (+ half a stride)
    assert plan[0][1] == (32 * int(np.ceil(0.9375 * 10 + 0.5)), 32 * 11)
    # a square image in the batch: the batch stays square
    assert plan[1][1] == (32 * 11, 32 * 11)
    # all taller than wide: width follows the narrowest relative width (1/2)
    assert plan[2][1] == (32 * 11, 32 * int(np.ceil(0.5 * 10 + 0.5)))


def test_val_of_onnx_uses_its_static_shape(tmp_path):
    """Upstream's ONNX export (static 1x3x320x320) validates on a few images with its own size and batch."""
    data = tmp_path / "d.yaml"
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for name in ("00000", "00001", "00002"):
        shutil.copy(SHAPES / "val" / "images" / f"{name}.jpg", tmp_path / "images")
        shutil.copy(SHAPES / "val" / "labels" / f"{name}.txt", tmp_path / "labels")
    data.write_text(yaml.safe_dump({"val": "images", "names": ["circle", "square", "triangle", "star"]}))
    metrics = DetectionValidator({"data": str(data), "imgsz": 640, "batch": 4, "device": "cpu"}).run(
        str(MODELS / "shapes_yolov8n_upstream.onnx")
    )
    assert metrics.seen == 3 and metrics.box.map50 > 0.9


# ------------------------------------------------------------------------------------- errors
def test_val_without_data_says_what_to_pass():
    with pytest.raises(ValueError, match="val needs a dataset: pass data="):
        DetectionValidator({"device": "cpu"}).run(str(SHAPES_PT))


def test_val_with_wrong_class_count(tmp_path):
    data = tmp_path / "d.yaml"
    data.write_text(yaml.safe_dump({"path": str(SHAPES), "val": "val/images", "names": ["a", "b"]}))
    with pytest.raises(DatasetError, match="class id 3 is out of range"):
        DetectionValidator({"data": str(data), "device": "cpu"}).run(str(SHAPES_PT))
    data.write_text(yaml.safe_dump({"path": str(SHAPES), "val": "val/images", "names": list("abcdefgh")}))
    with pytest.raises(ValueError, match="predicts 4 classes but the dataset d.yaml has 8"):
        DetectionValidator({"data": str(data), "device": "cpu"}).run(str(SHAPES_PT))


def test_yolo_val_api_returns_metrics(tmp_path):
    """The lead's YOLO.val passes its config namespace straight to DetectionValidator.run."""
    from ultralytics import YOLO

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for name in ("00000", "00001"):
        shutil.copy(SHAPES / "val" / "images" / f"{name}.jpg", tmp_path / "images")
        shutil.copy(SHAPES / "val" / "labels" / f"{name}.txt", tmp_path / "labels")
    data = tmp_path / "d.yaml"
    data.write_text(yaml.safe_dump({"val": "images", "names": ["circle", "square", "triangle", "star"]}))
    metrics = YOLO(SHAPES_PT).val(data=str(data), imgsz=160, device="cpu", verbose=False)
    assert isinstance(metrics, DetMetrics) and metrics.seen == 2 and 0 < metrics.box.map <= 1
