"""Real TensorRT on a CUDA GPU: build FP32, FP16 (FP16 I/O), FP16 with FP32 I/O and dynamic engines
of the shapes model, run them, and compare with the .pt. Skipped without `tensorrt` and CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import REAL_TRT_SOURCES as SOURCES
from tests.trt.matching import agreement

pytestmark = [pytest.mark.tensorrt, pytest.mark.cuda]


@pytest.fixture(scope="module")
def reference(real_trt, shapes_pt):
    from ultralytics import YOLO

    model = YOLO(shapes_pt)
    return {s: model.predict(SOURCES, imgsz=s, device=0, conf=0.25, verbose=False) for s in (320, 416)}


def _export_and_load(weights: Path, **kw):
    from ultralytics import YOLO
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    engine = YOLO(weights).export(format="engine", imgsz=320, device=0, **kw)
    return engine, TensorRTBackend(engine, device=torch.device("cuda:0"))


def _check(reference, results):
    matched, extra = agreement(reference, results)
    assert matched >= 0.99 and extra == 0, (matched, extra)


def test_fp32_engine(gpu_weights, reference):
    from ultralytics import YOLO

    engine, b = _export_and_load(gpu_weights)
    assert b.input.dtype == torch.float32 and not b.dynamic and b.imgsz == (320, 320)
    _check(reference[320], YOLO(engine).predict(SOURCES, device=0, verbose=False))


def test_fp16_engine_has_fp16_io(gpu_weights, reference):
    from ultralytics import YOLO

    engine, b = _export_and_load(gpu_weights, half=True)
    assert b.fp16 and b.input.dtype == torch.float16 and b.output.dtype == torch.float16
    _check(reference[320], YOLO(engine).predict(SOURCES, device=0, verbose=False))


def test_fp16_engine_with_fp32_io(gpu_weights, reference):
    from ultralytics import YOLO

    engine, b = _export_and_load(gpu_weights, half=True, fp32_io=True)
    assert not b.fp16 and b.input.dtype == torch.float32 and b.output.dtype == torch.float32
    _check(reference[320], YOLO(engine).predict(SOURCES, device=0, verbose=False))


def test_dynamic_engine(gpu_weights, reference):
    from ultralytics import YOLO

    engine, b = _export_and_load(gpu_weights, dynamic=True, batch=4)
    assert b.dynamic and b.batch == 4
    model = YOLO(engine)
    _check(reference[320], model.predict(SOURCES, imgsz=320, batch=4, device=0, verbose=False))
    _check(reference[416], model.predict(SOURCES, imgsz=416, batch=3, device=0, verbose=False))
    assert b.forward(torch.zeros(5, 3, 320, 320, device="cuda")).shape[0] == 5  # chunks of the max batch
    with pytest.raises(ValueError, match="min .* max"):
        b.forward(torch.zeros(1, 3, 704, 320, device="cuda"))  # taller than the profile's max 640


def test_plain_plan_layout_and_timing_cache_reuse(gpu_weights, reference):
    from ultralytics import YOLO

    engine, _ = _export_and_load(gpu_weights, half=True, engine_layout="plan")
    cache = Path(engine).with_name("shapes.timing.cache")
    assert cache.is_file() and Path(engine).with_suffix(".json").is_file()
    engine2, _ = _export_and_load(gpu_weights, half=True, engine_layout="plan")  # second build reuses the cache
    _check(reference[320], YOLO(engine2).predict(SOURCES, device=0, verbose=False))


def test_checks_tensorrt_passes_every_route(real_trt, capsys):
    """`yolo checks tensorrt` on real TensorRT: every route (and CUDA graphs, a second GPU if any) passes."""
    from ultralytics.engine.tensorrt_check import main

    code = main(["--imgsz", "320"])
    out = capsys.readouterr().out
    assert code == 0, out


def test_dynamic_engine_enqueues_on_its_own_stream(real_trt, gpu_weights):
    """Enqueues go to the backend's own stream: TensorRT's default-stream warning never appears."""
    engine, backend = _export_and_load(gpu_weights, dynamic=True, batch=2)
    for shape in ((1, 3, 320, 320), (2, 3, 256, 320)):
        out = backend.forward(torch.rand(shape, device="cuda:0"))
        torch.cuda.current_stream().synchronize()
        assert torch.isfinite(out).all()
    assert "default stream" not in backend.logger.tail()
    assert backend.stream.cuda_stream != 0
