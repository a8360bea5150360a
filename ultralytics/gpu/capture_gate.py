"""Keep the GPU decoders' CUDA calls out of the window in which a CUDA graph is captured.

With `gpu_decode=True`, NVDEC sessions and nvJPEG decode in other threads while the main thread may be
capturing the first batch's graph (`gpu/graphs.py`, `thread_local` capture mode). Those libraries
create and free device memory and synchronise inside their calls; an implicit synchronisation that
reaches the stream being captured invalidates the capture. On the H200 the first `predict` of a video
with 4 NVDEC sessions failed its capture that way ("operation failed due to a previous error during
capture", session 6), and the runner then ran eagerly for good.

So each device has one `CaptureGate`: decoder work (a decoder's creation, a request and the copy of its
frames, its release) holds it shared; a capture holds it exclusively and waits for the calls in flight
to end. Captures are rare (one per input shape), so the decoders lose little time, though a capture
holds the gate through its three warm-up passes, which include the first cuDNN and Triton compiles (the
decoders can pause for a few seconds at a process's first batch); a waiting capture goes first, so a busy
decoder cannot starve it.

Not covered: PyNvVideoCodec's `ThreadedDecoder` (`ULTRALYTICS_NVDEC_READER=threaded`) decodes ahead in a
thread of its own, which no gate can hold; only its creation, reads and close are gated. The default
reader (`simple`) does all its work in our threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_GATES: dict[int, CaptureGate] = {}
_LOCK = threading.Lock()


class CaptureGate:
    """A readers-writer lock: many `decoding()` holders at once, or one `capturing()` holder.

    Re-entrant per thread for decoding (a reader inside a reader does not wait for a queued capture, which
    would deadlock), and a thread that is capturing may also decode."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._decoding = 0  # decoder calls inside the gate, all threads
        self._captures_waiting = 0
        self._capturer: int | None = None  # thread id of the capture holding the gate
        self._local = threading.local()  # .depth: this thread's nested decoding() calls

    @property
    def capturing_now(self) -> bool:
        return self._capturer is not None

    @property
    def decoding_now(self) -> int:
        return self._decoding

    @contextmanager
    def decoding(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        me = threading.get_ident()
        if depth == 0 and self._capturer != me:
            with self._cond:
                while self._capturer is not None or self._captures_waiting:
                    self._cond.wait()
                self._decoding += 1
            counted = True
        else:
            counted = False
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if counted:
                with self._cond:
                    self._decoding -= 1
                    if self._decoding == 0:
                        self._cond.notify_all()

    @contextmanager
    def capturing(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._capturer == me:  # nested capture in one thread (a family member inside a runner)
            yield
            return
        if getattr(self._local, "depth", 0):
            raise RuntimeError("a CUDA graph capture was started inside decoder work of the same thread")
        with self._cond:
            self._captures_waiting += 1
            try:
                while self._capturer is not None or self._decoding:
                    self._cond.wait()
            finally:
                self._captures_waiting -= 1
                self._cond.notify_all()  # decoders parked behind this capture go on if its wait was interrupted
            self._capturer = me
        try:
            yield
        finally:
            with self._cond:
                self._capturer = None
                self._cond.notify_all()


def capture_gate(device: torch.device | str | int) -> CaptureGate:
    """The device's gate (CPU devices share one, so the same code runs in CI)."""
    device = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    key = -1 if device.type != "cuda" else (device.index if device.index is not None else torch.cuda.current_device())
    with _LOCK:
        if key not in _GATES:
            _GATES[key] = CaptureGate()
        return _GATES[key]
