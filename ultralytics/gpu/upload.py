"""Host→device upload of uint8 frames through reusable pinned buffers.

Uploading the raw uint8 frames (one byte a channel) instead of letterboxed float32 moves a quarter of
the bytes or less; pinned memory lets the copy run asynchronously (`non_blocking=True`), so decoding the
next batch, or launching kernels, overlaps the transfer. A pinned buffer is only reused after the copy
that read it has finished (an event per buffer), otherwise a fast producer would overwrite frames
still in flight.

Two ways to stage (`staging=`): "ring" passes every frame through a few small pinned chunks that stay
in the CPU's cache, so host memory sees each byte once (the read of the frame); "batch" stages the
whole batch into one large pinned buffer, which writes every byte to memory and has the DMA read it
back: three passes over host memory instead of one.

The copies run on the device's copy stream (`gpu/streams.py`), so the upload of batch i+1 overlaps the
network of batch i. The consumer makes its stream wait for the copy's event and marks the frames as
used on its stream (`DeviceFrames.wait`); the device memory was allocated on the copy stream, and
without that mark the allocator could hand it to the next upload while the consumer still reads it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from ultralytics.gpu.streams import copy_stream


@dataclass
class DeviceFrames:
    """uint8 BGR frames on the device: one BHWC tensor when all share a shape, else HWC tensors.

    `ready` is the event after which the frames may be read (the copy ran on another stream);
    `host_shapes` are the original (h, w) of every frame.
    """

    frames: torch.Tensor | list[torch.Tensor]
    host_shapes: list[tuple[int, int]]
    ready: torch.cuda.Event | None = None

    def wait(self) -> None:
        """Make the current stream wait for the upload, and tell the allocator the frames are used there
        (call it on every stream that reads the frames; waiting twice costs nothing)."""
        if self.ready is None:
            return
        stream = torch.cuda.current_stream(self.ready_device)
        stream.wait_event(self.ready)
        tensors = [self.frames] if isinstance(self.frames, torch.Tensor) else self.frames
        for t in tensors:
            t.record_stream(stream)

    @property
    def ready_device(self) -> torch.device:
        first = self.frames if isinstance(self.frames, torch.Tensor) else self.frames[0]
        return first.device


class _PinnedSlot:
    def __init__(self):
        self.buffer: torch.Tensor | None = None
        self.done: torch.cuda.Event | None = None

    def reserve(self, n: int) -> torch.Tensor:
        """The slot's first n pinned bytes, once the copy that last read them has finished."""
        if self.done is not None:
            self.done.synchronize()
        if self.buffer is None or self.buffer.numel() < n:
            self.buffer = torch.empty(n, dtype=torch.uint8, pin_memory=True)
        return self.buffer[:n]


STAGINGS = ("ring", "batch")
RING_CHUNK = 4 << 20  # bytes per ring chunk: a 720p frame (2.76 MB) in one piece
RING_CHUNKS = 4  # 16 MB of pinned memory per uploader, small enough to stay in a server CPU's cache


class PinnedUploader:
    """Copies lists of HWC uint8 arrays to one device through pinned staging memory.

    On a CPU device it just wraps the arrays (no copy), so the same code runs in CI.
    Thread-safe: a prefetch thread and the caller may upload at the same time.
    """

    def __init__(self, device: torch.device, staging: str = "ring"):
        if staging not in STAGINGS:
            raise ValueError(f"staging must be one of {STAGINGS}, got '{staging}'")
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.staging = staging
        self._ring = [_PinnedSlot() for _ in range(RING_CHUNKS)]  # "ring": chunk after chunk
        self._slots = [_PinnedSlot() for _ in range(3)]  # "batch": one whole batch each
        self._next_chunk = self._next_slot = 0
        self._lock = threading.Lock()
        self._stream = copy_stream(self.device) if self.cuda else None
        # diagnostics: set to a list to collect (start, end, frames) timing events of every upload's copies
        self.copy_events: list[tuple[torch.cuda.Event, torch.cuda.Event, int]] | None = None

    def upload(self, images: list[np.ndarray]) -> DeviceFrames:
        if not images:
            raise ValueError("upload needs at least one image")
        for im in images:
            if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
                raise ValueError(
                    "frames must be HWC uint8 BGR numpy arrays with 3 channels, got "
                    f"{type(im).__name__} {getattr(im, 'shape', '')} {getattr(im, 'dtype', '')}"
                )
        shapes = [(int(im.shape[0]), int(im.shape[1])) for im in images]
        same = len({im.shape for im in images}) == 1
        if not self.cuda:
            tensors = [torch.from_numpy(np.ascontiguousarray(im)) for im in images]
            return DeviceFrames(torch.stack(tensors) if same else tensors, shapes)
        sources = [torch.from_numpy(np.ascontiguousarray(im)).view(-1) for im in images]
        offsets = np.cumsum([0] + [t.numel() for t in sources]).tolist()
        with self._lock, torch.cuda.stream(self._stream):
            timed = self.copy_events is not None
            if timed:
                start = torch.cuda.Event(enable_timing=True)
                start.record(self._stream)
            flat = torch.empty(offsets[-1], dtype=torch.uint8, device=self.device)
            if self.staging == "ring":
                self._copy_through_ring(sources, offsets, flat)
            else:
                self._copy_through_batch_buffer(sources, offsets, flat)
            done = torch.cuda.Event(enable_timing=timed)
            done.record(self._stream)  # after every copy of this upload (one stream: in order)
            if timed:
                self.copy_events.append((start, done, len(images)))
        if same:
            frames: torch.Tensor | list[torch.Tensor] = flat.view(len(images), *images[0].shape)
        else:
            frames = [flat[o : o + im.size].view(im.shape) for o, im in zip(offsets, images)]
        return DeviceFrames(frames, shapes, ready=done)

    def _copy_through_ring(self, sources: list[torch.Tensor], offsets: list[int], flat: torch.Tensor) -> None:
        for src, offset in zip(sources, offsets):
            for begin in range(0, src.numel(), RING_CHUNK):
                piece = src[begin : begin + RING_CHUNK]
                slot = self._ring[self._next_chunk]
                self._next_chunk = (self._next_chunk + 1) % len(self._ring)
                staged = slot.reserve(RING_CHUNK)[: piece.numel()]
                staged.copy_(piece)  # the host copy of this chunk overlaps the DMA of the previous ones
                flat[offset + begin : offset + begin + piece.numel()].copy_(staged, non_blocking=True)
                slot.done = torch.cuda.Event()
                slot.done.record(self._stream)

    def _copy_through_batch_buffer(self, sources: list[torch.Tensor], offsets: list[int], flat: torch.Tensor) -> None:
        slot = self._slots[self._next_slot]
        self._next_slot = (self._next_slot + 1) % len(self._slots)
        buffer = slot.reserve(offsets[-1])
        for src, offset in zip(sources, offsets):
            staged = buffer[offset : offset + src.numel()]
            staged.copy_(src)  # host copy of frame k overlaps the DMA of frame k-1
            flat[offset : offset + src.numel()].copy_(staged, non_blocking=True)
        slot.done = torch.cuda.Event()
        slot.done.record(self._stream)
