"""INT8 engines through `export_engine` and the stand-in: the route each TensorRT version takes.

<= 10.x: calibrator during the build, cache next to the engine, reused without reading images.
11.x: no calibrator API (the stand-in has none to touch); the Q/DQ ONNX is what the parser receives.
The FP32 ONNX is the upstream fixture (passed as onnx_file) so no export runs here.
"""

from __future__ import annotations

import onnx
import pytest

from tests.conftest import MODELS, SHAPES
from tests.trt_standin import plan as standin_plan
from ultralytics.export import calibration
from ultralytics.export.engine_file import read_engine_file
from ultralytics.trt.device import HOST_MEMORY_ENV


@pytest.fixture(autouse=True)
def host_memory(monkeypatch):
    monkeypatch.setenv(HOST_MEMORY_ENV, "1")


@pytest.fixture(scope="module")
def detection_model():
    from ultralytics import YOLO

    return YOLO(MODELS / "shapes_yolov8n.pt").model.float().eval()


def export_int8(model, file, **overrides):
    from ultralytics.cfg import get_cfg, resolve_precision
    from ultralytics.export.tensorrt import export_engine

    args = {"format": "engine", "imgsz": [320, 320], "int8": True, "data": str(SHAPES / "shapes.yaml")}
    cfg = get_cfg({**args, "split": "train", "fraction": 0.05, "verbose": False, **overrides})
    cfg.precision = resolve_precision(cfg.half, cfg.int8, cfg.quantize)
    return export_engine(model, file, cfg, onnx_file=MODELS / "shapes_yolov8n_upstream.onnx")


def built_onnx(engine) -> onnx.ModelProto:
    """The network the stand-in built (it stores the assembled ONNX in its plan)."""
    _, onnx_bytes = standin_plan.unpack(read_engine_file(engine).plan)
    return onnx.load_from_string(onnx_bytes)


@pytest.mark.parametrize("version", ["10.16.1.11"])
def test_calibrated_engine_then_cached_rebuild(
    version, install_tensorrt_standin, detection_model, tmp_path, monkeypatch
):
    install_tensorrt_standin(version)
    engine = export_int8(detection_model, tmp_path / "shapes.engine")
    header, _ = standin_plan.unpack(read_engine_file(engine).plan)
    assert header["int8"] and header["calibration"]["source"] == "batches" and header["calibration"]["batches"] == 10
    caches = sorted(p.name for p in tmp_path.glob("*int8.cache*"))
    assert len(caches) == 2 and caches[1] == caches[0] + ".json"  # TensorRT's cache + our fingerprint

    def no_reading(*args, **kwargs):
        raise AssertionError("a cached INT8 rebuild must not read calibration images")

    monkeypatch.setattr(calibration.cv2, "imread", no_reading)
    engine = export_int8(detection_model, tmp_path / "shapes.engine")
    header, _ = standin_plan.unpack(read_engine_file(engine).plan)
    assert header["calibration"]["source"] == "cache"


@pytest.mark.parametrize("version", ["11.4.0.106"])
def test_tensorrt_11_parses_the_qdq_onnx(version, install_tensorrt_standin, detection_model, tmp_path):
    trt = install_tensorrt_standin(version)
    assert not hasattr(trt, "IInt8EntropyCalibrator2") and not hasattr(trt.BuilderFlag, "INT8")
    engine = export_int8(detection_model, tmp_path / "shapes.engine")
    model = built_onnx(engine)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
    # Strongly typed: the float parts are FP16 (FP16 scales need opset 19), the graph I/O stays FP32.
    inits = {init.name: init.data_type for init in model.graph.initializer}
    scales = {inits[n.input[1]] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits}
    assert scales == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert not list(tmp_path.glob("*int8.cache*"))  # no calibrator, no calibration cache
