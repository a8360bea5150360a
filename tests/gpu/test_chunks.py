"""A large batch runs in chunks on the device path: every frame is letterboxed as in the whole batch
(the batch's rect decision) and gets the same detections."""

from __future__ import annotations

import numpy as np

from tests.gpu.test_pipeline import assert_boxes_match, boxes_of, predictor_for
from ultralytics import YOLO
from ultralytics.engine.gpu_pipeline import GpuStages, chunked


def test_chunks_keep_the_whole_batch_rect_decision():
    square, wide = np.zeros((32, 32, 3), np.uint8), np.zeros((32, 64, 3), np.uint8)
    batch = (list("abcde"), [square, square, square, square, wide], list("ABCDE"))
    seen = []
    parts = list(chunked([batch], 2, lambda ims: seen.append(len(ims)) or False))
    assert [p[0] for p in parts] == [["a", "b"], ["c", "d"], ["e"]]
    assert seen == [5] and all(p[1].auto is False for p in parts)  # decided once, on all five frames
    assert list(chunked([batch], 0, lambda ims: True)) == [batch]
    longer = (list(range(70)), [square] * 70, list(range(70)))
    assert [len(p[0]) for p in chunked([longer], 32, lambda ims: True)] == [32, 32, 6]
    assert [len(p[0]) for p in chunked([longer[:2] + longer[2:]], 70, lambda ims: True)] == [70]


def test_chunked_batch_gives_the_same_detections(shapes_pt, shapes_images, monkeypatch):
    model = YOLO(shapes_pt)
    frames = [im for _, im in shapes_images] * 2  # 12 frames of two sizes: square letterbox for all
    whole = predictor_for(model, "cpu", imgsz=320)
    whole.gpu = GpuStages(whole.model, whole.args)
    monkeypatch.setenv("ULTRALYTICS_GPU_CHUNK", "0")
    expected = boxes_of(whole(frames))
    monkeypatch.setenv("ULTRALYTICS_GPU_CHUNK", "4")
    got = boxes_of(whole(frames))
    assert sum(len(b) for b in expected) > 0
    # the same letterbox for every frame; the network at another batch size may differ in the last bits
    assert_boxes_match(got, expected, px=1e-3, conf=1e-4)
