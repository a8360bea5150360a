"""The frame pool: an array is reused only when nothing else holds it, within its memory limit; video frames
read through it are OpenCV's frames, and frames a caller kept survive the next call."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ultralytics.data import frame_pool as frame_pool_module
from ultralytics.data.frame_pool import FramePool
from ultralytics.data.loaders import load_inference_source
from ultralytics.utils.settings import FRAME_POOL_ENV


def test_reused_only_once_released():
    pool = FramePool(max_bytes=1 << 20)
    a = pool.take((4, 5, 3))
    first = a.ctypes.data
    assert a.shape == (4, 5, 3) and a.dtype == np.uint8
    b = pool.take((4, 5, 3))
    assert b.ctypes.data != first  # `a` is still held
    del a
    assert pool.take((4, 5, 3)).ctypes.data == first
    assert pool.held_bytes == 2 * 60


@pytest.mark.parametrize("holder", ["view", "tensor", "list"])
def test_any_reference_keeps_an_array_out_of_the_pool(holder):
    pool = FramePool(max_bytes=1 << 20)
    a = pool.take((8, 8, 3))
    address = a.ctypes.data
    kept = {"view": lambda x: x[::2], "tensor": torch.from_numpy, "list": lambda x: [x]}[holder](a)
    del a
    for _ in range(3):
        assert pool.take((8, 8, 3)).ctypes.data != address
    assert kept is not None


def test_limit_and_other_shapes():
    pool = FramePool(max_bytes=300)
    held = [pool.take((10, 10)) for _ in range(3)]  # 300 bytes: the limit
    extra = pool.take((10, 10))  # full of frames in use: a plain array, not kept
    assert pool.held_bytes == 300 and not any(extra.ctypes.data == h.ctypes.data for h in held)
    del held, extra
    pool.take((5, 20))  # another resolution: the unused arrays of the old one make room
    assert pool.held_bytes == 100


def test_off_when_zero(monkeypatch):
    monkeypatch.setenv(FRAME_POOL_ENV, "0")
    pool = FramePool()
    a = pool.take((4, 4))
    address = a.ctypes.data
    del a
    assert pool.held_bytes == 0
    b = pool.take((4, 4))  # nothing kept: a fresh array (its address may repeat, but the pool holds none)
    assert pool.held_bytes == 0 and b.shape == (4, 4)
    assert address  # the first array was a real allocation


def test_bad_setting_is_one_line(monkeypatch):
    monkeypatch.setenv(FRAME_POOL_ENV, "lots")
    with pytest.raises(ValueError, match="ULTRALYTICS_FRAME_POOL_MB='lots' is not valid"):
        FramePool().take((2, 2))


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(10):
        writer.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    writer.release()
    return path


def opencv_frames(path):
    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


@pytest.fixture
def fresh_pool(monkeypatch):
    pool = FramePool(max_bytes=1 << 30)
    monkeypatch.setattr(frame_pool_module, "_POOL", pool)
    return pool


def test_video_frames_come_from_the_pool_across_calls(clip, fresh_pool):
    expected = opencv_frames(clip)
    addresses = []
    for _ in range(2):  # frames dropped as they are read (a stream= loop): the second pass reuses memory
        seen = []
        for _, images, _ in load_inference_source(clip, batch=2):
            for frame, want in zip(images, expected[len(seen) :]):
                np.testing.assert_array_equal(frame, want)
                seen.append(frame.ctypes.data)
        addresses.append(seen)
        assert len(seen) == len(expected)
    assert fresh_pool.held_bytes > 0
    # every frame after the first (which sets the shape) was read into a pool array; the second call reuses them
    assert set(addresses[1][1:]) <= set(addresses[0][1:])


def test_frames_kept_by_the_caller_are_never_overwritten(clip, fresh_pool):
    expected = opencv_frames(clip)
    kept = [im for _, images, _ in load_inference_source(clip, batch=4) for im in images]
    again = [im for _, images, _ in load_inference_source(clip, batch=4) for im in images]
    for frame, copy, want in zip(kept, again, expected):
        np.testing.assert_array_equal(frame, want)
        np.testing.assert_array_equal(copy, want)
    assert not {f.ctypes.data for f in kept} & {f.ctypes.data for f in again}


def test_pil_images_convert_into_the_pool_and_kept_ones_survive(fresh_pool):
    from PIL import Image

    rng = np.random.default_rng(1)
    rgb = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    pils = [Image.fromarray(a) for a in rgb]
    first = [im for _, images, _ in load_inference_source(pils) for im in images]
    for got, want in zip(first, rgb):
        np.testing.assert_array_equal(got, want[..., ::-1])
    assert fresh_pool.held_bytes == 3 * 48 * 64 * 3
    second = [im for _, images, _ in load_inference_source(pils[::-1]) for im in images]
    for got, want in zip(first, rgb):  # the first call's arrays are still held here: not overwritten
        np.testing.assert_array_equal(got, want[..., ::-1])
    for got, want in zip(second, rgb[::-1]):
        np.testing.assert_array_equal(got, want[..., ::-1])
    assert fresh_pool.held_bytes == 6 * 48 * 64 * 3
    del first, second
    third = [im for _, images, _ in load_inference_source(pils) for im in images]
    assert len(third) == 3 and fresh_pool.held_bytes == 6 * 48 * 64 * 3  # released arrays reused: none new
