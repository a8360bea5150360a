"""A saved video plays at the fps of the source that was read: the reader that opened the video records
it on the source (`InferenceSource.fps`), and saving takes it from there instead of opening the file again."""

from __future__ import annotations

import cv2
import pytest
import torch

from tests.conftest import SHAPES
from ultralytics import YOLO
from ultralytics.data.gpu_sources import DeviceDecodedSource
from ultralytics.data.loaders import load_inference_source
from ultralytics.gpu.video_decode import OpenCVFrameReader, video_info

FPS = 12.5  # not an integer on purpose: the saved video keeps it as read


@pytest.fixture
def clip(tmp_path):
    src = tmp_path / "clip.mp4"
    frame = cv2.imread(str(SHAPES / "val" / "images" / "00000.jpg"))
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), FPS, frame.shape[1::-1])
    for _ in range(3):
        writer.write(frame)
    writer.release()
    return src


def _source_fps(path) -> float:
    """What the container says, read independently of the package."""
    cap = cv2.VideoCapture(str(path))
    try:
        return cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()


def test_saving_a_video_opens_it_once_and_keeps_its_fps(shapes_pt, clip, tmp_path, monkeypatch):
    expected = _source_fps(clip)
    assert expected == pytest.approx(FPS, abs=0.01)
    opened: list[str] = []
    capture = cv2.VideoCapture

    def counted(*args, **kw):
        opened.append(str(args[0]))
        return capture(*args, **kw)

    monkeypatch.setattr(cv2, "VideoCapture", counted)
    YOLO(shapes_pt).predict(clip, imgsz=320, save=True, project=str(tmp_path), name="out", verbose=False)
    monkeypatch.undo()
    assert opened == [str(clip)]  # read once, by the loader; saving asked the source, not the file
    assert _source_fps(tmp_path / "out" / "clip.avi") == pytest.approx(expected, abs=0.01)


def test_device_decoded_source_records_the_fps_where_the_cpu_loader_does(clip):
    cpu = load_inference_source(str(clip), batch=2)
    list(cpu)
    device = load_inference_source(str(clip), batch=2)
    list(
        DeviceDecodedSource(
            device,
            upload=torch.from_numpy,
            to_batch=lambda *batch: batch,
            open_video=lambda path: OpenCVFrameReader(path, torch.device("cpu")),
            video_info=video_info,
        )
    )
    assert device.video_fps(str(clip)) == cpu.video_fps(str(clip)) == pytest.approx(_source_fps(clip), abs=1e-6)
    assert load_inference_source(str(clip)).video_fps(str(clip)) == 30.0  # not read yet: upstream's default
