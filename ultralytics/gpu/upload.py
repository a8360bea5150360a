"""Host→device upload of uint8 frames through reusable pinned buffers.

Uploading the raw uint8 frames (one byte a channel) instead of letterboxed float32 moves a quarter of
the bytes or less; pinned memory lets the copy run asynchronously (`non_blocking=True`), so decoding the
next batch, or launching kernels, overlaps the transfer. A pinned buffer is only reused after the copy
that read it has finished (an event per buffer), otherwise a fast producer would overwrite frames
still in flight.

Frames are staged a group at a time (`torch.cat` into the pinned buffer, then one DMA per group, so
the DMA of one group overlaps staging the next; a lone frame above 12 MB, 4K, is staged in four pieces for
the same reason); one torch call copies a whole group with the GIL released. In the pipeline this host copy runs at the host's memory bandwidth for frames that come
from DRAM (0.13-0.19 ms per 720p frame on the H100/H200 hosts, against 0.04 when the same 32 frames
are copied again and again from cache): it, not the GPU, paces yolov8n at batch 32. Memmoves over
2/4/8 threads of our own were measured against it in the pipeline and were slower (benchmarks/NOTES.md).

The copies run on the device's copy stream (`gpu/streams.py`), so the upload of batch i+1 overlaps the
network of batch i. The consumer makes its stream wait for the copy's event and marks the frames as
used on its stream (`DeviceFrames.wait`); the device memory was allocated on the copy stream, and
without that mark the allocator could hand it to the next upload while the consumer still reads it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ultralytics.gpu.streams import copy_stream


@dataclass
class DeviceFrames:
    """uint8 BGR frames on the device: one BHWC tensor when all share a shape, else HWC tensors.

    `ready` is the event after which the frames may be read (the copy ran on another stream);
    `host_shapes` are the (h, w) of every frame as uploaded: the original's, or with a host resize the resized
    one's (that batch carries its letterbox geometries, so nothing derives them from these).
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


GROUP_BYTES = 32 << 20  # frames staged per group: the DMA of one group overlaps staging the next


class PinnedUploader:
    """Copies lists of HWC uint8 arrays to one device through a small ring of pinned buffers.

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
        # diagnostics: set to a list to collect host seconds (waiting for a free slot, host copies, whole call)
        self.host_times: list[tuple[float, float, float]] | None = None

    def upload(self, images: list[np.ndarray], resize_to: list[tuple[int, int]] | None = None) -> DeviceFrames:
        """The frames on the device; with `resize_to` ((w, h) per frame), resized by OpenCV on the host
        first, straight into the pinned buffer (`HostResizer`), so only the small frames are copied at all."""
        if not images:
            raise ValueError("upload needs at least one image")
        for im in images:
            if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
                raise ValueError(
                    "frames must be HWC uint8 BGR numpy arrays with 3 channels, got "
                    f"{type(im).__name__} {getattr(im, 'shape', '')} {getattr(im, 'dtype', '')}"
                )
        if resize_to is not None and len(resize_to) != len(images):
            raise ValueError(f"resize_to needs one (w, h) per frame: {len(resize_to)} for {len(images)} frames")
        resizer = HostResizer(images, resize_to) if resize_to is not None else None
        staged = resizer.shapes if resizer is not None else [im.shape for im in images]
        shapes = [(int(s[0]), int(s[1])) for s in staged]
        same = len(set(staged)) == 1
        if not self.cuda:
            host = resizer.resize_all() if resizer is not None else [np.ascontiguousarray(im) for im in images]
            tensors = [torch.from_numpy(im) for im in host]
            return DeviceFrames(torch.stack(tensors) if same else tensors, shapes)
        sources = flat_sources(images) if resizer is None else []
        sizes = [h * w * c for h, w, c in staged]
        offsets = np.cumsum([0] + sizes).tolist()
        t_call = time.perf_counter()
        with self._lock, torch.cuda.stream(self._stream):
            timed = self.copy_events is not None
            if timed:
                start = torch.cuda.Event(enable_timing=True)
                start.record(self._stream)
            slot = self._slots[self._next]
            self._next = (self._next + 1) % len(self._slots)
            t_reserve = time.perf_counter()
            staging = slot.reserve(offsets[-1])
            t_reserve, copying = time.perf_counter() - t_reserve, 0.0
            flat = torch.empty(offsets[-1], dtype=torch.uint8, device=self.device)
            pieces = resizer.pieces(offsets) if resizer is not None else _pieces(offsets, GROUP_BYTES)
            for piece in pieces:
                begin, end = piece[:2]
                t_copy = time.perf_counter()
                if resizer is not None:
                    resizer.resize_into(staging, offsets, piece)
                else:
                    _stage(sources, offsets, staging, piece)
                copying += time.perf_counter() - t_copy
                flat[begin:end].copy_(staging[begin:end], non_blocking=True)
            done = torch.cuda.Event(enable_timing=timed)
            done.record(self._stream)  # after every copy of this upload (one stream: in order)
            slot.done = done
            if timed:
                self.copy_events.append((start, done, len(images)))
        if self.host_times is not None:
            self.host_times.append((t_reserve, copying, time.perf_counter() - t_call))
        if same:
            frames: torch.Tensor | list[torch.Tensor] = flat.view(len(images), *staged[0])
        else:
            frames = [flat[o : o + n].view(shape) for o, n, shape in zip(offsets, sizes, staged)]
        return DeviceFrames(frames, shapes, ready=done)


def flat_sources(images: list[np.ndarray]) -> list[torch.Tensor]:
    """The frames as flat uint8 tensors sharing their memory, for `torch.cat` into the staging buffer.

    Flattened by numpy, not by `Tensor.view`: a torch call releases the GIL and has to take it back, and
    in the prefetch thread, beside the main thread's Python, such hand-backs wait. With one `view` per
    frame this part took 0.5-1.5 ms per 32 frames in the pipeline against 0.2 with the main thread idle
    (H200 host, benchmarks/NOTES.md, session 8, probe 5); numpy's reshape keeps the GIL. Its own effect
    was not separated from the session's other changes by a clean A/B."""
    return [torch.from_numpy(np.ascontiguousarray(im).reshape(-1)) for im in images]


