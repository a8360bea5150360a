"""`export(format="engine", builder="network")` end to end through the TensorRT stand-in: predictions,
precision, dynamic batch, metadata against the ONNX route, and the options this route refuses."""

from __future__ import annotations

import onnx
import pytest
import torch
from onnx import TensorProto

from tests.netapi.conftest import IMGSZ, SOURCES, VERSIONS
from tests.trt.matching import agreement, assert_identical
from tests.trt_standin import plan as standin_plan
from ultralytics import YOLO
from ultralytics.export.engine_file import read_engine_file

# The route reproduces the raw head output within 1e-4 relative (test_network_builder.py). A box
# coordinate is at most IMGSZ in the letterboxed frame and is scaled back by max(h, w) / IMGSZ, so it
# may move by 1e-4 * max(h, w) pixels; a score (at most 1) by 1e-4.
FP32_CONF_TOL = 1e-4


def fp32_px_tol(results) -> float:
    return 1e-4 * max(max(r.orig_shape) for r in results)


def export_network(weights, **kw) -> str:
    return YOLO(weights).export(format="engine", builder="network", imgsz=IMGSZ, device="cpu", verbose=False, **kw)


def predict(engine, sources=SOURCES, **kw):
    return YOLO(engine).predict(sources, imgsz=IMGSZ, device="cpu", conf=0.25, verbose=False, **kw)


def backend_of(engine):
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(engine, device=torch.device("cpu"))


def built_graph(engine) -> tuple[dict, onnx.ModelProto]:
    """The stand-in plan's build record and the graph it executes (the layers the route added)."""
    header, onnx_bytes = standin_plan.unpack(read_engine_file(engine).plan)
    return header, onnx.load_from_string(onnx_bytes)


@pytest.mark.parametrize("version", VERSIONS)
def test_fp32_engine_predicts_like_pt(install_tensorrt_standin, version, weights, reference):
    trt = install_tensorrt_standin(version)
    engine = export_network(weights)
    assert not list(weights.parent.glob("*.onnx")), "the network route must not write an ONNX file"
    b = backend_of(engine)
    assert not b.dynamic and b.batch == 1 and b.imgsz == (IMGSZ, IMGSZ) and not b.fp16
    meta = read_engine_file(engine).metadata
    assert meta["tensorrt"] == trt.__version__ and meta["precision"] == "fp32"
    assert meta["input_dtypes"] == {"images": "float32"} and meta["output_dtypes"] == {"output0": "float32"}
    assert_identical(reference, predict(engine), px=fp32_px_tol(reference), conf=FP32_CONF_TOL)


@pytest.mark.parametrize("version", VERSIONS)
def test_fp16_engine_has_fp16_io_and_meets_fp16_bar(install_tensorrt_standin, version, weights, reference):
    """Weak typing (<= 10.x): FP32 weights + BuilderFlag.FP16. Strong typing (11.x): FP16 weights, FP16 layers."""
    trt = install_tensorrt_standin(version)
    engine = export_network(weights, half=True)
    b = backend_of(engine)
    assert b.fp16 and b.input.dtype == torch.float16 and b.output.dtype == torch.float16
    meta = read_engine_file(engine).metadata
    assert meta["precision"] == "fp16"
    assert meta["input_dtypes"] == {"images": "float16"} and meta["output_dtypes"] == {"output0": "float16"}

    header, graph = built_graph(engine)
    conv_weights = {n.input[1] for n in graph.graph.node if n.op_type == "Conv"}
    weight_types = {i.data_type for i in graph.graph.initializer if i.name in conv_weights}
    if hasattr(trt.BuilderFlag, "FP16"):
        assert header["precision"] == "fp16" and not header["strongly_typed"]  # the flag was set and honoured
        assert weight_types == {TensorProto.FLOAT}
    else:
        assert header["strongly_typed"] and weight_types == {TensorProto.FLOAT16}
        float32_values = [i.name for i in graph.graph.initializer if i.data_type == TensorProto.FLOAT]
        assert all("scales" in name for name in float32_values), float32_values  # only Resize's scales stay FP32

    # The same bar as the ONNX route's FP16 engines (tests/trt/test_engine_standin.py).
    matched, extra = agreement(reference, predict(engine))
    assert matched >= 0.99 and extra == 0, (matched, extra)


