"""Helpers for the GPU-pipeline tests: a CUDA marker that skips cleanly, and real test images."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import IMAGES, SHAPES

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def triton_device(monkeypatch, wrapped: Callable[[], Any]) -> Iterator[torch.device]:
    """For a Triton kernel module's `device` fixture: CUDA when present (compiled kernels); otherwise the
    CPU with Triton's interpreter on. `wrapped` is the module's cached kernel builder: the interpreter is
    chosen when the kernels are wrapped, so its cache is cleared around the test."""
    if torch.cuda.is_available():
        yield torch.device("cuda")
        return
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    wrapped.cache_clear()
    yield torch.device("cpu")
    wrapped.cache_clear()


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


def run_in_threads(n_threads: int, work: Callable[[int], Any]) -> list:
    """`work(k)` in n threads at once; their results in thread order, the first exception re-raised here."""
    outputs: list = [None] * n_threads
    errors: list[BaseException] = []

    def target(k: int) -> None:
        try:
            outputs[k] = work(k)
        except BaseException as e:  # re-raised in the calling thread
            errors.append(e)

    threads = [threading.Thread(target=target, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return outputs
