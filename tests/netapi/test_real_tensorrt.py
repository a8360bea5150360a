"""`builder=network` on real TensorRT and a CUDA GPU: FP32, FP16 (FP16 I/O), FP16 with FP32 I/O and a
dynamic FP16 engine of the shapes model, compared with the .pt. Skipped without `tensorrt` and CUDA."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import REAL_TRT_SOURCES as SOURCES
from tests.trt.matching import agreement

pytestmark = [pytest.mark.tensorrt, pytest.mark.cuda]


@pytest.fixture(scope="module")
def gpu_reference(real_trt, shapes_pt):
    from ultralytics import YOLO

    model = YOLO(shapes_pt)
    return {s: model.predict(SOURCES, imgsz=s, rect=False, device=0, conf=0.25, verbose=False) for s in (320, 416)}


@pytest.mark.parametrize(
    ("options", "io_dtype"),
    [({}, torch.float32), ({"half": True}, torch.float16), ({"half": True, "fp32_io": True}, torch.float32)],
)
def test_static_engines(gpu_weights, gpu_reference, options, io_dtype):
    from ultralytics import YOLO
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    engine = YOLO(gpu_weights).export(format="engine", builder="network", imgsz=320, device=0, **options)
    backend = TensorRTBackend(engine, device=torch.device("cuda:0"))
    assert backend.input.dtype == io_dtype and backend.output.dtype == io_dtype
    results = YOLO(engine).predict(SOURCES, imgsz=320, device=0, conf=0.25, verbose=False)
    matched, extra = agreement(gpu_reference[320], results)
    assert matched >= 0.99 and extra == 0, (matched, extra)


def test_dynamic_fp16_engine(gpu_weights, gpu_reference):
    from ultralytics import YOLO

    engine = YOLO(gpu_weights).export(
        format="engine", builder="network", imgsz=320, half=True, dynamic=True, batch=4, device=0
    )
    for size in (320, 416):
        results = YOLO(engine).predict(SOURCES, imgsz=size, rect=False, batch=4, device=0, conf=0.25, verbose=False)
        matched, extra = agreement(gpu_reference[size], results)
        assert matched >= 0.99 and extra == 0, (size, matched, extra)
