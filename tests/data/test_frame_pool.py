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
    pool.take((4, 4))
    assert pool.held_bytes == 0
    b = pool.take((4, 4))  # nothing kept: a fresh array (its address may repeat, but the pool holds none)
    assert pool.held_bytes == 0 and b.shape == (4, 4)


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
    source = load_inference_source(clip)
    addresses = []
    for _ in range(2):  # each frame dropped as soon as it is checked (a stream= loop); read in this thread
        seen = []
        for _, frame, _ in source._video(str(clip), 1, 1):
            np.testing.assert_array_equal(frame, expected[len(seen)])
            seen.append(frame.ctypes.data)
            del frame
        addresses.append(seen)
        assert len(seen) == len(expected)
    # the first frame sets the size; every later one was read into a pool array, and the second pass reused them
    assert fresh_pool.held_bytes == 2 * expected[0].nbytes  # the frame being read and the one just dropped
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


def test_reference_counts_read_the_same_after_the_interpreter_warms_up():
    """The pool compares every array with a sentinel through one function; specialised (warm) calls must still
    tell a held array from a free one."""
    from ultralytics.data.frame_pool import _references

    free, held = [np.empty(1, np.uint8)], [np.empty(1, np.uint8)]
    user = held[0]
    sentinel = [np.empty(0, np.uint8)]
    for _ in range(2000):
        base = _references(sentinel, 0)
        assert _references(free, 0) == base and _references(held, 0) == base + 1
    assert user is held[0]


def test_many_sizes_keep_at_most_max_shapes():
    from ultralytics.data.frame_pool import MAX_SHAPES

    pool = FramePool(max_bytes=1 << 20)
    for k in range(3 * MAX_SHAPES):  # photos of every size, each dropped after use
        pool.take((10 + k, 10))
    assert len(pool._arrays) == MAX_SHAPES
    assert pool.held_bytes == sum(10 * (10 + k) for k in range(2 * MAX_SHAPES, 3 * MAX_SHAPES))
    held = pool.take((7, 7))  # an array in use is never forgotten, whatever its size's age
    for k in range(MAX_SHAPES):
        pool.take((100 + k, 10))
    assert any(a is held for arrays in pool._arrays.values() for a in arrays)


def test_inexact_reference_counts_turn_the_pool_off():
    pool = FramePool(max_bytes=1 << 20)
    pool._exact = False  # as on a free-threaded build
    pool.take((4, 4))
    assert pool.held_bytes == 0


class _SizeChangingCapture:
    """A capture whose frames change size mid-stream, as cv2.VideoCapture.read(dst) behaves: a dst of the right
    size is written in place, another size gets a new array."""

    def __init__(self, sizes):
        self.sizes, self.k = list(sizes), 0

    def read(self, dst=None):
        if self.k == len(self.sizes):
            return False, None
        h, w = self.sizes[self.k]
        value, self.k = self.k, self.k + 1
        if dst is None or dst.shape != (h, w, 3):
            dst = np.empty((h, w, 3), np.uint8)
        dst[...] = value
        return True, dst


def test_read_frame_follows_a_size_change(fresh_pool):
    from ultralytics.data.loaders import read_frame

    cap, shape, frames = _SizeChangingCapture([(4, 6), (4, 6), (8, 6), (8, 6)]), None, []
    while True:
        ok, frame = read_frame(cap, shape)
        if not ok:
            break
        shape = frame.shape
        frames.append(frame)
    assert [f.shape[:2] for f in frames] == [(4, 6), (4, 6), (8, 6), (8, 6)]
    assert [int(f[0, 0, 0]) for f in frames] == [0, 1, 2, 3]


def test_predict_keeps_the_frames_of_results_the_caller_kept(clip, fresh_pool):
    """End to end on the CPU: Results kept from a streamed video, and crops of their frames, survive later calls
    that read the same video into the pool."""
    from ultralytics import YOLO
    from ultralytics.utils import ASSETS

    expected = opencv_frames(clip)
    model = YOLO(ASSETS / "shapes_yolov8n.pt")
    kept = [(i, r) for i, r in enumerate(model.predict(clip, stream=True, batch=4, imgsz=64)) if i % 3 == 0]
    crops = [(i, r.orig_img[10:40, 20:60]) for i, r in kept]
    del kept
    for _ in range(2):
        for _ in model.predict(clip, stream=True, batch=2, imgsz=64):
            pass
    again = model.predict(clip, imgsz=64)
    assert fresh_pool.held_bytes > 0
    for i, crop in crops:
        np.testing.assert_array_equal(crop, expected[i][10:40, 20:60])
    for frame, r in zip(expected, again):
        np.testing.assert_array_equal(r.orig_img, frame)
