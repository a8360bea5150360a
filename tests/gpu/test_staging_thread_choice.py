"""Which thread stages a batch on the device path: the caller's own arrays in the caller's thread, however
many chunks (staged in another thread, one call over 256 frames ran 1.18x slower on the H200 host:
benchmarks/NOTES.md, session 11, probe II); several PIL images (converted here) in the prefetch thread (staged
in the caller's thread, PIL lists of 8 ran 2.3x slower: session 10, probe HH). Runs the device stages on the
CPU."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from tests.gpu.test_pipeline import assert_boxes_match, boxes_of, predictor_for
from ultralytics import YOLO
from ultralytics.data.loaders import InferenceSource
from ultralytics.engine.gpu_pipeline import GpuStages


@pytest.fixture
def pil_images(shapes_images) -> list[Image.Image]:
    return [Image.fromarray(np.ascontiguousarray(im[..., ::-1])) for _, im in shapes_images[:3]]


def test_callers_own_arrays_tells_converted_frames_apart(shapes_images, pil_images, tmp_path):
    arrays = [im for _, im in shapes_images[:3]]
    assert InferenceSource(arrays).callers_own_arrays
    assert InferenceSource(arrays[0]).callers_own_arrays
    assert InferenceSource(torch.zeros(2, 3, 64, 64)).callers_own_arrays
    assert not InferenceSource(pil_images).callers_own_arrays
    assert not InferenceSource(pil_images[0]).callers_own_arrays
    assert not InferenceSource([arrays[0], pil_images[1]]).callers_own_arrays
    Image.fromarray(arrays[0]).save(tmp_path / "a.png")
    assert not InferenceSource(str(tmp_path)).callers_own_arrays


def test_pil_lists_stage_beside_the_caller(shapes_pt, shapes_images, pil_images, monkeypatch):
    model = YOLO(shapes_pt)
    predictor = predictor_for(model, "cpu", imgsz=320)
    predictor.gpu = GpuStages(predictor.model, predictor.args)
    threads: list[str] = []
    stage = GpuStages.stage_batch
    monkeypatch.setattr(
        GpuStages, "stage_batch", lambda self, b: threads.append(threading.current_thread().name) or stage(self, b)
    )
    caller = threading.current_thread().name

    arrays = [np.asarray(im)[..., ::-1].copy() for im in pil_images]  # the same pixels, BGR
    expected = boxes_of(predictor(arrays))
    assert threads == [caller]  # the caller's own arrays: staged here
    threads.clear()
    got = boxes_of(predictor(pil_images))
    assert len(threads) == 1 and threads[0] != caller  # PIL images converted here: staged in another thread
    assert sum(len(b) for b in expected) > 0
    assert_boxes_match(got, expected, px=1e-4, conf=1e-6)  # same frames, same detections
    threads.clear()
    predictor(pil_images[0])
    assert threads == [caller]  # one PIL image: a thread would only add its start


def test_chunks_of_the_callers_arrays_stage_in_the_callers_thread(shapes_pt, shapes_images, monkeypatch):
    """A batch larger than a chunk: each chunk is staged in the caller's thread, in order, lazily (chunk k+1
    before chunk k's results), with the detections of the same batch run unchunked."""
    model = YOLO(shapes_pt)
    arrays = [im for _, im in shapes_images]
    predictor = predictor_for(model, "cpu", imgsz=320)
    predictor.gpu = GpuStages(predictor.model, predictor.args)
    monkeypatch.setenv("ULTRALYTICS_GPU_CHUNK", "0")
    expected = boxes_of(predictor(arrays))

    staged: list[tuple[str, int]] = []
    stage = GpuStages.stage_batch
    monkeypatch.setattr(
        GpuStages,
        "stage_batch",
        lambda self, b: staged.append((threading.current_thread().name, len(b[0]))) or stage(self, b),
    )
    monkeypatch.setenv("ULTRALYTICS_GPU_CHUNK", "2")
    stream = predictor(arrays, stream=True)
    first = next(stream)
    assert len(staged) == 2  # chunk 2 staged (and launched) before chunk 1's results went out
    got = boxes_of([first, *stream])
    caller = threading.current_thread().name
    assert staged == [(caller, 2)] * 3  # six frames, three chunks, all staged here
    assert sum(len(b) for b in expected) > 0
    assert_boxes_match(got, expected, px=1e-4, conf=1e-6)
