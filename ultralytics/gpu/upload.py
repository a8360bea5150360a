"""Host→device upload of uint8 frames through reusable pinned buffers.

Uploading the raw uint8 frames (one byte a channel) instead of letterboxed float32 moves a quarter of
the bytes or less; pinned memory lets the copy run asynchronously (`non_blocking=True`), so decoding the
next batch, or launching kernels, overlaps the transfer. A pinned buffer is only reused after the copy
that read it has finished (an event per buffer), otherwise a fast producer would overwrite frames
still in flight.

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


class PinnedUploader:
    """Copies lists of HWC uint8 arrays to one device, staging them in a small ring of pinned buffers.

    On a CPU device it just wraps the arrays (no copy), so the same code runs in CI.
    Thread-safe: a prefetch thread and the caller may upload at the same time.
    """

    def __init__(self, device: torch.device, slots: int = 3):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._slots = [_PinnedSlot() for _ in range(max(1, slots))]
        self._next = 0
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
        with self._lock:
            slot = self._slots[self._next]
            self._next = (self._next + 1) % len(self._slots)
            if slot.done is not None:
                slot.done.synchronize()  # the previous copy out of this buffer has finished
            total = sum(im.size for im in images)
            if slot.buffer is None or slot.buffer.numel() < total:
                slot.buffer = torch.empty(total, dtype=torch.uint8, pin_memory=True)
            views, offset = [], 0
            with torch.cuda.stream(self._stream):
                timed = self.copy_events is not None
                if timed:
                    start = torch.cuda.Event(enable_timing=True)
                    start.record(self._stream)
                flat = torch.empty(total, dtype=torch.uint8, device=self.device)
                for im in images:
                    # host copy of frame k (several cores) overlaps the DMA of frame k-1
                    n = im.size
                    staged = slot.buffer[offset : offset + n]
                    staged.view(im.shape).copy_(torch.from_numpy(np.ascontiguousarray(im)))
                    flat[offset : offset + n].copy_(staged, non_blocking=True)
                    views.append((offset, im.shape))
                    offset += n
                done = torch.cuda.Event(enable_timing=timed)
                done.record(self._stream)
                if timed:
                    self.copy_events.append((start, done, len(images)))
                slot.done = done
            if same:
                frames: torch.Tensor | list[torch.Tensor] = flat.view(len(images), *images[0].shape)
            else:
                frames = [flat[o : o + int(np.prod(s))].view(*s) for o, s in views]
            return DeviceFrames(frames, shapes, ready=done)
