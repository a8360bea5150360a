"""The CUDA streams the GPU pipeline uses besides the default stream, created once per device.

Why not `torch.cuda.Stream()` wherever a stream is needed: torch hands out streams from a fixed pool
of 32 per device and priority, round-robin. The pipeline used to take a fresh one per graph runner
(one per letterbox geometry, NMS setting, model) and another for uploads. After 32 of them, a runner's
capture stream *was* the upload stream: while the main thread captured a letterbox graph on it
(`thread_local` mode), the prefetch thread's copy and event record landed inside that capture, and
waiting on the event failed with "CUDA error: invalid argument" (seen after ~80 mixed-size batches of
the shapes val set, which has 33 frame sizes; `scripts/gpu_upload_repro.py` reproduces it).

So there are exactly three, created once per device (plus the NVDEC sessions' decode streams, below):
- the copy stream, from the high-priority pool (graph streams come from the low-priority one, so the
  two can never be the same stream): host→device uploads only, never captured;
- the letterbox stream, the next one of the high-priority pool: large batches are letterboxed on it
  eagerly, so the letterbox of batch i+1 runs beside the network of batch i instead of after it;
  never captured either;
- the graph stream, from the low-priority pool, with one lock. Every capture *and* every replay of
  every CUDA graph on the device holds the lock, so no other thread of ours can enqueue on the graph
  stream while a capture runs on it.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from ultralytics.utils import LOGGER

_LOCK = threading.Lock()
_COPY: dict[int, torch.cuda.Stream] = {}
_GRAPH: dict[int, tuple[torch.cuda.Stream, threading.RLock]] = {}
_LETTERBOX: dict[int, torch.cuda.Stream] = {}
_BRANCH: dict[int, list[torch.cuda.Stream]] = {}
_PARALLEL = threading.local()  # .device: branches may fork onto side streams in this thread
# Allocations of side streams that joined a capture go to the graph's private pool only where torch's
# allocator routes by capture (a filter, torch >= 2.1); older torch would hand that memory back to the
# general pool mid-graph, so there the branches run in turn.
_SIDE_STREAMS_IN_POOL = hasattr(torch._C, "_cuda_beginAllocateToPool")
_BROKEN: list[str] = []  # why side streams could not be made (then never tried again)
_DECODE: dict[int, list[torch.cuda.Stream]] = {}


def _index(device: torch.device | str | int) -> int:
    device = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"CUDA streams need a CUDA device, got '{device}'")
    return device.index if device.index is not None else torch.cuda.current_device()


def copy_stream(device: torch.device | str | int) -> torch.cuda.Stream:
    """The device's upload stream (high priority: a small copy is not queued behind big kernels)."""
    index = _index(device)
    with _LOCK:
        if index not in _COPY:
            # torch keeps one pool per priority, so this stream is never one of the graph pool's
            _COPY[index] = torch.cuda.Stream(index, priority=-1)
        return _COPY[index]


def graph_stream(device: torch.device | str | int) -> tuple[torch.cuda.Stream, threading.RLock]:
    """The device's stream for capturing and replaying CUDA graphs, and the lock that guards it."""
    index = _index(device)
    with _LOCK:
        if index not in _GRAPH:
            _GRAPH[index] = (torch.cuda.Stream(index, priority=0), threading.RLock())
        return _GRAPH[index]


def letterbox_stream(device: torch.device | str | int) -> torch.cuda.Stream:
    """The device's stream for eager letterboxing of large batches (high priority, never captured)."""
    index = _index(device)
    copy = copy_stream(index)
    with _LOCK:
        if index not in _LETTERBOX:
            stream = torch.cuda.Stream(index, priority=-1)
            if stream.cuda_stream == copy.cuda_stream:  # the pool wrapped around: take the next one
                stream = torch.cuda.Stream(index, priority=-1)
            _LETTERBOX[index] = stream
        return _LETTERBOX[index]


