"""`gpu_decode=True`: wire the GPU decoders (nvJPEG, NVDEC) into predict's source, or fall back to the
CPU path with one warning.

The batches this builds carry their frames twice: on the device (`device_frames`, which the GPU
letterbox reads, so the pixels never go host → device) and on the host, one device → host copy per
batch into pinned memory, because `Results.orig_img` is a numpy image (plotting, saving, user code).
That copy runs on the decode stream, beside the previous batch's network; the letterbox waits for it,
so the host images are complete whenever predict hands out the batch's Results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from ultralytics.data.gpu_sources import DeviceDecodedSource, FrameReader
from ultralytics.data.loaders import InferenceSource
from ultralytics.gpu.capture_gate import CaptureGate, capture_gate
from ultralytics.gpu.decode import cuda_device_problem, decode_jpegs, exif_rotated, is_jpeg_bytes, jpeg_decode_problem
from ultralytics.gpu.segmented_decode import SegmentedFrameReader
from ultralytics.gpu.streams import copy_stream
from ultralytics.gpu.upload import DeviceFrames
from ultralytics.gpu.video_decode import (
    NvdecFrameReader,
    OpenCVFrameReader,
    nvdec_problem,
    open_nvdec_reader,
    video_info,
)
from ultralytics.utils import LOGGER
from ultralytics.utils.settings import check_gpu_decode_switches, nvdec_sessions

WARNING_PREFIX = "WARNING gpu_decode=True:"


class DeviceDecodedImages(tuple):
    """The batch's original BGR images (host numpy, for Results) plus `device_frames` (the same pixels
    on the device, for the letterbox). A tuple, not a list, so the pipeline's upload step leaves it be."""

    device_frames: DeviceFrames


class _Fallbacks:
    """One warning per source and reason, saying what falls back to the CPU and why."""

    def __init__(self):
        self.seen: set[str] = set()

    def __call__(self, what: str, reason: str) -> None:
        if reason not in self.seen:
            self.seen.add(reason)
            LOGGER.warning(f"{WARNING_PREFIX} {what} decoded on the CPU instead: {reason}")


def gpu_decoded(batches: Iterable[Any], device: torch.device, *, pipeline: bool = True) -> Iterable[Any]:
    """predict's source with files decoded on `device`; `batches` itself (after one warning) when the
    GPU cannot decode here. `pipeline`: the CUDA pipeline is on (its letterbox takes device frames)."""
    device = torch.device(device)
    check_gpu_decode_switches()
    if not isinstance(batches, InferenceSource) or batches.is_tensor:
        return batches  # a tensor source has nothing to decode
    warn = _Fallbacks()
    if problem := cuda_device_problem(device):
        warn("all images and videos are", problem)
        return batches
    if not pipeline:
        warn("all images and videos are", "gpu_pipeline=False letterboxes on the CPU; set gpu_pipeline=True")
        return batches
    kinds = {e.kind for e in batches.entries}
    jpeg_problem = jpeg_decode_problem(device) if "image" in kinds else None
    video_problem = nvdec_problem(device) if "video" in kinds else None
    if jpeg_problem:
        warn("images are", jpeg_problem)
    if video_problem:
        warn("videos are", video_problem)
    if (jpeg_problem or "image" not in kinds) and (video_problem or "video" not in kinds):
        # nothing here decodes on the device: the CPU path itself, with its decode pool and video thread
        # (reading a video through this source's host fallback was 3x slower on the H200: 3.1 vs 1.0 ms/frame)
        return batches
    # read once, before any work: a bad value is a one-line error, not a fallback warning per video
    sessions = nvdec_sessions() if "video" in kinds and not video_problem else 1
    # the device's copy stream (gpu/streams.py): never captured, so decoding in the prefetch thread can
    # never land inside a graph capture; a fresh torch.cuda.Stream() could be the graph stream itself
    # once torch's pool of 32 wraps around. Decoded batches stand in for uploads, so it is the right queue.
    stream = copy_stream(device)
    # nvJPEG and NVDEC allocate, free and synchronise inside their calls: none of that may overlap the
    # capture of a CUDA graph in the main thread (gpu/capture_gate.py), so every decoder call of ours holds
    # the gate (the threaded NVDEC reader's own thread is the exception its docstring names)
    gate = capture_gate(device)

    def upload(image: np.ndarray) -> torch.Tensor:
        with torch.cuda.stream(stream):
            return torch.from_numpy(np.ascontiguousarray(image)).to(device)

    def jpegs(datas: list[bytes]) -> list[torch.Tensor | None]:
        with gate.decoding(), torch.cuda.stream(stream):
            return decode_jpegs(datas, device)

    def nvdec_or_cpu(path: str, open_reader: Callable[[], FrameReader]) -> FrameReader:
        """`open_reader()`, or OpenCV with one warning where NVDEC cannot take the codec or stream."""
        try:
            return open_reader()
        except Exception as e:
            warn(f"video {path} is", f"NVDEC could not open it ({type(e).__name__}: {e})")
        return OpenCVFrameReader(path, device)

    def one_session(path: str) -> FrameReader:
        return nvdec_or_cpu(path, lambda: NvdecFrameReader(path, device, stream))

    def open_video(path: str) -> FrameReader:
        if video_problem:
            return OpenCVFrameReader(path, device)
        reader = nvdec_or_cpu(path, lambda: open_nvdec_reader(path, device, stream, sessions))  # gates itself
        if isinstance(reader, SegmentedFrameReader):  # a session failing before the first frame: one session
            return FallbackBeforeFirstFrame(reader, lambda e: _one_session_instead(path, e, one_session))
        return reader

    return DeviceDecodedSource(
        batches,
        upload=upload,
        to_batch=lambda paths, frames, infos: to_batch(paths, frames, infos, stream, gate),
        decode_jpegs=None if jpeg_problem else jpegs,
        is_gpu_jpeg=lambda data: is_jpeg_bytes(data) and not exif_rotated(data),
        open_video=open_video,
        video_info=video_info,
    )


