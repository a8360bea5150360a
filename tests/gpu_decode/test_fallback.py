"""`gpu_decode=True` where the GPU cannot decode (here: a CPU device): one warning, then exactly the CPU
path's results."""

from __future__ import annotations

import logging

import numpy as np
import pytest

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


def test_video_without_nvdec_runs_the_cpu_source_itself(shapes_pt, monkeypatch, tmp_path, caplog):
    """A CUDA machine without PyNvVideoCodec: a video-only source is handed back as the CPU path's own
    source (its reader thread), not read frame by frame through the device source's host fallback."""
    import cv2

    from ultralytics.data.loaders import load_inference_source
    from ultralytics.gpu import decode_source

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for k in range(4):
        writer.write(np.full((48, 64, 3), 40 * k, np.uint8))
    writer.release()
    monkeypatch.setattr(decode_source, "cuda_device_problem", lambda device: None)  # as if on a CUDA device
    monkeypatch.setattr(decode_source, "nvdec_problem", lambda device: "PyNvVideoCodec is not usable")
    source = load_inference_source(str(video), batch=2, vid_stride=1)
    logger = _capture(caplog)
    try:
        with caplog.at_level(logging.WARNING, logger="ultralytics"):
            assert decode_source.gpu_decoded(source, "cpu", pipeline=True) is source
    finally:
        logger.removeHandler(caplog.handler)
    assert sum("PyNvVideoCodec" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ULTRALYTICS_NVDEC_REUSE", "sometimes"),
        ("ULTRALYTICS_NVDEC_SESSIONS", "zero"),
        ("ULTRALYTICS_GPU_JPEG_DECODER", "gpu"),
        ("ULTRALYTICS_GPU_JPEG_CHROMA", "exact"),
    ],
)
def test_a_bad_gpu_decode_switch_is_one_line_on_a_cpu_device_too(shapes_pt, val_jpegs, monkeypatch, name, value):
    """The CPU fallback never reads the decoders' switches; a typo must not pass silently there."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}='{value}' is not valid"):
        YOLO(str(shapes_pt)).predict([str(p) for p in val_jpegs[:2]], gpu_decode=True, device="cpu", verbose=False)
