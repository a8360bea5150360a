"""Helpers for the GPU-pipeline tests: a CUDA marker that skips cleanly, and real test images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import IMAGES, SHAPES

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    """The shared real photographs (different sizes and aspect ratios), BGR uint8."""
    paths = sorted(IMAGES.glob("*.png"))
    assert paths, f"no images in {IMAGES}"
    return [cv2.imread(str(p)) for p in paths]


@pytest.fixture(scope="session")
def shapes_images() -> list[tuple[str, np.ndarray]]:
    """Six val images the shapes model knows (00000-00002, 00008-00010): square and 280x320 ones."""
    paths = sorted((SHAPES / "val" / "images").glob("*.jpg"))
    paths = paths[:3] + paths[8:11]
    return [(str(p), cv2.imread(str(p))) for p in paths]
