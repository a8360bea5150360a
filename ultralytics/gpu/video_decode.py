"""Video frames decoded by NVDEC (PyNvVideoCodec) into device memory, as uint8 BGR frame batches.

A 720p frame costs the host CPU a few ms to decode; NVDEC, the GPU's fixed-function decoder, does it
beside the SMs and leaves the frame in device memory, where the GPU letterbox reads it. The reader
hands out batches of BHWC BGR uint8 tensors (the OpenCV path's layout); `OpenCVFrameReader` is the same
interface over cv2.VideoCapture (the fallback, and what CI exercises the batching with).
One session gives ~1100 720p frames/s, so `open_nvdec_reader` decodes a longer video with several
sessions at once (`gpu/segmented_decode.py`, `ULTRALYTICS_NVDEC_SESSIONS`).

PyNvVideoCodec is optional (`pip install pynvvideocodec`, or the `gpu-decode` extra); without it, or
for a codec NVDEC cannot do, the caller falls back to OpenCV with one warning.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import torch

from ultralytics.data.loaders import read_frame
from ultralytics.gpu import nvdec_pool
from ultralytics.gpu.capture_gate import capture_gate
from ultralytics.gpu.decode import cuda_device_problem
from ultralytics.gpu.segmented_decode import (
    CudaStreams,
    SegmentedFrameReader,
    bgr_copy,
    segment_frames,
    sessions_for,
)
from ultralytics.gpu.streams import decode_streams
from ultralytics.utils.settings import READER_ENV, nvdec_reader, nvdec_sessions  # noqa: F401 - READER_ENV: its old home


def nvdec_problem(device: torch.device) -> str | None:
    """Why NVDEC cannot be used on `device` (None: the library is there and the device is CUDA)."""
    if problem := cuda_device_problem(device):
        return problem
    try:
        import PyNvVideoCodec  # noqa: F401
    except Exception as e:  # ImportError, or the library failing to load libnvcuvid
        return f"PyNvVideoCodec is not usable ({type(e).__name__}: {e}); pip install pynvvideocodec"
    return None


def _primary_context(index: int) -> int:
    """The device's primary CUDA context (the one torch uses), so decoder and torch share pointers and streams.

    Each call retains one more reference and none is released: the context lives as long as torch's
    anyway, and releasing under a decoder that may still be tearing down was not worth an untested risk."""
    lib = ctypes.CDLL("libcuda.so.1")
    dev = ctypes.c_int()
    ctx = ctypes.c_void_p()
    if lib.cuDeviceGet(ctypes.byref(dev), int(index)) or lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev):
        raise RuntimeError(f"could not get the primary CUDA context of device {index}")
    return int(ctx.value or 0)


THREADED_BUFFER = 64  # frames the threaded reader decodes ahead


class NvdecFrameReader:
    """One video decoded by NVDEC on `device`; frames are converted to BGR on `stream`.

    PyNvVideoCodec's SimpleDecoder decodes when asked; its ThreadedDecoder (`ULTRALYTICS_NVDEC_READER=
    threaded`) decodes ahead in a thread of its own. Both hand out views of buffers they reuse, so every
    batch is copied (as BGR) before the next request, and the copy is finished before `read` returns.
    """

    def __init__(self, path: str | Path, device: torch.device, stream: torch.cuda.Stream):
        import PyNvVideoCodec as nvc

        self.device = torch.device(device)
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        self.stream = stream
        common = dict(
            gpu_id=index,
            cuda_context=_primary_context(index),
            cuda_stream=int(stream.cuda_stream),
            use_device_memory=True,
            output_color_type=nvc.OutputColorType.RGB,
        )
        self.threaded = reader_kind() == "threaded"
        self.gate = capture_gate(self.device)
        with self.gate.decoding():  # creating a session allocates device memory: not during a capture
            if self.threaded:
                self._decoder = nvc.ThreadedDecoder(str(path), THREADED_BUFFER, **common)
                self._left = int(self._decoder.get_stream_metadata().num_frames)
            else:
                self._decoder = nvc.SimpleDecoder(str(path), **common)
                self._left = len(self._decoder)

    def read(self, n: int) -> torch.Tensor | None:
        if self._left <= 0:
            return None
        n = min(int(n), self._left, THREADED_BUFFER if self.threaded else self._left)
        with self.gate.decoding():
            try:
                frames = self._decoder.get_batch_frames(n)
            except Exception:  # end-of-stream errors on a short count in the container: stop there, as OpenCV does
                frames = []
            if not frames:
                self._left = 0
                return None
            self._left -= len(frames)
            with torch.cuda.stream(self.stream):
                out = bgr_copy(frames)
            self.stream.synchronize()  # the decoder may reuse its buffers on the next request
            del frames  # the views of its surfaces go inside the gate too
        return out

    def close(self) -> None:
        with self.gate.decoding():  # releasing the session frees device memory: not during a capture
            if self.threaded and self._decoder is not None:
                self._decoder.end()
            self._decoder = None


def reader_kind() -> str:
    return nvdec_reader()


def open_nvdec_reader(
    path: str | Path, device: torch.device, stream: torch.cuda.Stream, sessions: int | None = None
) -> NvdecFrameReader | SegmentedFrameReader:
    """`sessions` NVDEC sessions on one video (default: `ULTRALYTICS_NVDEC_SESSIONS`); one sequential
    session (`NvdecFrameReader`, today's reader) when 1 is asked, the threaded reader is picked, or the
    video is too short to split. `stream`: where the caller reads the frames."""
    sessions = nvdec_sessions() if sessions is None else int(sessions)
    if sessions > 1 and reader_kind() == "simple":
        reader = segmented_nvdec_reader(path, device, stream, sessions)
        if reader is not None:
            return reader
    return NvdecFrameReader(path, device, stream)


def segmented_nvdec_reader(
    path: str | Path, device: torch.device, stream: torch.cuda.Stream, sessions: int, segment: int | None = None
) -> SegmentedFrameReader | None:
    """A `SegmentedFrameReader` whose sessions are SimpleDecoders in torch's primary context, each
    decoding (and converting to RGB) on its own stream of `gpu/streams.decode_streams`."""
    import PyNvVideoCodec as nvc

    device = torch.device(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    device = torch.device("cuda", index)
    context = _primary_context(index)

    def open_fresh(worker_stream: torch.cuda.Stream):
        return nvc.SimpleDecoder(
            str(path),
            gpu_id=index,
            cuda_context=context,
            cuda_stream=int(worker_stream.cuda_stream),
            use_device_memory=True,
            output_color_type=nvc.OutputColorType.RGB,
        )

    def open_decoder(worker_stream: torch.cuda.Stream):  # the stream's kept decoder, reconfigured, or a new one
        return nvdec_pool.take(_pool_key(worker_stream), path, lambda: open_fresh(worker_stream))

    streams = CudaStreams(decode_streams(device, sessions), stream)

    def keep_decoder(worker: int, decoder) -> None:
        nvdec_pool.give_back(_pool_key(streams.worker_stream(worker)), decoder)

    # inside the gate from session 0's opening until this function lets go of it: whichever of this frame,
    # the reader and session 0's thread drops it last, it is released while no capture runs
    with streams.guard():
        first = open_decoder(streams.worker_stream(0))
        meta = first.get_stream_metadata()
        frame_bytes = int(getattr(meta, "width", 0) or 0) * int(getattr(meta, "height", 0) or 0) * 3
        length = segment or segment_frames(len(first), sessions, frame_bytes)
        reader = None
        if sessions_for(len(first), sessions, length, frame_bytes) > 1:  # else one sequential session is better
            reader = SegmentedFrameReader(
                path,
                open_decoder,
                sessions,
                device=device,
                streams=streams,
                segment=segment,
                frame_bytes=frame_bytes,
                first_decoder=first,
                keep_decoder=keep_decoder,
            )
        else:  # the caller opens one sequential reader: session 0's decoder waits for the next video
            keep_decoder(0, first)
        del first, meta
    return reader


def _pool_key(stream: torch.cuda.Stream) -> tuple:
    """A decoder is bound to the stream it was made with: kept decoders are found by it."""
    return ("cuda", stream.device.index, int(stream.cuda_stream))


class OpenCVFrameReader:
    """cv2.VideoCapture behind the FrameReader interface (host decode, then one copy to `device`)."""

    def __init__(self, path: str | Path, device: torch.device):
        import cv2

        self.device = torch.device(device)
        self._shape: tuple[int, ...] | None = None  # the last frame's, for the next read's array
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            raise ValueError(
                f"could not open video {path}: the file is corrupt or its codec is not supported by OpenCV"
            )

    def read(self, n: int) -> torch.Tensor | None:
        frames: list[np.ndarray] = []
        while len(frames) < n and self._cap is not None:
            ok, image = read_frame(self._cap, self._shape)  # into frame-pool arrays (data/frame_pool.py)
            if not ok:
                self.close()
                break
            self._shape = image.shape
            frames.append(image)
        if not frames:
            return None
        batch = torch.from_numpy(np.stack(frames))
        return batch.to(self.device, non_blocking=self.device.type == "cuda" and batch.is_pinned())

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def video_info(path: str | Path) -> tuple[int, float]:
    """(frame count, fps) as the CPU loader reads them (`data/loaders.video_properties`), for a video
    decoded elsewhere: the numbers the CPU path prints and saves with."""
    import cv2

    from ultralytics.data.loaders import video_properties

    cap = cv2.VideoCapture(str(path))
    try:
        return video_properties(cap)
    finally:
        cap.release()
