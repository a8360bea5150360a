"""Exports shared by the ONNX tests: each is made once per session (an export takes seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MODELS, SHAPES
from ultralytics import YOLO

IMGSZ = 320


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory, shapes_pt) -> Path:
    """A private copy of the shapes .pt, so exports land next to it without touching ../shared."""
    folder = tmp_path_factory.mktemp("onnx_exports")
    shutil.copy(shapes_pt, folder / "shapes.pt")
    return folder


@pytest.fixture(scope="session")
def pt_yolo(export_dir) -> YOLO:
    return YOLO(export_dir / "shapes.pt")


@pytest.fixture(scope="session")
def fp32_onnx(pt_yolo) -> Path:
    return Path(pt_yolo.export(format="onnx", imgsz=IMGSZ))


@pytest.fixture(scope="session")
def fp16_onnx(export_dir, pt_yolo) -> Path:
    from ultralytics.export.onnx import export_onnx

    return export_onnx(pt_yolo.model, export_dir / "shapes_fp16.onnx", imgsz=(IMGSZ, IMGSZ), half=True)


@pytest.fixture(scope="session")
def dynamic_onnx(export_dir, pt_yolo) -> Path:
    from ultralytics.export.onnx import export_onnx

    return export_onnx(pt_yolo.model, export_dir / "shapes_dynamic.onnx", imgsz=(IMGSZ, IMGSZ), dynamic=True)


@pytest.fixture(scope="session")
def upstream_onnx() -> Path:
    return MODELS / "shapes_yolov8n_upstream.onnx"


@pytest.fixture(scope="session")
def val_images() -> list[str]:
    return sorted(str(p) for p in (SHAPES / "val" / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def pt_square_predictions(pt_yolo, val_images) -> list:
    """The .pt's predictions letterboxed to the full square (rect=False), as static ONNX models see them."""
    return pt_yolo.predict(val_images, imgsz=IMGSZ, batch=25, rect=False, verbose=False)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Brute-force IoU of every xyxy box in `a` with every box in `b`."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def match_boxes(ref, other, iou_thres: float) -> tuple[int, int, int]:
    """(boxes of `ref`, those with a same-class box in `other` at IoU >= iou_thres, unmatched boxes of
    `other` with conf > 0.5) for one image's Results."""
    a, b = ref.boxes, other.boxes
    if len(a) == 0 or len(b) == 0:
        return len(a), 0, int((b.conf.numpy() > 0.5).sum()) if len(b) else 0
    same_class = a.cls.numpy()[:, None] == b.cls.numpy()[None, :]
    iou = iou_matrix(a.xyxy.numpy(), b.xyxy.numpy()) * same_class
    matched = int((iou.max(axis=1) >= iou_thres).sum())
    extra = int(((iou.max(axis=0) < iou_thres) & (b.conf.numpy() > 0.5)).sum())
    return len(a), matched, extra
