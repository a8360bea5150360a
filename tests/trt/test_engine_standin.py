"""Export → load → predict through the TensorRT stand-in, for every recorded TensorRT version."""

from __future__ import annotations

import torch

from tests.conftest import MODELS
from tests.trt.conftest import DYNAMIC_BATCH, IMGSZ, VAL_IMAGES
from tests.trt.matching import agreement, assert_identical
from ultralytics import YOLO
from ultralytics.export.engine_file import read_engine_file

SOURCES = [str(p) for p in VAL_IMAGES]


def predict(engine, sources=SOURCES, **kw):
    return YOLO(engine).predict(sources, device="cpu", conf=0.25, verbose=False, **kw)


def backend_of(engine):
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(engine, device=torch.device("cpu"))


def test_fp32_engine_predicts_like_pt(trt, build_engine, reference):
    engine = build_engine("fp32")
    b = backend_of(engine)
    assert not b.dynamic and b.batch == 1 and b.imgsz == IMGSZ and not b.fp16
    assert b.names == {0: "circle", 1: "square", 2: "triangle", 3: "star"}
    meta = read_engine_file(engine).metadata
    assert meta["tensorrt"] == trt.__version__ and meta["precision"] == "fp32"
    assert_identical(reference[320], predict(engine, imgsz=320))


def test_fp16_engine_has_fp16_io_and_meets_fp16_bar(trt, build_engine, reference):
    engine = build_engine("fp16")
    b = backend_of(engine)
    assert b.fp16 and b.input.dtype == torch.float16 and b.output.dtype == torch.float16
    out = b.forward(torch.rand(1, 3, *IMGSZ, dtype=torch.float16))
    assert out.dtype == torch.float16 and out.shape[:2] == (1, 8)
    meta = read_engine_file(engine).metadata
    assert meta["precision"] == "fp16"
    assert set(meta["input_dtypes"].values()) == {"float16"} and set(meta["output_dtypes"].values()) == {"float16"}
    matched, extra = agreement(reference[320], predict(engine, imgsz=320))
    assert matched >= 0.99 and extra == 0, (matched, extra)


def test_dynamic_engine_batches_and_sizes(trt, build_engine, reference):
    engine = build_engine("dynamic")
    b = backend_of(engine)
    assert b.dynamic and b.batch == DYNAMIC_BATCH and b.imgsz is None
    assert b.input.profile == ((1, 3, 32, 32), (DYNAMIC_BATCH, 3, *IMGSZ), (DYNAMIC_BATCH, 3, 640, 640))
    assert_identical(reference[320], predict(engine, imgsz=320, rect=False, batch=DYNAMIC_BATCH))  # batches of 4, 2
    assert_identical(reference[416], predict(engine, SOURCES[:4], imgsz=416, rect=False, batch=3))  # new shape


def test_yolo_export_engine_end_to_end(install_tensorrt_standin, shapes_pt, tmp_path, reference):
    """The user path: YOLO(pt).export(format="engine") → a plain plan + sidecar → YOLO(engine).predict."""
    import shutil

    install_tensorrt_standin("10.16.1.11")
    weights = tmp_path / "shapes.pt"
    shutil.copy(shapes_pt, weights)
    existing = tmp_path / "shapes.onnx"
    existing.write_bytes(b"the user's own ONNX")
    engine = YOLO(weights).export(format="trt", imgsz=320, half=True, engine_layout="plan", device="cpu")
    assert engine.endswith("shapes.engine") and (tmp_path / "shapes.json").is_file()
    assert (tmp_path / "shapes.timing.cache").is_file()
    assert existing.read_bytes() == b"the user's own ONNX"  # the intermediate ONNX went elsewhere
    meta = read_engine_file(engine).metadata
    assert meta["precision"] == "fp16" and meta["tensorrt"] == "10.16.1.11" and meta["imgsz"] == [320, 320]
    matched, extra = agreement(reference[320][:2], predict(engine, SOURCES[:2]))
    assert matched >= 0.99 and extra == 0, (matched, extra)


def test_int8_route_follows_capabilities(install_tensorrt_standin, build_engine, shapes_yaml):
    """<= 10.x: TensorRT calibrates (cache next to the engine); 11.x: built from our Q/DQ ONNX, no calibrator."""
    int8 = {"int8": True, "data": str(shapes_yaml), "split": "train", "fraction": 0.05}
    for version, calibrates in (("10.16.1.11", True), ("11.4.0.106", False)):
        install_tensorrt_standin(version)
        engine = build_engine("fp32", name=f"int8_{version}", **int8)
        cache = engine.with_name(f"int8_{version}.int8.cache")
        assert cache.is_file() == calibrates, version
        assert read_engine_file(engine).metadata["precision"] == "int8"
        out = backend_of(engine).forward(torch.rand(1, 3, *IMGSZ))
        assert out.shape[:2] == (1, 8) and torch.isfinite(out).all()


def test_only_static_engines_and_pytorch_are_graph_captured(trt, build_engine, shapes_pt):
    """CUDA graphs replay a static engine at its one input shape and PyTorch at any shape; an ONNX Runtime
    session (and a dynamic engine) runs eagerly — ORT's work is not pure device work on our stream."""
    from ultralytics.nn.autobackend import AutoBackend

    static = AutoBackend(build_engine("fp32"))
    assert static.graph_safe((1, 3, *IMGSZ)) and not static.graph_safe((1, 3, 64, 64))
    assert not AutoBackend(build_engine("dynamic")).graph_safe((1, 3, *IMGSZ))
    assert not AutoBackend(MODELS / "shapes_yolov8n_upstream.onnx").graph_safe((1, 3, 320, 320))
    assert AutoBackend(shapes_pt).graph_safe((2, 3, 96, 128))
