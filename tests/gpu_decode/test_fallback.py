"""`gpu_decode=True` where the GPU cannot decode (here: a CPU device): one warning, then exactly the CPU
path's results."""

from __future__ import annotations

import logging

import numpy as np

from ultralytics import YOLO
from ultralytics.gpu.decode_source import WARNING_PREFIX


def _capture(caplog):
    logger = logging.getLogger("ultralytics")
    logger.addHandler(caplog.handler)
    return logger


def _predict_both(model, source, caplog, **kw) -> tuple[list, list, list[str]]:
    kw = dict(device="cpu", imgsz=320, verbose=False, **kw)  # small: the CPU path is the whole point here
    reference = model.predict(source, **kw)
    logger = _capture(caplog)
    try:
        with caplog.at_level(logging.WARNING, logger="ultralytics"):
            ours = model.predict(source, gpu_decode=True, **kw)
    finally:
        logger.removeHandler(caplog.handler)
    return ours, reference, [r.getMessage() for r in caplog.records if WARNING_PREFIX in r.getMessage()]


def _assert_same(ours, reference) -> None:
    assert len(ours) == len(reference)
    for a, b in zip(ours, reference):
        assert a.path == b.path
        np.testing.assert_array_equal(a.orig_img, b.orig_img)
        np.testing.assert_array_equal(a.boxes.data.numpy(), b.boxes.data.numpy())


def test_cpu_device_warns_once_and_gives_the_cpu_results(shapes_pt, val_jpegs, photo_png, caplog):
    source = [*map(str, val_jpegs[:3]), str(photo_png)]
    ours, reference, warnings = _predict_both(YOLO(str(shapes_pt)), source, caplog, batch=2)
    assert len(warnings) == 1, warnings
    assert "CPU" in warnings[0] and "cpu" in warnings[0]
    assert len(ours) == 4
    _assert_same(ours, reference)


def test_cpu_device_video_falls_back_too(shapes_pt, h264_video, caplog):
    ours, reference, warnings = _predict_both(YOLO(str(shapes_pt)), str(h264_video), caplog, batch=2, vid_stride=8)
    assert len(warnings) == 1, warnings
    assert len(ours) == 23 // 8
    _assert_same(ours, reference)


def test_gpu_decode_is_off_by_default():
    from ultralytics.cfg import get_cfg

    assert get_cfg().gpu_decode is False
    assert get_cfg(overrides={"gpu_decode": True}).gpu_decode is True
