"""nms=True for ONNX: the standard NonMaxSuppression op plus fixed-shape glue reproduces the normal path."""

from __future__ import annotations

import shutil

import onnx
import pytest
import torch

from tests.nms.conftest import IMAGES, IMGSZ, assert_same_detections, normal_path


def run(path, batch: torch.Tensor) -> torch.Tensor:
    from ultralytics.nn.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(path, device=torch.device("cpu"))
    assert backend.end2end, "an nms=True export gives final detections: the predictor must not run NMS again"
    return backend.forward(batch.to(torch.float16 if backend.fp16 else torch.float32))


def test_yolo_export_nms_equals_normal_path_and_records_upstream_metadata(shapes_pt, tmp_path, batch, raw):
    from ultralytics import YOLO

    weights = tmp_path / "shapes.pt"
    shutil.copy(shapes_pt, weights)
    path = YOLO(weights).export(format="onnx", imgsz=IMGSZ, nms=True, dynamic=True, batch=4, verbose=False)
    graph = onnx.load(path)
    assert "NonMaxSuppression" in {n.op_type for n in graph.graph.node}
    assert not {n.domain for n in graph.graph.node} - {"", "ai.onnx"}, "standard ops only: no plugin"
    dims = graph.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 300, 6]  # upstream's (B, max_det, 6)
    meta = {p.key: p.value for p in graph.metadata_props}
    assert "'nms': True" in meta["args"] and meta["end2end"] == "False"  # what upstream 8.4 writes for nms exports
    assert_same_detections(run(path, batch), normal_path(raw), box_tol=1e-3, score_tol=1e-5)
    tiny = run(path, torch.rand(2, 3, 64, 64))  # fewer (box, class) pairs than max_det: still (B, 300, 6)
    assert tiny.shape == (2, 300, 6)
    # the user path: predict on the export gives the .pt's results (the predictor runs no second NMS)
    sources = [str(p) for p in IMAGES]
    for ours, theirs in zip(YOLO(path).predict(sources, imgsz=IMGSZ, rect=False, verbose=False),
                            YOLO(weights).predict(sources, imgsz=IMGSZ, rect=False, verbose=False)):  # fmt: skip
        assert len(theirs.boxes) > 0
        torch.testing.assert_close(ours.boxes.data, theirs.boxes.data, atol=1e-3, rtol=0)


def test_agnostic_low_conf_and_small_max_det(graph_with_nms, batch, raw):
    """Many candidates and a small cap: the cap, the order and class-agnostic suppression all hold."""
    path = graph_with_nms(conf=0.01, max_det=5, agnostic=True, iou=0.5)
    expected = normal_path(raw, conf=0.01, iou=0.5, max_det=5, agnostic=True)
    assert max(len(e) for e in expected) == 5
    assert_same_detections(run(path, batch), expected, box_tol=1e-3, score_tol=1e-5)


def test_per_class_nms_at_low_conf(graph_with_nms, batch, raw):
    path = graph_with_nms(conf=0.05, iou=0.45)
    assert_same_detections(run(path, batch), normal_path(raw, conf=0.05, iou=0.45), box_tol=1e-3, score_tol=1e-5)


def test_fp16_graph_keeps_fp16_io_and_runs_nms_on_its_own_output(plain_graph, graph_with_nms, batch, tmp_path):
    from ultralytics.export.onnx import convert_to_fp16

    out = run(graph_with_nms(half=True), batch)
    assert out.dtype == torch.float16 and out.shape == (4, 300, 6)
    fp16 = tmp_path / "fp16.onnx"
    onnx.save(convert_to_fp16(plain_graph), str(fp16))
    from ultralytics.nn.backends.onnxruntime import OnnxRuntimeBackend

    fp16_raw = OnnxRuntimeBackend(fp16, device=torch.device("cpu")).forward(batch.half()).float()
    assert_same_detections(out, normal_path(fp16_raw), box_tol=0.25, score_tol=1e-3)  # FP16 output rounding


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"nms": True, "conf": 1.5}, "conf=1.5"),
        ({"nms": True, "iou": -0.1}, "iou=-0.1"),
        ({"nms": True, "max_det": 0}, "max_det=0"),
        ({"nms": "maybe"}, "nms='maybe'"),
    ],
)
def test_bad_nms_arguments_are_refused(args, message):
    from types import SimpleNamespace

    from ultralytics.export.nms import nms_settings

    with pytest.raises(ValueError, match=message):
        nms_settings(SimpleNamespace(**args))


def test_int8_with_nms_is_refused_before_exporting(shapes_pt, shapes_yaml, tmp_path):
    from ultralytics import YOLO

    weights = tmp_path / "shapes.pt"
    shutil.copy(shapes_pt, weights)
    with pytest.raises(Exception, match="nms=True is not available with INT8"):
        YOLO(weights).export(format="onnx", imgsz=IMGSZ, nms=True, int8=True, data=str(shapes_yaml), fraction=0.05)
    assert not weights.with_suffix(".onnx").exists()
