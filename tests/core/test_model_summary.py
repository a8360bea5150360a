"""One model summary: `DetectionModel.info` (upstream's `model.model.info()`) and `YOLO.info()` print and
return the same thing, upstream's line, from the one implementation in utils/model_info.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import MODELS
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel

# Printed by upstream 8.4.190 for the same checkpoint (its numbers are also in the API reference below):
#   /work/upstream-venv/bin/python -c "from ultralytics import YOLO; m = YOLO('shapes_yolov8n.pt'); m.fuse(); m.info()"
UPSTREAM_LINE = "YOLOv8n summary (fused): 72 layers, 3,006,428 parameters, 0 gradients, 8.1 GFLOPs"
REFERENCE = Path(__file__).parents[1] / "api" / "reference" / "upstream_api.json"


def test_yolo_info_and_the_models_own_info_print_upstreams_line(log_lines):
    upstream = json.loads(REFERENCE.read_text())["info_fused"]
    model = YOLO(MODELS / "shapes_yolov8n.pt")
    from_yolo = model.info()
    assert log_lines == [UPSTREAM_LINE]
    log_lines.clear()
    from_model = model.model.info()
    assert log_lines == [UPSTREAM_LINE]
    assert from_model == from_yolo
    assert list(from_yolo[:3]) == upstream[:3] and from_yolo[3] == pytest.approx(upstream[3], abs=0.05)


def test_model_info_keeps_upstreams_signature():
    model = DetectionModel("yolov8n.yaml", nc=3)
    assert model.info(verbose=False) is None  # upstream returns nothing when asked not to log
    layers, params, grads, gflops = model.info(detailed=False, verbose=True, imgsz=320)
    assert params == grads + 16 == sum(p.numel() for p in model.parameters())  # DFL's 16 fixed weights
    assert gflops == pytest.approx(model.info(imgsz=640)[3] / 4)  # GFLOPs scale with the image area


def test_a_model_built_from_its_yaml_counts_upstreams_layers():
    """Upstream shares one SiLU between its Convs, so its leaf-layer count sees it once; recorded from
    upstream 8.4.190: `m = DetectionModel("yolov8n.yaml"); m.info(); m.fuse(); m.info()` (GFLOPs of the
    fused model; unfused, upstream's counter also counts the BatchNorms)."""
    model = DetectionModel("yolov8n.yaml")
    assert model.info()[:3] == (129, 3_157_200, 3_157_184)
    layers, params, grads, gflops = model.fuse().info()
    assert (layers, params, grads) == (72, 3_151_904, 31_920) and gflops == pytest.approx(8.7439872, abs=1e-3)
