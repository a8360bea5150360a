"""Shared fixtures: where ../shared lives, and the TensorRT stand-in.

The stand-in (tests/trt_standin) is installed as `sys.modules["tensorrt"]` only for the duration of a
test that asks for it, so no test can accidentally run against it without saying so.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ULTRALYTICS_SHARED", REPO.parent / "shared")).resolve()
FIXTURES = SHARED / "fixtures"
MODELS = FIXTURES / "models"
REFERENCE = FIXTURES / "reference"
SHAPES = FIXTURES / "shapes"
IMAGES = FIXTURES / "images"

# Every TensorRT surface recorded in ../shared/trt_api, oldest first.
TRT_VERSIONS = ["8.6.1", "10.0.1", "10.13.3.9", "10.16.1.11", "11.0.0.114", "11.4.0.106"]


def pytest_configure(config):
    if not FIXTURES.is_dir():
        raise pytest.UsageError(
            f"shared fixtures not found at {FIXTURES}; set ULTRALYTICS_SHARED to the shared/ folder"
        )


@pytest.fixture
def log_lines():
    """Messages the package logs while the test runs (its logger does not propagate to pytest's caplog)."""
    lines: list[str] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("ultralytics")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def shapes_pt() -> Path:
    return MODELS / "shapes_yolov8n.pt"


@pytest.fixture(scope="session")
def shapes_yaml() -> Path:
    return SHAPES / "shapes.yaml"


@pytest.fixture
def install_tensorrt_standin(monkeypatch):
    """Return a function that installs the stand-in for one version as `tensorrt` for this test."""

    def install(version: str):
        from tests.trt_standin import make_tensorrt_module

        module = make_tensorrt_module(version)
        monkeypatch.setitem(sys.modules, "tensorrt", module)
        return module

    return install


@pytest.fixture(params=TRT_VERSIONS)
def trt(request, install_tensorrt_standin):
    """The stand-in `tensorrt` module, once per recorded TensorRT version."""
    return install_tensorrt_standin(request.param)


# --- real TensorRT (tests/trt_real, tests/netapi/test_real_tensorrt.py): skip unless NVIDIA's library and
# a CUDA GPU are both present; each test exports from its own copy of the weights.
REAL_TRT_SOURCES = [str(p) for p in sorted((SHAPES / "val" / "images").glob("*.jpg"))[:16]]


@pytest.fixture(scope="module")
def real_trt():
    import torch

    trt = pytest.importorskip("tensorrt", reason="real TensorRT is not installed")
    if "trt_standin" in str(getattr(trt, "__file__", "")) or not hasattr(trt, "__file__"):
        pytest.skip("the installed `tensorrt` is the test stand-in, not NVIDIA's library")
    if not torch.cuda.is_available():
        pytest.skip("real TensorRT needs a CUDA GPU")
    return trt


@pytest.fixture
def gpu_weights(real_trt, shapes_pt, tmp_path, monkeypatch) -> Path:
    import shutil

    from ultralytics.trt.device import HOST_MEMORY_ENV

    monkeypatch.delenv(HOST_MEMORY_ENV, raising=False)  # real buffers on the GPU
    target = tmp_path / "shapes.pt"
    shutil.copy(shapes_pt, target)
    return target
