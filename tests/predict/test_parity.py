"""Predictions of the shapes .pt equal upstream 8.4.190's recorded predictions (CPU, FP32)."""

from __future__ import annotations

import pytest

from tests.conftest import REFERENCE, SHAPES
from tests.predict.parity import compare_image, load_reference
from ultralytics import YOLO


@pytest.fixture(scope="module")
def shapes_model(shapes_pt):
    return YOLO(shapes_pt)


@pytest.mark.parametrize("imgsz", [320, 640])
def test_predictions_match_upstream(shapes_model, imgsz):
    ref = load_reference(REFERENCE / f"shapes_predict_{imgsz}.json")
    assert ref["imgsz"] == imgsz
    names = sorted(ref["images"])
    paths = [str(SHAPES / "val" / "images" / n) for n in names]
    results = shapes_model.predict(paths, imgsz=imgsz, conf=ref["conf"], iou=ref["iou"], device="cpu", verbose=False)
    assert len(results) == len(names) == 100
    failures = {}
    for name, r in zip(names, results):
        expected = ref["images"][name]
        assert list(r.orig_shape) == expected["orig_shape"]
        b = r.boxes
        problems = compare_image(
            expected, b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy().astype(int), px_tol=0.5, conf_tol=1e-3
        )
        if problems:
            failures[name] = problems
    assert not failures, f"{len(failures)} images differ from upstream: {dict(list(failures.items())[:5])}"


def test_old_and_new_checkpoints_predict_identically(shapes_pt):
    old = YOLO(shapes_pt.with_name("shapes_yolov8n_v8.1.44.pt"))
    new = YOLO(shapes_pt)
    paths = sorted(str(p) for p in (SHAPES / "val" / "images").glob("*.jpg"))[:20]
    for a, b in zip(old.predict(paths, imgsz=320, verbose=False), new.predict(paths, imgsz=320, verbose=False)):
        assert a.boxes.data.shape == b.boxes.data.shape
        assert (a.boxes.data == b.boxes.data).all()
