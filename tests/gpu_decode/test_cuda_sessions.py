"""Several NVDEC sessions per video on CUDA (skipped without CUDA or PyNvVideoCodec): the segmented
reader's frames are the sequential reader's, pixel for pixel, and predict finds the same boxes.

The test video is short (23 frames, or the 300 of $ULTRALYTICS_GPU_DECODE_MEDIA), so the segment
sizes are shrunk to a few frames: every session then decodes several segments, and reads straddle them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ultralytics.gpu.segmented_decode as segmented
from tests.gpu_decode.conftest import requires_cuda
from ultralytics.utils.settings import SESSIONS_ENV

pytestmark = requires_cuda

CUDA = torch.device("cuda", 0)


@pytest.fixture
def nvdec():
    from ultralytics.gpu.video_decode import nvdec_problem

    if problem := nvdec_problem(CUDA):
        pytest.skip(problem)


@pytest.fixture
def small_segments(monkeypatch):
    monkeypatch.setattr(segmented, "SLICE_FRAMES", 4)
    monkeypatch.setattr(segmented, "MIN_SEGMENT", 8)
    monkeypatch.setattr(segmented, "MAX_SEGMENT", 8)


def _read_all(reader, n: int, stream: torch.cuda.Stream) -> torch.Tensor:
    parts = []
    try:
        while (block := reader.read(n)) is not None:
            with torch.cuda.stream(stream):  # the stream the reader hands its frames over to
                parts.append(block.clone())
    finally:
        reader.close()
    stream.synchronize()
    return torch.cat(parts).cpu()


@pytest.mark.parametrize("sessions", [2, 3, 4])
def test_sessions_give_the_sequential_readers_frames(device_video, nvdec, small_segments, monkeypatch, sessions):
    from ultralytics.gpu.streams import copy_stream
    from ultralytics.gpu.video_decode import NvdecFrameReader, open_nvdec_reader

    stream = copy_stream(CUDA)
    monkeypatch.setenv(SESSIONS_ENV, "1")
    one = open_nvdec_reader(device_video, CUDA, stream)
    assert isinstance(one, NvdecFrameReader)
    reference = _read_all(one, 1000, stream)
    assert reference.shape[0] > 16  # enough frames for three segments of 8
    monkeypatch.setenv(SESSIONS_ENV, str(sessions))
    for n in (5, 32):
        reader = open_nvdec_reader(device_video, CUDA, stream)
        assert isinstance(reader, segmented.SegmentedFrameReader)
        assert reader.sessions == min(sessions, len(reader.segments)) > 1
        got = _read_all(reader, n, stream)
        assert got.shape == reference.shape
        assert torch.equal(got, reference)


def test_predict_finds_the_same_boxes_with_one_and_four_sessions(
    device_video, nvdec, small_segments, monkeypatch, shapes_pt
):
    from ultralytics import YOLO

    model = YOLO(str(shapes_pt))
    results = {}
    for sessions in (1, 4):
        monkeypatch.setenv(SESSIONS_ENV, str(sessions))
        results[sessions] = [
            r.boxes.data.numpy().copy()
            for r in model.predict(str(device_video), gpu_decode=True, device=0, imgsz=320, batch=8, verbose=False)
        ]
    assert len(results[1]) == len(results[4]) > 0
    for a, b in zip(results[1], results[4]):  # the same pixels in, so the same boxes out
        np.testing.assert_array_equal(a, b)
