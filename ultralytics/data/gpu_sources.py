"""Prediction batches whose frames are decoded straight into device memory (`gpu_decode=True`).

`DeviceDecodedSource` walks the entries of an `InferenceSource` (same order, same paths, same
"image k/N" / "video k/N (frame i/n)" lines, same `vid_stride` rule and frame counts) but yields each
frame as an HWC BGR uint8 tensor on the device, grouped into batches of `batch`. The decoders are passed
in (this layer knows no CUDA library): consecutive JPEG files are handed to `decode_jpegs` together, as
many as the current batch has room for; a video is read through `open_video`'s reader a batch at a
time (`video_info` gives its frame count and fps, recorded on the source as the CPU loader records
them). What cannot be decoded on the device (arrays in memory, PNGs, files the JPEG decoder rejects) is
decoded as the CPU path decodes it (from the bytes already read: each file is read once) and copied up. `to_batch` turns one batch of device frames into what the
predictor consumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ultralytics.data.loaders import InferenceSource, decode_image_bytes, imread


class FrameReader(Protocol):
    """One video, read sequentially: up to `n` next frames (BHWC BGR uint8 tensor), None at the end."""

    def read(self, n: int) -> torch.Tensor | None: ...

    def close(self) -> None: ...


JpegDecoder = Callable[[list[bytes]], list["torch.Tensor | None"]]
Frame = tuple[str, torch.Tensor, str]  # (path, HWC BGR uint8 tensor on the device, log line)


class DeviceDecodedSource:
    """Iterable of `to_batch(paths, frames, infos)` batches; each `iter()` starts over."""

    def __init__(
        self,
        source: InferenceSource,
        *,
        upload: Callable[[np.ndarray], torch.Tensor],
        to_batch: Callable[[list[str], list[torch.Tensor], list[str]], Any],
        decode_jpegs: JpegDecoder | None = None,
        is_gpu_jpeg: Callable[[bytes], bool] | None = None,
        open_video: Callable[[str], FrameReader] | None = None,
        video_info: Callable[[str], tuple[int, float]] | None = None,
    ):
        if source.is_tensor:
            raise ValueError("tensor sources are already decoded; iterate the InferenceSource itself")
        self.source = source
        self.batch = source.batch
        self.vid_stride = source.vid_stride
        self.upload = upload
        self.to_batch = to_batch
        self.decode_jpegs = decode_jpegs
        self.is_gpu_jpeg = is_gpu_jpeg or (lambda data: data[:3] == b"\xff\xd8\xff")
        self.open_video = open_video
        self.video_info = video_info

    def __len__(self) -> int:
        return len(self.source)

    def __iter__(self) -> Iterator[Any]:
        paths: list[str] = []
        frames: list[torch.Tensor] = []
        infos: list[str] = []

        def room() -> int:
            return self.batch - len(frames)

        chunks = self._chunks(room)
        try:
            for chunk in chunks:
                for path, frame, info in chunk:
                    paths.append(path)
                    frames.append(frame)
                    infos.append(info)
                    if len(frames) == self.batch:
                        yield self.to_batch(paths, frames, infos)
                        paths, frames, infos = [], [], []
        finally:
            # a consumer that stops early closes this generator: close the video reader now (its decoder
            # sessions and threads), not whenever the garbage collector gets to the inner generator
            chunks.close()
        if frames:
            yield self.to_batch(paths, frames, infos)

    # ------------------------------------------------------------------ per entry
    def _chunks(self, room: Callable[[], int]) -> Iterator[list[Frame]]:
        """Frames in source order, a few at a time (a JPEG run or a video read fills the batch's room)."""
        entries = self.source.entries
        total = len(entries)
        k = 0
        while k < total:
            entry = entries[k]
            if entry.kind == "video":
                yield from self._video(entry.path, k + 1, total, room)
                k += 1
            elif entry.kind == "array":
                yield [(entry.path, self.upload(entry.array), f"image {k + 1}/{total} {entry.path}: ")]
                k += 1
            else:  # a run of image files, as many as the batch has room for, decoded together
                run = [k]
                while len(run) < max(1, room()) and run[-1] + 1 < total and entries[run[-1] + 1].kind == "image":
                    run.append(run[-1] + 1)
                yield self._images(run, total)
                k = run[-1] + 1

    def _images(self, indices: list[int], total: int) -> list[Frame]:
        entries = self.source.entries
        paths = [entries[i].path for i in indices]
        if self.decode_jpegs is None:
            frames = [self.upload(imread(p)) for p in paths]
        else:
            datas = [_read_bytes(p) for p in paths]
            decoded: list[torch.Tensor | None] = [None] * len(paths)
            on_gpu = [j for j, d in enumerate(datas) if self.is_gpu_jpeg(d)]
            if on_gpu:
                for j, frame in zip(on_gpu, self.decode_jpegs([datas[j] for j in on_gpu])):
                    decoded[j] = frame
            # what the device decoder did not take is decoded from the bytes already read, as imread would
            frames = [
                d if d is not None else self.upload(decode_image_bytes(data, p))
                for d, data, p in zip(decoded, datas, paths)
            ]
        return [(p, f, f"image {i + 1}/{total} {p}: ") for i, p, f in zip(indices, paths, frames)]

    def _video(self, path: str, k: int, total: int, room: Callable[[], int]) -> Iterator[list[Frame]]:
        """Every vid_stride-th frame (the 1st kept is frame vid_stride, as the CPU path's grab/read loop)."""
        if self.open_video is None:
            raise ValueError(f"no video reader was given for {path}")
        stride = self.vid_stride
        count, fps = self.video_info(path) if self.video_info else (0, 0.0)
        self.source.fps[path] = fps  # the same home as the CPU loader's: the predictor saves at this rate
        n_frames = int(count / stride)
        reader = self.open_video(path)
        index = 0  # frames decoded so far in this video
        kept = 0
        try:
            while True:
                # decode up to the next `room` kept frames: with index frames done, frame j is kept when (j+1) % stride == 0
                want = max(1, room())
                next_kept = index + (stride - 1 - index % stride)
                block = reader.read(next_kept + (want - 1) * stride + 1 - index)
                if block is None:
                    break
                chunk: list[Frame] = []
                for j in range(block.shape[0]):
                    if (index + j + 1) % stride == 0:
                        kept += 1
                        chunk.append(
                            (path, block[j], f"video {k}/{total} (frame {kept}/{max(n_frames, kept)}) {path}: ")
                        )
                index += block.shape[0]
                if chunk:
                    yield chunk
        finally:
            reader.close()
        if kept == 0 and index == stride - 1:  # the CPU path's rule: the first read (not a skip) failed
            raise ValueError(f"video {path} has no readable frames")


def _read_bytes(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image not found: {p}. Check the path (relative paths are from {Path.cwd()})")
    return p.read_bytes()
