"""Predictions of the shapes .pt equal upstream 8.4.190's recorded predictions (CPU, FP32)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REFERENCE, SHAPES
from tests.predict.parity import compare_image, load_reference
from ultralytics import YOLO

LIST_REFERENCE = Path(__file__).parent / "reference" / "shapes_list_predict.json"


@pytest.fixture(scope="module")
def shapes_model(shapes_pt):
    return YOLO(shapes_pt)


@pytest.mark.parametrize("imgsz", [320, 640])
def test_predictions_match_upstream(shapes_model, imgsz):
    """The recorded references were made one image at a time: a folder source runs them so."""
    ref = load_reference(REFERENCE / f"shapes_predict_{imgsz}.json")
    assert ref["imgsz"] == imgsz
    names = sorted(ref["images"])
    folder = SHAPES / "val" / "images"
    assert sorted(p.name for p in folder.glob("*.jpg")) == names
    results = shapes_model.predict(folder, imgsz=imgsz, conf=ref["conf"], iou=ref["iou"], device="cpu", verbose=False)
    assert_match(ref["images"], names, results)


@pytest.mark.parametrize("imgsz", [320, 640])
def test_list_source_is_one_batch_like_upstream(shapes_model, imgsz):
    """`predict([paths])` is one batch, as upstream runs a list: the val images' 33 sizes share one
    square letterbox. Reference: upstream 8.4.190 on the same list (tests/predict/reference/)."""
    ref = load_reference(LIST_REFERENCE)
    expected = ref["runs"][str(imgsz)]
    names = sorted(expected)
    paths = [str(SHAPES / "val" / "images" / n) for n in names]
    results = shapes_model.predict(paths, imgsz=imgsz, conf=ref["conf"], iou=ref["iou"], device="cpu", verbose=False)
    assert_match(expected, names, results)


def assert_match(expected_by_name: dict, names: list[str], results: list) -> None:
    assert len(results) == len(names) == 100
    failures = {}
    for name, r in zip(names, results):
        assert Path(r.path).name == name
        expected = expected_by_name[name]
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