class FallbackBeforeFirstFrame:
    """`reader`, unless its first read fails: nothing was handed out yet, so `fallback(error)`'s reader
    takes the video from its first frame. Once frames went out, errors propagate (no frame twice)."""

    def __init__(self, reader: FrameReader, fallback: Callable[[Exception], FrameReader]):
        self.reader = reader
        self.fallback = fallback
        self.started = False

    def read(self, n: int) -> torch.Tensor | None:
        if self.started:
            return self.reader.read(n)
        try:
            frames = self.reader.read(n)
        except Exception as e:
            self.reader.close()
            self.reader = self.fallback(e)
            frames = self.reader.read(n)
        self.started = True
        return frames

    def close(self) -> None:
        self.reader.close()


def _one_session_instead(path: str, error: Exception, one_session: Callable[[str], FrameReader]) -> FrameReader:
    reason = " ".join(str(error).split())
    LOGGER.warning(f"{WARNING_PREFIX} video {path} is decoded by one NVDEC session instead: {reason}")
    return one_session(path)


def to_batch(
    paths: list[str],
    frames: list[torch.Tensor],
    infos: list[str],
    stream: torch.cuda.Stream,
    gate: CaptureGate,
) -> tuple[list[str], DeviceDecodedImages, list[str]]:
    """One batch of device frames → (paths, images with `device_frames`, infos). The host images are
    complete once `device_frames.ready` has passed (`DeviceFrames.wait` on the reading stream).
    `gate`: held while the batch is assembled (its pinned host buffer may be allocated)."""
    shapes = [(int(f.shape[0]), int(f.shape[1])) for f in frames]
    with gate.decoding(), torch.cuda.stream(stream):
        device_frames: torch.Tensor | list[torch.Tensor] = (
            torch.stack(frames) if len(set(shapes)) == 1 else [f.contiguous() for f in frames]
        )
        group = [device_frames] if isinstance(device_frames, torch.Tensor) else device_frames
        hosts = [torch.empty(t.shape, dtype=torch.uint8, pin_memory=True) for t in group]
        for host, dev in zip(hosts, group):
            host.copy_(dev, non_blocking=True)
        # the letterbox waits for this event, i.e. for the host copies too: by the time predict has a
        # batch's detections on the host, its images are complete there, and no thread blocked for it
        ready = torch.cuda.Event()
        ready.record(stream)
    # views of the pinned copies; they keep them alive for as long as a Results holds its image
    arrays = list(hosts[0].numpy()) if isinstance(device_frames, torch.Tensor) else [h.numpy() for h in hosts]
    images = DeviceDecodedImages(arrays)
    images.device_frames = DeviceFrames(device_frames, shapes, ready=ready)
    return paths, images, infos
