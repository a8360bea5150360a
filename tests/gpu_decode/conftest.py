"""Test media for the GPU-decode tests: H.264/HEVC videos encoded here on the CPU (PyAV, a dev extra;
tests that need it skip without it), JPEGs from the shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import IMAGES, SHAPES

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

VIDEO_FRAMES = 23  # odd on purpose: strides 2 and 3 and batches of 4 all leave remainders


def encode_video(path: Path, codec: str, frames: list[np.ndarray], fps: int = 30) -> Path:
    """Encode BGR frames with PyAV's CPU encoders (libx264 / libx265) into an .mp4."""
    av = pytest.importorskip("av", reason="PyAV encodes the test videos (pip install av)")
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec == "libx265":
            stream.options = {"x265-params": "log-level=error"}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving_frames(n: int = VIDEO_FRAMES, size: tuple[int, int] = (240, 320)) -> list[np.ndarray]:
    """A real photo panning a little each frame (so inter-frame coding has work to do)."""
    photo = cv2.imread(str(sorted(IMAGES.glob("*.png"))[0]))
    h, w = size
    big = cv2.resize(photo, (w + 2 * n, h + n))
    return [np.ascontiguousarray(big[i // 2 : i // 2 + h, 2 * i : 2 * i + w]) for i in range(n)]


def write_mp4v(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """MPEG-4 Part 2 through OpenCV's own writer: a video for the batching tests that needs no PyAV."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for image in frames:
        writer.write(image)
    writer.release()
    return path


@pytest.fixture(scope="session", params=["libx264", "libx265", "mp4v"], ids=["h264", "hevc", "mp4v"])
def video(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("videos") / f"pan_{request.param}.mp4"
    if request.param == "mp4v":
        return write_mp4v(path, moving_frames())
    return encode_video(path, request.param, moving_frames())


@pytest.fixture(scope="session")
def h264_video(tmp_path_factory) -> Path:
    return encode_video(tmp_path_factory.mktemp("videos") / "pan.mp4", "libx264", moving_frames())


@pytest.fixture(scope="session")
def val_jpegs() -> list[Path]:
    paths = sorted((SHAPES / "val" / "images").glob("*.jpg"))[:7]
    assert paths, f"no shapes val images in {SHAPES}"
    return paths


@pytest.fixture(scope="session")
def photo_png() -> Path:
    return sorted(IMAGES.glob("*.png"))[1]


@pytest.fixture(scope="session")
def device_video(tmp_path_factory) -> Path:
    """An H.264 video for the CUDA tests: encoded here with PyAV, or (on a GPU machine without PyAV)
    taken from $ULTRALYTICS_GPU_DECODE_MEDIA/pan720_h264.mp4, made the same way beforehand."""
    media = os.environ.get("ULTRALYTICS_GPU_DECODE_MEDIA")
    if media and (Path(media) / "pan720_h264.mp4").is_file():
        return Path(media) / "pan720_h264.mp4"
    return encode_video(tmp_path_factory.mktemp("videos") / "pan.mp4", "libx264", moving_frames())
