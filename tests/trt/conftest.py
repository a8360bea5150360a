"""Shared pieces for the engine tests: the shapes model, its ONNX exports (made once per session and
reused by every TensorRT version), reference predictions from the .pt, and an engine-building helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHAPES
from ultralytics.trt.device import HOST_MEMORY_ENV

IMGSZ = (320, 320)
DYNAMIC_BATCH = 4
VAL_IMAGES = sorted((SHAPES / "val" / "images").glob("*.jpg"))[:8]  # a subset keeps 6 versions x 4 engines fast


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
    """The four ONNX graphs the engine variants are built from, exported once."""
    from ultralytics.export.metadata import build_metadata
    from ultralytics.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx")
    variants = {
        "fp32": dict(half=False, dynamic=False, batch=1),
        "fp16": dict(half=True, dynamic=False, batch=1),
        "fp32_io": dict(half=True, keep_io_types=True, dynamic=False, batch=1),
        "dynamic": dict(half=False, dynamic=True, batch=DYNAMIC_BATCH),
    }
    files = {}
    for key, kw in variants.items():
        meta = build_metadata(detection_model, imgsz=IMGSZ, batch=kw["batch"], args={})
        files[key] = export_onnx(detection_model, out / f"{key}.onnx", imgsz=IMGSZ, metadata=meta, **kw)
    return files


@pytest.fixture(scope="session")
def reference(shapes_yolo):
    """The .pt's predictions on the val subset at 320 (and 416 for the dynamic-size check)."""
    return {
        size: shapes_yolo.predict([str(p) for p in VAL_IMAGES], imgsz=size, conf=0.25, verbose=False)
        for size in (320, 416)
    }


ONNX_SETTINGS = {
    "fp32": {},
    "fp16": {"half": True},
    "fp32_io": {"half": True, "fp32_io": True},
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
