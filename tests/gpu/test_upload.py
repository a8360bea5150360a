"""Pinned uploads: frames arrive intact, buffers are reused only after their copy finished."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.gpu.conftest import requires_cuda
from ultralytics.gpu import upload
from ultralytics.gpu.upload import PinnedUploader


def test_cpu_device_wraps_frames(photos):
    up = PinnedUploader(torch.device("cpu"))
    same = up.upload([photos[0], photos[0]])
    assert isinstance(same.frames, torch.Tensor) and same.frames.shape == (2, *photos[0].shape)
    mixed = up.upload(photos)
    assert [tuple(f.shape) for f in mixed.frames] == [im.shape for im in photos]
    assert mixed.host_shapes == [im.shape[:2] for im in photos]


def test_rejects_non_uint8_or_gray():
    up = PinnedUploader(torch.device("cpu"))
    with pytest.raises(ValueError, match="uint8"):
        up.upload([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(ValueError, match="3 channels"):
        up.upload([np.zeros((4, 4), np.uint8)])
    with pytest.raises(ValueError, match="at least one"):
        up.upload([])


@requires_cuda
def test_cuda_upload_roundtrip_with_buffer_reuse(photos, monkeypatch):
    """More uploads in flight than pinned buffers, none waited for until the end; small staging groups,
    so a batch goes up in several copies and a frame larger than a group in a group of its own."""
    monkeypatch.setattr(upload, "GROUP_BYTES", 1 << 20)
    up = PinnedUploader(torch.device("cuda"), slots=2)
    rng = np.random.default_rng(0)
    shapes = [im.shape for im in photos] + [(1500, 1200, 3), (8, 8, 3)]  # 5.4 MB: more than a group
    batches = [[rng.integers(0, 256, s, dtype=np.uint8) for s in shapes] for _ in range(6)]
    uploaded = [up.upload(b) for b in batches]
    for frames, batch in zip(uploaded, batches):
        frames.wait()
        for f, im in zip(frames.frames, batch):
            assert np.array_equal(f.cpu().numpy(), im)