@pytest.mark.parametrize("version", ["10.16.1.11", "11.4.0.106"])
def test_fp16_with_fp32_io(install_tensorrt_standin, version, weights, reference):
    install_tensorrt_standin(version)
    engine = export_network(weights, half=True, fp32_io=True)
    b = backend_of(engine)
    assert not b.fp16 and b.input.dtype == torch.float32 and b.output.dtype == torch.float32
    assert read_engine_file(engine).metadata["precision"] == "fp16"
    matched, extra = agreement(reference, predict(engine))
    assert matched >= 0.99 and extra == 0, (matched, extra)


def test_dynamic_engine_batches_and_sizes(install_tensorrt_standin, weights, shapes_pt, reference):
    """dynamic=True is dynamic in batch, height and width, with the ONNX route's default profile."""
    install_tensorrt_standin("10.16.1.11")
    engine = export_network(weights, dynamic=True, batch=4)
    b = backend_of(engine)
    assert b.dynamic and b.batch == 4 and b.imgsz is None
    assert b.input.profile == ((1, 3, 32, 32), (4, 3, IMGSZ, IMGSZ), (4, 3, 2 * IMGSZ, 2 * IMGSZ))
    tol = fp32_px_tol(reference)
    assert_identical(reference, predict(engine, batch=4, rect=False), px=tol, conf=FP32_CONF_TOL)  # batches 4, 2
    size = 416  # another size: the anchor centres are cut from the grid at run time
    at_size = YOLO(shapes_pt).predict(SOURCES[:4], imgsz=size, rect=False, conf=0.25, verbose=False)
    candidate = YOLO(engine).predict(SOURCES[:4], imgsz=size, rect=False, batch=3, device="cpu", verbose=False)
    assert_identical(at_size, candidate, px=1e-4 * max(max(r.orig_shape) for r in at_size), conf=FP32_CONF_TOL)


# Fields that legitimately differ between the routes: the build time and the plan's size.
ROUTE_SPECIFIC = {"date", "plan_size"}


@pytest.mark.parametrize(
    ("version", "options"),
    [("11.4.0.106", {"half": True}), ("10.16.1.11", {"dynamic": True, "batch": 2})],
)
def test_metadata_equals_onnx_route(install_tensorrt_standin, version, options, weights):
    install_tensorrt_standin(version)
    network_meta = read_engine_file(export_network(weights, **options)).metadata
    onnx_dir = weights.parent / "onnx_route"
    onnx_dir.mkdir()
    onnx_weights = onnx_dir / weights.name
    onnx_weights.write_bytes(weights.read_bytes())
    onnx_engine = YOLO(onnx_weights).export(format="engine", imgsz=IMGSZ, device="cpu", verbose=False, **options)
    onnx_meta = read_engine_file(onnx_engine).metadata

    assert network_meta.keys() == onnx_meta.keys()
    shared = {k: v for k, v in network_meta.items() if k not in ROUTE_SPECIFIC}
    assert shared == {k: v for k, v in onnx_meta.items() if k not in ROUTE_SPECIFIC}


def test_cli_builder_network(install_tensorrt_standin, weights):
    from ultralytics.cfg import entrypoint

    install_tensorrt_standin("11.4.0.106")
    entrypoint(["export", f"model={weights}", "format=engine", "builder=network", f"imgsz={IMGSZ}", "device=cpu"])
    engine = weights.with_suffix(".engine")
    assert read_engine_file(engine).metadata["imgsz"] == [IMGSZ, IMGSZ]
    out = backend_of(engine).forward(torch.rand(1, 3, IMGSZ, IMGSZ))
    assert tuple(out.shape) == (1, 8, sum((IMGSZ // s) ** 2 for s in (8, 16, 32)))  # 4 box + 4 classes, every anchor


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"int8": True, "data": "shapes.yaml"}, "builder=onnx"),
        ({"builder": "graph"}, "builder=onnx"),
    ],
)
def test_unsupported_options_say_what_to_use(install_tensorrt_standin, weights, shapes_yaml, options, message):
    install_tensorrt_standin("10.16.1.11")
    if "data" in options:
        options = {**options, "data": str(shapes_yaml)}
    kw = {"format": "engine", "builder": "network", "imgsz": IMGSZ, "device": "cpu", "verbose": False, **options}
    with pytest.raises(ValueError, match=message):
        YOLO(weights).export(**kw)
    assert not weights.with_suffix(".engine").exists()


def test_unknown_layer_is_refused_before_the_build():
    from ultralytics.export.network_route import check_network_route
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov8n.yaml", nc=3)
    model.model[1] = torch.nn.ReLU()
    with pytest.raises(ValueError, match="ReLU.*builder=onnx"):
        check_network_route(model, precision=32, onnx_file=None)
    check_network_route(DetectionModel("yolov8n.yaml", nc=3), precision=16, onnx_file=None)  # the real thing passes
