"""Shared pieces for the engine tests: the shapes model, its ONNX exports (made once per session and
reused by every TensorRT version), reference predictions from the .pt, and an engine-building helper."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import SHAPES
from ultralytics.trt.device import HOST_MEMORY_ENV

IMGSZ = (320, 320)
DYNAMIC_BATCH = 4
VAL_IMAGES = sorted((SHAPES / "val" / "images").glob("*.jpg"))[:6]  # a subset keeps 6 versions x 3 engines fast


@pytest.fixture(autouse=True)
def host_memory(monkeypatch):
    """The stand-in reads host pointers: let the builder and backend use CPU tensors (the documented hook)."""
    monkeypatch.setenv(HOST_MEMORY_ENV, "1")


@pytest.fixture(scope="session")
def shapes_yolo(shapes_pt):
    from ultralytics import YOLO

    return YOLO(shapes_pt)


@pytest.fixture(scope="session")
def detection_model(shapes_pt):
    from ultralytics.nn.checkpoint import load_checkpoint

    model, _ = load_checkpoint(shapes_pt)
    return model.float().eval()


@pytest.fixture(scope="session")
def onnx_files(detection_model, tmp_path_factory) -> dict[str, Path]:
    """The ONNX graphs the engine variants are built from, exported once (the slowest part of these tests)."""
    from ultralytics.export.metadata import build_metadata
    from ultralytics.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx")
    variants = {
        "fp32": dict(half=False, dynamic=False, batch=1),
        "fp16": dict(half=True, dynamic=False, batch=1),
        "dynamic": dict(half=False, dynamic=True, batch=DYNAMIC_BATCH),
    }
    files = {}
    for key, kw in variants.items():
        meta = build_metadata(detection_model, imgsz=IMGSZ, batch=kw["batch"], args={})
        files[key] = export_onnx(detection_model, out / f"{key}.onnx", imgsz=IMGSZ, metadata=meta, **kw)
    return files


@pytest.fixture(scope="session")
def reference(shapes_yolo):
    """The .pt's predictions on the val subset, letterboxed to the full square (rect=False): the input a
    static engine gets, and what a dynamic engine gets when a batch mixes image shapes."""
    sources = [str(p) for p in VAL_IMAGES]
    return {
        320: shapes_yolo.predict(sources, imgsz=320, rect=False, conf=0.25, verbose=False),
        416: shapes_yolo.predict(sources[:4], imgsz=416, rect=False, conf=0.25, verbose=False),
    }


ONNX_SETTINGS = {
    "fp32": {},
    "fp16": {"half": True},
    "dynamic": {"dynamic": True, "batch": DYNAMIC_BATCH},
}


@pytest.fixture
def build_engine(detection_model, onnx_files, tmp_path):
    """Build `<tmp>/<name>.engine` from one of the shared ONNX files through export_engine."""
    from ultralytics.cfg import get_cfg, resolve_precision
    from ultralytics.export.tensorrt import export_engine

    def build(variant: str, name: str = "shapes", **overrides) -> Path:
        cfg = get_cfg(
            {"format": "engine", "imgsz": list(IMGSZ), "verbose": False, **ONNX_SETTINGS[variant], **overrides}
        )
        cfg.precision = resolve_precision(cfg.half, cfg.int8, cfg.quantize)
        return export_engine(detection_model, tmp_path / f"{name}.engine", cfg, onnx_file=onnx_files[variant])

    return build


class FakeDevices:
    """Two CUDA devices as far as torch.cuda.device / current_device tell (CPU-only machines)."""

    current = 0

    def __init__(self, device):
        self.index = torch.device(device).index if not isinstance(device, int) else device

    def __enter__(self):
        self.saved, FakeDevices.current = FakeDevices.current, self.index or 0

    def __exit__(self, *exc):
        FakeDevices.current = self.saved


@pytest.fixture
def two_devices(monkeypatch):
    FakeDevices.current = 0
    monkeypatch.setattr(torch.cuda, "device", FakeDevices)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: FakeDevices.current)
    return FakeDevices
