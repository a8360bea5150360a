"""Resizing on the host before the upload (ULTRALYTICS_GPU_HOST_LETTERBOX) gives the same network input,
bit for bit, as uploading full frames and resizing on the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.gpu.conftest import requires_cuda
from ultralytics.data.augment import letterbox_params
from ultralytics.gpu.letterbox import letterbox_batch
from ultralytics.gpu.upload import HostResizer


@pytest.mark.parametrize("auto", [False, True])
def test_pre_resized_frames_letterbox_identically(photos, auto):
    frames = [photos[0], photos[0][::2, ::3].copy(), photos[1]]
    geos = [letterbox_params(f.shape[:2], (320, 320), auto=auto and len(frames) == 1) for f in frames]
    full = letterbox_batch([torch.from_numpy(f) for f in frames], geos)
    small = [torch.from_numpy(f) for f in HostResizer(frames, [g.new_unpad for g in geos]).resize_all()]
    assert any(s.shape != torch.from_numpy(f).shape for s, f in zip(small, frames))
    assert torch.equal(letterbox_batch(small, geos), full)


@requires_cuda
@pytest.mark.parametrize("batch", [1, 8, 19])
def test_host_letterbox_on_cuda_is_bit_identical(shapes_pt, photos, monkeypatch, batch):
    from tests.gpu.test_pipeline import predictor_for
    from ultralytics import YOLO

    frames = [photos[i % len(photos)] for i in range(batch)]
    pred = predictor_for(YOLO(shapes_pt), "0", batch=batch, imgsz=320)
    monkeypatch.setenv("ULTRALYTICS_GPU_HOST_LETTERBOX", "0")
    device_side = pred.preprocess(pred.stages.stage_batch(([""] * batch, frames, [""] * batch))[1]).clone()
    monkeypatch.setenv("ULTRALYTICS_GPU_HOST_LETTERBOX", "1")
    staged = pred.stages.stage_batch(([""] * batch, frames, [""] * batch))[1]
    assert staged.geometries is not None
    host_side = pred.preprocess(staged)
    torch.cuda.synchronize()
    assert torch.equal(host_side, device_side)
    assert np.array_equal(staged[0], frames[0])  # Results keep the original frames
