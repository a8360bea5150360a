"""nms=True engines through the TensorRT stand-in: the ONNX route (parser → INMSLayer) on every recorded
surface and the network-API route (add_nms), each predicting what the normal path predicts."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.nms.conftest import IMGSZ, assert_same_detections, normal_path
from ultralytics.export.engine_file import read_engine_file

NETWORK_VERSIONS = ["8.6.1", "10.16.1.11", "11.4.0.106"]  # 8.x, the last 10.x and the last 11.x surfaces


def backend_of(engine):
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(engine, device=torch.device("cpu"))


def engine_from_graph(onnx_file, tmp_path, **overrides):
    """export_engine on a prepared nms ONNX (the ONNX route, as YOLO.export does after its ONNX export)."""
    from tests.conftest import FIXTURES
    from ultralytics.cfg import get_cfg, resolve_precision
    from ultralytics.export.tensorrt import export_engine
    from ultralytics.nn.checkpoint import load_checkpoint

    model, _ = load_checkpoint(FIXTURES / "models" / "shapes_yolov8n.pt")
    cfg = get_cfg({"format": "engine", "imgsz": IMGSZ, "nms": True, "dynamic": True, "batch": 4, "verbose": False,
                   **overrides})  # fmt: skip
    cfg.precision = resolve_precision(cfg.half, cfg.int8, cfg.quantize)
    return export_engine(model, tmp_path / "shapes.engine", cfg, onnx_file=onnx_file)


def test_onnx_route_engine_equals_normal_path(trt, graph_with_nms, tmp_path, batch, raw):
    engine = engine_from_graph(graph_with_nms(), tmp_path)
    b = backend_of(engine)
    assert b.end2end and b.dynamic and tuple(b.output.shape[1:]) == (300, 6)
    meta = read_engine_file(engine).metadata
    assert meta["args"]["nms"] is True and meta["output_dtypes"] == {"output0": "float32"}
    assert_same_detections(b.forward(batch), normal_path(raw), box_tol=1e-3, score_tol=1e-5)
    assert_same_detections(b.forward(batch[:1]).clone(), normal_path(raw[:1]), box_tol=1e-3, score_tol=1e-5)


@pytest.mark.parametrize("version", ["8.6.1", "11.4.0.106"])  # weakly typed FP16 flag / strongly typed FP16 graph
def test_onnx_route_fp16_engine_has_fp16_io(install_tensorrt_standin, version, graph_with_nms, tmp_path, batch):
    install_tensorrt_standin(version)
    b = backend_of(engine_from_graph(graph_with_nms(half=True), tmp_path, half=True))
    assert b.end2end and b.fp16 and b.output.dtype == torch.float16
    out = b.forward(batch.half())
    reference = backend_of(engine_from_graph(graph_with_nms(half=True), tmp_path, half=True))  # determinism
    assert torch.equal(out.clone(), reference.forward(batch.half()))
    assert (out[:, :, 4] > 0.25).sum() > 0


@pytest.mark.parametrize("version", NETWORK_VERSIONS)
@pytest.mark.parametrize("agnostic", [False, True])
def test_network_route_engine_equals_normal_path(install_tensorrt_standin, version, agnostic, shapes_pt, tmp_path,
                                                 batch, raw):  # fmt: skip
    from ultralytics import YOLO

    install_tensorrt_standin(version)
    weights = tmp_path / "shapes.pt"
    shutil.copy(shapes_pt, weights)
    engine = YOLO(weights).export(
        format="engine", builder="network", nms=True, agnostic_nms=agnostic, imgsz=IMGSZ, batch=4, device="cpu",
        verbose=False, engine_layout="plan",
    )  # fmt: skip
    b = backend_of(engine)
    assert b.end2end and not b.dynamic and b.batch == 4
    assert read_engine_file(engine).metadata["args"]["nms"] is True  # from the sidecar .json (plan layout)
    out = b.forward(batch)
    assert out.shape == (4, 300, 6)
    assert_same_detections(out, normal_path(raw, agnostic=agnostic), box_tol=1e-3, score_tol=1e-5)


def test_network_route_dynamic_fp16_engine(install_tensorrt_standin, shapes_pt, tmp_path, batch, raw):
    from ultralytics import YOLO

    install_tensorrt_standin("11.4.0.106")
    weights = tmp_path / "shapes.pt"
    shutil.copy(shapes_pt, weights)
    engine = YOLO(weights).export(
        format="engine", builder="network", nms=True, half=True, dynamic=True, batch=4, imgsz=IMGSZ, device="cpu",
        verbose=False,
    )  # fmt: skip
    b = backend_of(engine)
    assert b.end2end and b.dynamic and b.output.dtype == torch.float16
    out = b.forward(batch.half()).float()
    expected = normal_path(raw)
    for got, ref in zip(out, expected):  # FP16 body: same detections, FP16-rounded coordinates
        n = len(ref)
        assert (got[:, 4] > 0).sum() == n
        torch.testing.assert_close(got[:n, :4], torch.from_numpy(ref[:, :4]), atol=1.0, rtol=0)
        torch.testing.assert_close(got[:n, 5], torch.from_numpy(ref[:, 5]))
    assert b.forward(torch.rand(1, 3, 64, 64).half()).shape == (1, 300, 6)  # a size far below the export's


def test_end2end_head_refuses_nms(shapes_pt, monkeypatch):
    from ultralytics.export.nms import check_nms_model
    from ultralytics.nn.checkpoint import load_checkpoint

    model, _ = load_checkpoint(shapes_pt)
    check_nms_model(model)  # YOLOv8: NMS-based, accepted
    monkeypatch.setattr(type(model.model[-1]), "end2end", property(lambda self: True))  # a YOLO26 one-to-one head
    with pytest.raises(ValueError, match="end-to-end"):
        check_nms_model(model)