def decode_streams(device: torch.device | str | int, count: int) -> list[torch.cuda.Stream]:
    """`count` streams for the NVDEC sessions of one video (`gpu/segmented_decode.py`), one per session,
    created once per device and shared by every video after it. From the high-priority pool, so never the
    graph stream; never captured; kept apart from the copy and letterbox streams while the pool allows."""
    index = _index(device)
    taken = {copy_stream(index).cuda_stream, letterbox_stream(index).cuda_stream}
    with _LOCK:
        streams = _DECODE.setdefault(index, [])
        tries = 0
        while len(streams) < count:
            stream = torch.cuda.Stream(index, priority=-1)
            tries += 1
            if stream.cuda_stream not in taken or tries > 32:  # past a full turn of the pool, share one
                taken.add(stream.cuda_stream)
                streams.append(stream)
        return streams[:count]


# ---------------------------------------------------------------------- parallel branches in a capture
def branch_streams(device: torch.device | str | int, n: int) -> list[torch.cuda.Stream]:
    """n side streams of our own for parallel branches inside a graph capture, created once per device.

    Not from torch's pool: a pooled stream can be another thread's stream (the copy stream, a decode
    session's), and that thread's work would land inside our capture (see the top of this module)."""
    index = _index(device)
    with _LOCK:
        have = _BRANCH.setdefault(index, [])
        while len(have) < n:
            have.append(_own_stream(index))
        return have[:n]


def _own_stream(index: int) -> torch.cuda.Stream:
    """A non-blocking stream made with the driver API in the device's primary context (torch's)."""
    with torch.cuda.device(index):
        torch.cuda.current_stream(index).synchronize()  # torch's primary context is current on this thread
        handle = ctypes.c_void_p()
        if ctypes.CDLL("libcuda.so.1").cuStreamCreate(ctypes.byref(handle), 1):  # 1: CU_STREAM_NON_BLOCKING
            raise RuntimeError(f"could not create a CUDA stream on device {index}")
        return torch.cuda.ExternalStream(handle.value, device=torch.device("cuda", index))


@contextmanager
def parallel_branches(device: torch.device) -> Iterator[None]:
    """While capturing a graph: independent branches (`run_branches`) fork onto side streams.

    At batch 1 a YOLO network is ~300 kernels of a few µs each, one after another; the detection head's
    2 x 3 per-level branches are independent, and running them side by side took 0.16-0.18 ms off the
    ~1 ms network graph of yolov8n/s on the H200 (benchmarks/NOTES.md, session 5), same outputs bit for bit."""
    device = torch.device(device)
    previous = getattr(_PARALLEL, "device", None)
    _PARALLEL.device = device if device.type == "cuda" and _SIDE_STREAMS_IN_POOL and not _BROKEN else None
    try:
        yield
    finally:
        _PARALLEL.device = previous


def run_branches(branches: list[Callable[[], torch.Tensor]]) -> list[torch.Tensor]:
    """Each branch's output, in order: side by side on side streams inside `parallel_branches`, else
    one after another (eager code, the CPU, other threads)."""
    device = getattr(_PARALLEL, "device", None)
    if device is None or len(branches) < 2 or _BROKEN:
        return [branch() for branch in branches]
    try:
        sides = branch_streams(device, len(branches))
    except (OSError, RuntimeError, AttributeError) as e:  # no libcuda.so.1 (e.g. Windows' nvcuda.dll), ...
        _BROKEN.append(f"{type(e).__name__}: {e}")
        LOGGER.warning(f"WARNING no side streams for the head's branches ({_BROKEN[0]}); running them in turn")
        return [branch() for branch in branches]
    current = torch.cuda.current_stream(device)
    outputs = []
    for branch, side in zip(branches, sides):
        side.wait_stream(current)  # fork: the branch's inputs were made on the current stream
        with torch.cuda.stream(side):
            outputs.append(branch())
    for side, out in zip(sides, outputs):
        current.wait_stream(side)  # join, so the capture ends on one stream
        out.record_stream(current)  # made on the side stream, read (and freed) on the current one
    return outputs
