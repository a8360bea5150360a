"""Pinned uploads: frames arrive intact, buffers are reused only after their copy finished."""

from __future__ import annotations

import cv2
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


def _resized_by_cv2(images, sizes):
    return [cv2.resize(im, size, interpolation=cv2.INTER_LINEAR) for im, size in zip(images, sizes)]


def test_cpu_upload_with_resize_equals_cv2(photos, monkeypatch):
    """resize_to: the frames come back as OpenCV resizes them (their own size: unchanged), one BHWC
    tensor when the resized frames share a size even though the originals do not."""
    monkeypatch.setattr(upload, "HOST_RESIZE_THREADS", 2)
    up = PinnedUploader(torch.device("cpu"))
    own_size = np.random.default_rng(0).integers(0, 256, (180, 320, 3), dtype=np.uint8)
    images = [photos[0], photos[0][::2, ::3].copy(), photos[1], own_size]
    sizes = [(320, 180)] * 4
    got = up.upload(images, resize_to=sizes)
    assert isinstance(got.frames, torch.Tensor) and got.frames.shape == (4, 180, 320, 3)
    for frame, want in zip(got.frames, _resized_by_cv2(images, sizes)):
        assert np.array_equal(frame.numpy(), want)
    assert np.array_equal(got.frames[3].numpy(), own_size)
    assert got.host_shapes == [(180, 320)] * 4
    with pytest.raises(ValueError, match="one \\(w, h\\) per frame"):
        up.upload(images, resize_to=sizes[:2])


@pytest.mark.parametrize("threads", [1, 3])
def test_host_resizer_writes_into_the_staging_bytes(photos, monkeypatch, threads):
    """The resize lands in place in the staging buffer (OpenCV writes into the view it is given: nothing
    allocated and then copied), group by group and thread by thread, each frame at its offset."""
    monkeypatch.setattr(upload, "HOST_RESIZE_GROUP", 2)
    monkeypatch.setattr(upload, "HOST_RESIZE_THREADS", threads)
    in_place = []
    resize = cv2.resize

    def spy(src, size, dst=None, **kw):
        got = resize(src, size, dst=dst, **kw)
        in_place.append(got is dst)
        return got

    monkeypatch.setattr(upload.cv2, "resize", spy)
    images = [photos[k % len(photos)] for k in range(5)]
    sizes = [(160 + 16 * k, 96 + 8 * k) for k in range(5)]
    resizer = upload.HostResizer(images, sizes)
    offsets = np.cumsum([0] + [h * w * 3 for w, h in sizes]).tolist()
    staging = torch.full((offsets[-1] + 7,), 7, dtype=torch.uint8)
    pieces = resizer.pieces(offsets)
    assert [p[2:] for p in pieces] == [(0, 2), (2, 4), (4, 5)]
    for piece in pieces:
        resizer.resize_into(staging, offsets, piece)
    assert in_place == [True] * 5
    host = staging.numpy()
    for k, want in enumerate(_resized_by_cv2(images, sizes)):
        assert np.array_equal(host[offsets[k] : offsets[k + 1]].reshape(want.shape), want)
    assert (host[offsets[-1] :] == 7).all()  # nothing written past the frames


def test_host_resizer_raises_only_once_every_thread_stopped_writing(photos, monkeypatch):
    """One frame fails while another thread is still resizing: the error comes after that thread is
    done, so nothing writes into a staging buffer a later upload may take."""
    import threading
    import time

    monkeypatch.setattr(upload, "HOST_RESIZE_THREADS", 2)
    finished = threading.Event()
    real = upload.HostResizer._resize

    def resize(self, k, out):
        if k == 0:  # the first part fails at once, the second is still running
            raise cv2.error("bad frame")
        time.sleep(0.2)
        real(self, k, out)
        finished.set()

    monkeypatch.setattr(upload.HostResizer, "_resize", resize)
    with pytest.raises(cv2.error, match="bad frame"):
        upload.HostResizer([photos[0], photos[0]], [(64, 48), (64, 48)]).resize_all()
    assert finished.is_set()


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


@requires_cuda
def test_cuda_upload_with_resize_roundtrip(photos, monkeypatch):
    """Resized into pinned buffers that are reused while earlier copies may be in flight: every batch
    arrives as OpenCV resized it."""
    monkeypatch.setattr(upload, "HOST_RESIZE_GROUP", 3)
    up = PinnedUploader(torch.device("cuda"), slots=2)
    rng = np.random.default_rng(1)
    batches = [[rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(7)] for _ in range(4)]
    sizes = [(640, 360)] * 7
    uploaded = [up.upload(b, resize_to=sizes) for b in batches]
    for frames, batch in zip(uploaded, batches):
        frames.wait()
        assert tuple(frames.frames.shape) == (7, 360, 640, 3)
        for f, want in zip(frames.frames, _resized_by_cv2(batch, sizes)):
            assert np.array_equal(f.cpu().numpy(), want)