SPLIT_BYTES = 12 << 20  # a lone frame above this is staged in pieces: the DMA of one overlaps staging the next
SPLIT_PIECES = 4


def _pieces(offsets: list[int], limit: int) -> list[tuple[int, int, int, int]]:
    """(begin, end, first, last): byte ranges [begin, end) staged and copied one after another, lying in
    frames [first, last). Groups of whole frames of at most `limit` bytes, except that a group of one
    frame above SPLIT_BYTES is cut in SPLIT_PIECES, so that its staging and its DMA overlap. Each piece
    costs a copy call and a DMA launch of its own: `model(frame)` on the H200 host (FP16 yolov8n, 8
    alternating rounds) took 1.81 -> 1.75 ms at 720p and 2.16 -> 1.93 at 1080p whole instead of in four
    pieces, but 2.59 against 2.79 at 4K (25 MB) in four (benchmarks/NOTES.md, session 11, probe MM)."""
    ranges = []
    for first, last in _groups(offsets, limit):
        begin, end = offsets[first], offsets[last]
        if last - first == 1 and end - begin > SPLIT_BYTES:
            cuts = [begin + (end - begin) * k // SPLIT_PIECES for k in range(SPLIT_PIECES + 1)]
            ranges += [(a, b, first, last) for a, b in zip(cuts[:-1], cuts[1:])]
        else:
            ranges.append((begin, end, first, last))
    return ranges


def _stage(sources: list[torch.Tensor], offsets: list[int], staging: torch.Tensor, piece: tuple) -> None:
    """Copy one of `_pieces` (the frames laid end to end) into the pinned buffer: whole frames in one
    torch call (GIL released), or a piece of one frame."""
    begin, end, first, last = piece
    if begin == offsets[first] and end == offsets[last]:
        torch.cat(sources[first:last], out=staging[begin:end])
    else:  # part of frame `first`
        staging[begin:end].copy_(sources[first][begin - offsets[first] : end - offsets[first]])


def _groups(offsets: list[int], limit: int) -> list[tuple[int, int]]:
    """Consecutive [first, last) frame ranges of at most `limit` bytes (at least one frame each)."""
    groups, first = [], 0
    for k in range(1, len(offsets)):
        if k > first + 1 and offsets[k] - offsets[first] > limit:
            groups.append((first, k - 1))
            first = k - 1
    groups.append((first, len(offsets) - 1))
    return groups


HOST_RESIZE_GROUP = 8  # frames resized per group: the DMA of one group overlaps resizing the next
HOST_RESIZE_THREADS = 4  # resizes run at once (OpenCV splits each one over its own threads as well)
_RESIZE_POOL: list[ThreadPoolExecutor] = []  # made on first use; its own threads, not the decode pool's
_RESIZE_POOL_LOCK = threading.Lock()


def _resize_pool() -> ThreadPoolExecutor:
    with _RESIZE_POOL_LOCK:
        if not _RESIZE_POOL:
            _RESIZE_POOL.append(ThreadPoolExecutor(HOST_RESIZE_THREADS, thread_name_prefix="ultralytics-resize"))
        return _RESIZE_POOL[0]


class HostResizer:
    """Frames resized with OpenCV's INTER_LINEAR (what the CPU `LetterBox` does, so the numbers are the
    same) into given buffers: the pinned staging buffer on CUDA, where this replaces the full frames'
    staging copy and shrinks the DMA (a 720p frame letterboxed to 640: 2.76 MB → 0.69 MB).

    Used only with `ULTRALYTICS_GPU_HOST_LETTERBOX=1`: on the H200 host the resize itself took 0.14-0.19
    ms/frame at any thread count, more than staging the full frame (0.05), so full frames stay the default
    (benchmarks/NOTES.md, session 8, probe 1). The resizes run under the uploader's lock, as the staging
    copies do, so threads sharing one model take turns."""

    def __init__(self, images: list[np.ndarray], sizes_wh: list[tuple[int, int]]):
        self.images, self.sizes_wh = images, [(int(w), int(h)) for w, h in sizes_wh]
        self.shapes = [(h, w, 3) for w, h in self.sizes_wh]

    def resize_all(self) -> list[np.ndarray]:
        """Every frame resized into a new array (the CPU device: nothing to stage)."""
        out = [np.empty(shape, np.uint8) for shape in self.shapes]
        self._run(list(range(len(self.images))), out)
        return out

    def pieces(self, offsets: list[int]) -> list[tuple[int, int, int, int]]:
        """(begin, end, first, last) per group of HOST_RESIZE_GROUP frames (in `offsets`' staged bytes)."""
        n = len(offsets) - 1
        return [
            (offsets[i], offsets[min(n, i + HOST_RESIZE_GROUP)], i, min(n, i + HOST_RESIZE_GROUP))
            for i in range(0, n, HOST_RESIZE_GROUP)
        ]

    def resize_into(self, staging: torch.Tensor, offsets: list[int], piece: tuple) -> None:
        """Resize frames [first, last) of `piece` into their places in the (pinned, CPU) `staging` bytes."""
        _, _, first, last = piece
        host = staging.numpy()
        views = [host[offsets[k] : offsets[k + 1]].reshape(self.shapes[k]) for k in range(first, last)]
        self._run(list(range(first, last)), views, first)

    def _run(self, indices: list[int], outs: list[np.ndarray], base: int = 0) -> None:
        """Resize `indices` into `outs` over up to HOST_RESIZE_THREADS threads; returns (or raises the first
        error) only once every part has stopped writing, so a failed upload leaves nothing writing into a
        buffer that a later upload may take."""
        threads = max(1, min(HOST_RESIZE_THREADS, len(indices)))
        if threads == 1:
            for k in indices:
                self._resize(k, outs[k - base])
            return
        pool = _resize_pool()
        parts = [indices[t::threads] for t in range(threads)]
        futures = [pool.submit(lambda part: [self._resize(k, outs[k - base]) for k in part], p) for p in parts]
        wait(futures)
        for future in futures:
            future.result()  # the first error, now that none is still running

    def _resize(self, k: int, out: np.ndarray) -> None:
        image, (w, h) = self.images[k], self.sizes_wh[k]
        if image.shape[:2] == (h, w):
            np.copyto(out, image)
            return
        got = cv2.resize(image, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)
        if got is not out and not np.shares_memory(got, out):  # OpenCV allocated instead of writing in place
            np.copyto(out, got)
