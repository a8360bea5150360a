"""CUDA graphs for a fixed-shape forward: one captured graph per input shape, in a bounded cache.

At batch 1 an eager YOLOv8 forward is a few hundred small kernel launches and the GPU mostly waits
for Python; replaying a captured graph launches them all at once. A graph reads its input from and
writes its output to fixed buffers, so each call copies the input in and the output out. The cache
is an LRU of `max_graphs` shapes so a stream of varying shapes cannot exhaust GPU memory.

Every runner on a device captures and replays on the device's one graph stream, under its one lock
(`gpu/streams.py`): the lock keeps copy-in → replay → copy-out of one call together (the buffers are
shared, so two threads must not interleave), and keeps every other thread of ours off the graph stream
while a capture runs on it, since work enqueued there by any thread would land inside the capture. The
graph stream waits for the caller's stream and the caller for it, so results follow the caller's order.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

from ultralytics.gpu.capture_gate import capture_gate
from ultralytics.gpu.streams import graph_stream, parallel_branches
from ultralytics.utils import LOGGER


class _Captured:
    def __init__(
        self, graph: torch.cuda.CUDAGraph, static_in: torch.Tensor, static_out: torch.Tensor | tuple[torch.Tensor, ...]
    ):
        self.graph, self.static_in, self.static_out = graph, static_in, static_out

    def outputs(self) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Copies of the outputs: the next replay overwrites the static ones."""
        if isinstance(self.static_out, torch.Tensor):
            return self.static_out.clone()
        return tuple(t.clone() for t in self.static_out)


