"""Shared pieces for the network-API route tests: the stand-in reads host pointers, a private copy of the
shapes weights (exports write beside them), and the .pt's reference predictions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import SHAPES
from ultralytics.trt.device import HOST_MEMORY_ENV

VERSIONS = ["8.6.1", "10.16.1.11", "11.4.0.106"]  # 8.x, the last 10.x and the last 11.x surfaces
IMGSZ = 320
SOURCES = [str(p) for p in sorted((SHAPES / "val" / "images").glob("*.jpg"))[:6]]


@pytest.fixture(autouse=True)
def host_memory(monkeypatch):
    """The stand-in reads host pointers: let the builder and backend use CPU tensors (the documented hook)."""
    monkeypatch.setenv(HOST_MEMORY_ENV, "1")


@pytest.fixture
def weights(shapes_pt, tmp_path) -> Path:
    """The shapes model in a fresh folder: an export writes `<stem>.engine` next to its weights."""
    target = tmp_path / "shapes.pt"
    shutil.copy(shapes_pt, target)
    return target


@pytest.fixture(scope="session")
def reference(shapes_pt):
    """The .pt's predictions, letterboxed to the full square (rect=False) as a fixed-size engine sees them."""
    from ultralytics import YOLO

    return YOLO(shapes_pt).predict(SOURCES, imgsz=IMGSZ, rect=False, conf=0.25, verbose=False)
