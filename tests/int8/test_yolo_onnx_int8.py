"""`YOLO(pt).export(format="onnx", int8=True, data=...)` through the public API: a Q/DQ ONNX that predicts."""

from __future__ import annotations

import shutil

import onnx

from tests.conftest import SHAPES
from ultralytics import YOLO


def test_onnx_int8_export_through_yolo(tmp_path, shapes_pt, shapes_yaml):
    weights = tmp_path / "shapes.pt"
    shutil.copy(shapes_pt, weights)
    bystander = tmp_path / "shapes.fp32.onnx"  # a user's file beside the weights must survive the export
    bystander.write_bytes(b"user data")
    out = YOLO(weights).export(format="onnx", int8=True, data=str(shapes_yaml), split="train", fraction=0.1, imgsz=320)
    assert bystander.read_bytes() == b"user data"
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    fp32 = YOLO(weights).predict(SHAPES / "val/images/00000.jpg", imgsz=320, rect=False, verbose=False)[0]
    int8 = YOLO(out).predict(SHAPES / "val/images/00000.jpg", verbose=False)[0]
    assert sorted(int8.boxes.cls.tolist()) == sorted(fp32.boxes.cls.tolist())