class CudaGraphRunner:
    """Runs `fn(x) -> Tensor` (or a tuple of tensors) through CUDA graphs captured per (shape, dtype) of `x`."""

    def __init__(self, fn: Callable[[torch.Tensor], Any], device: torch.device, max_graphs: int = 8, pool: Any = None):
        device = torch.device(device)
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, got '{device}'")
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be at least 1, got {max_graphs}")
        self.fn = fn
        self.device = device
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        # shared by every runner on the device: a fresh torch.cuda.Stream() per runner comes from a pool of
        # 32 and, after 32 runners, is another thread's upload or replay stream (see gpu/streams.py)
        self._stream, self._lock = graph_stream(device)
        self._pool = pool  # one memory pool for all graphs (a family's too): replays never overlap (the lock)
        self.disabled_reason: str | None = None

    def __len__(self) -> int:
        return len(self._graphs)

    def __call__(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.disabled_reason is not None:
            return self.fn(x)
        caller = torch.cuda.current_stream(self.device)
        with self._lock:
            key = (tuple(x.shape), x.dtype)
            entry = self._graphs.get(key)
            if entry is None:
                entry = self._capture(x)
                if entry is None:
                    return self.fn(x)
            self._graphs.move_to_end(key)
            stream = self._stream
            stream.wait_stream(caller)  # x was produced on the caller's stream
            with torch.cuda.stream(stream):
                entry.static_in.copy_(x)
                entry.graph.replay()
                out = entry.outputs()
            caller.wait_stream(stream)
            for t in (out,) if isinstance(out, torch.Tensor) else out:
                t.record_stream(caller)
            x.record_stream(stream)
            return out

    def has(self, x: torch.Tensor) -> bool:
        """Whether the graph for x's shape and dtype is captured already (no lock: a hint)."""
        return (tuple(x.shape), x.dtype) in self._graphs

    def prepare(self, x: torch.Tensor) -> None:
        """Capture the graph for x's shape and dtype now if there is none (nothing is replayed), so
        that a timed call does not pay the warm-up passes and the capture."""
        if self.disabled_reason is not None:
            return
        with self._lock:
            if (tuple(x.shape), x.dtype) not in self._graphs:
                self._capture(x)

    def _capture(self, x: torch.Tensor) -> _Captured | None:
        """Warm up on the graph stream (cuDNN picks algorithms, lazy state settles), then capture."""
        _make_room(self._graphs, self.max_graphs, self.device)
        static_in = x.detach().clone()
        stream = self._stream
        stream.wait_stream(torch.cuda.current_stream(self.device))
        try:
            # decoder threads (gpu_decode) pause meanwhile: their allocations and synchronisations would
            # invalidate the capture (gpu/capture_gate.py)
            with capture_gate(self.device).capturing(), torch.no_grad(), parallel_branches(self.device):
                with torch.cuda.stream(stream):
                    for _ in range(3):
                        self.fn(static_in)
                stream.synchronize()
                graph = torch.cuda.CUDAGraph()
                if self._pool is None:
                    self._pool = torch.cuda.graph_pool_handle()
                # thread_local: eager CUDA work in other threads (letterbox, NMS) may go on meanwhile
                with torch.cuda.graph(graph, pool=self._pool, stream=stream, capture_error_mode="thread_local"):
                    static_out = self.fn(static_in)
        except RuntimeError as e:  # e.g. an op that synchronises: fall back to eager for good
            self.disabled_reason = f"{type(e).__name__}: {e}"
            LOGGER.warning(f"WARNING CUDA graph capture failed, running eagerly instead ({self.disabled_reason})")
            torch.cuda.synchronize(self.device)
            return None
        if not _tensors(static_out):
            self.disabled_reason = f"the captured function returned {type(static_out).__name__}, not tensors"
            LOGGER.warning(f"WARNING CUDA graphs disabled: {self.disabled_reason}")
            return None
        entry = _Captured(graph, static_in, static_out)
        self._graphs[(tuple(x.shape), x.dtype)] = entry
        LOGGER.debug(f"captured a CUDA graph for input {tuple(x.shape)} {x.dtype} ({len(self._graphs)} cached)")
        return entry


class GraphFamily:
    """CUDA graphs for a family of functions told apart by a hashable key (NMS settings, a letterbox
    geometry): one `CudaGraphRunner` per key, the least recently used dropped beyond `max_members`."""

    def __init__(self, device: torch.device, max_members: int = 8, max_graphs: int = 4):
        self.device = torch.device(device)
        self.max_members, self.max_graphs = max_members, max_graphs
        self._members: OrderedDict[tuple, CudaGraphRunner] = OrderedDict()
        self._lock = threading.Lock()
        # one memory pool for every member's graphs, as a runner shares one across its shapes: without it
        # each fused key (frame size x NMS settings) held a whole network's activations of its own
        self._pool = torch.cuda.graph_pool_handle() if self.device.type == "cuda" else None

    def __len__(self) -> int:
        return len(self._members)

    def __call__(self, key: tuple, make_fn: Callable[[], Callable[[torch.Tensor], Any]], x: torch.Tensor) -> Any:
        """fn(x) through the graph of `key`; `make_fn()` builds fn the first time the key is seen."""
        return self._runner(key, make_fn)(x)

    def ready(self, key: tuple, x: torch.Tensor) -> bool:
        """Whether the graph of `key` for x's shape and dtype is captured already (no lock: a hint)."""
        runner = self._members.get(key)
        return runner is not None and runner.has(x)

    def prepare(self, key: tuple, make_fn: Callable[[], Callable[[torch.Tensor], Any]], x: torch.Tensor) -> None:
        """Capture the graph of `key` for x's shape now (nothing replayed), outside a timed stage."""
        self._runner(key, make_fn).prepare(x)

    def _runner(self, key: tuple, make_fn: Callable[[], Callable[[torch.Tensor], Any]]) -> CudaGraphRunner:
        with self._lock:
            runner = self._members.get(key)
            if runner is None:
                _make_room(self._members, self.max_members, self.device)
                runner = self._members[key] = CudaGraphRunner(make_fn(), self.device, self.max_graphs, self._pool)
            self._members.move_to_end(key)
        return runner


def _tensors(out: object) -> bool:
    """A tensor, or a non-empty tuple of tensors: what a runner can hand back."""
    if isinstance(out, torch.Tensor):
        return True
    return isinstance(out, tuple) and bool(out) and all(isinstance(t, torch.Tensor) for t in out)


def _make_room(cache: OrderedDict, limit: int, device: torch.device) -> None:
    """Drop the least recently used entries until one more fits.

    A dropped graph may still be replaying, so the graph stream is drained first, under the graph lock
    (re-entrant: runners already hold it): syncing that stream while another thread captures on it
    would invalidate the capture.
    """
    if len(cache) < limit:
        return
    stream, lock = graph_stream(device)
    with lock:
        stream.synchronize()
    while len(cache) >= limit:
        cache.popitem(last=False)
