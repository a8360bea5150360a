"""One video decoded by several decoder sessions at once, handed out in frame order.

One NVDEC session delivers ~1100 720p frames/s; the GPU has several NVDEC engines, and PyNvVideoCodec's
decode calls release the GIL. So the frames are cut into consecutive segments, dealt round-robin to K
worker threads (each with its own decoder session and its own stream), decoded ahead into device
tensors of our own, and handed out strictly in order through the `FrameReader` interface
(`read(n)` → BHWC BGR uint8 or None, `close()`).

Memory stays bounded: a worker holds at most one segment's frames that the consumer has not taken,
and the segment length shrinks for large frames (`segment_frames`). Nothing here imports a decoder
library or needs CUDA: the decoder factory and the stream handling are passed in (`CudaStreams` on the
GPU, `HostStreams` on the CPU, where the tests run the same class over a stand-in decoder).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ultralytics.gpu.capture_gate import CaptureGate, capture_gate

SLICE_FRAMES = 32  # frames per decoder request (what was measured: `get_batch_frames_by_index` of 32)
MIN_SEGMENT = 64  # shortest segment (each start costs a seek to the keyframe before it); shorter videos: 1 session
MAX_SEGMENT = 256  # longest segment (also the most frames a worker holds ahead)
AHEAD_BYTES = 3 << 30  # decoded-ahead frames of all workers together, at most about this much


class IndexedDecoder(Protocol):
    """What a session needs of a decoder (PyNvVideoCodec's SimpleDecoder has it): the frame count and
    frames by sorted index, as HWC RGB DLPack-able views of buffers the next request may reuse."""

    def __len__(self) -> int: ...

    def get_batch_frames_by_index(self, indices: list[int]) -> Sequence[Any]: ...


class DecodeStreams(Protocol):
    """Where the sessions' copies run and how the consumer is made to wait for them."""

    def worker_stream(self, worker: int) -> Any: ...

    def begin(self, worker: int) -> Any:
        """Prepare the calling thread to be session `worker`; return its stream."""

    def using(self, stream: Any) -> contextlib.AbstractContextManager: ...

    def finish(self, stream: Any) -> Any:
        """Wait until the work queued on `stream` is done (the decoder may reuse its buffers next);
        return what `hand_over` waits on."""

    def hand_over(self, frames: torch.Tensor, ready: Any) -> None:
        """Order the consumer's stream after `ready`, and tell the allocator `frames` are used there."""

    def consuming(self) -> contextlib.AbstractContextManager:
        """Run what `read` itself computes (joining slices) on the consumer's stream."""

    def guard(self) -> contextlib.AbstractContextManager:
        """Hold around every decoder call (open, request + copy, release): no CUDA graph capture runs
        meanwhile (`gpu/capture_gate.py`)."""


class HostStreams:
    """CPU tensors: every copy is finished when it returns, so nothing to wait for. `gate`: a
    `CaptureGate` to hold around decoder calls (the tests pass one), else none."""

    gate: CaptureGate | None = None

    def __init__(self, gate: CaptureGate | None = None):
        self.gate = gate

    def worker_stream(self, worker: int) -> None:
        return None

    def begin(self, worker: int) -> None:
        return None

    def using(self, stream: Any) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def finish(self, stream: Any) -> None:
        return None

    def hand_over(self, frames: torch.Tensor, ready: Any) -> None:
        return None

    def consuming(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def guard(self) -> contextlib.AbstractContextManager:
        return self.gate.decoding() if self.gate is not None else contextlib.nullcontext()


class CudaStreams:
    """One stream per session (`gpu/streams.decode_streams`); `consumer` is the stream that reads the
    frames handed out (decode_source's copy stream)."""

    def __init__(self, streams: list[torch.cuda.Stream], consumer: torch.cuda.Stream):
        self.streams = streams
        self.consumer = consumer
        self.gate = capture_gate(consumer.device)

    def worker_stream(self, worker: int) -> torch.cuda.Stream:
        return self.streams[worker]

    def begin(self, worker: int) -> torch.cuda.Stream:
        stream = self.streams[worker]
        torch.cuda.set_device(stream.device)  # the primary context current in this thread, for the decoder too
        return stream

    def using(self, stream: torch.cuda.Stream) -> contextlib.AbstractContextManager:
        return torch.cuda.stream(stream)

    def finish(self, stream: torch.cuda.Stream) -> torch.cuda.Event:
        done = torch.cuda.Event()
        done.record(stream)
        done.synchronize()  # the decoder reuses its output buffers on the next request
        return done

    def hand_over(self, frames: torch.Tensor, ready: torch.cuda.Event) -> None:
        self.consumer.wait_event(ready)
        frames.record_stream(self.consumer)  # the worker's stream allocated it; the consumer frees it

    def consuming(self) -> contextlib.AbstractContextManager:
        return torch.cuda.stream(self.consumer)

    def guard(self) -> contextlib.AbstractContextManager:
        return self.gate.decoding()


def bgr_copy(views: Sequence[Any]) -> torch.Tensor:
    """A decoder's HWC RGB frame views (DLPack) → our own BHWC BGR batch, on the current stream.

    Two kernels per request, not two per frame: with 4 sessions the per-frame copies (and their Python,
    under the GIL the main thread needs) held one video at 689-1143 frames/s against 1675 (H200,
    benchmarks/NOTES.md session 6)."""
    return torch.stack([torch.from_dlpack(v) for v in views]).flip(-1)


def segment_frames(total: int, sessions: int, frame_bytes: int = 0) -> int:
    """Frames per segment: a contiguous 1/K of a short video (one seek per session, as measured), at
    most MAX_SEGMENT, and short enough that K segments of `frame_bytes` frames fit in AHEAD_BYTES."""
    whole = max(MIN_SEGMENT, -(-max(total, 1) // max(sessions, 1)))  # videos up to MIN_SEGMENT: one session
    length = min(MAX_SEGMENT, -(-whole // SLICE_FRAMES) * SLICE_FRAMES)
    if frame_bytes > 0:
        fit = AHEAD_BYTES // (max(sessions, 1) * frame_bytes) // SLICE_FRAMES * SLICE_FRAMES
        length = min(length, max(SLICE_FRAMES, fit))
    return max(length, SLICE_FRAMES)


def sessions_for(total: int, sessions: int, segment: int, frame_bytes: int = 0) -> int:
    """Sessions that get work: at most one per segment, and (very large frames) no more than what
    AHEAD_BYTES holds at one segment each; 1 means one sequential session is the better reader."""
    count = max(1, min(int(sessions), -(-max(total, 1) // max(segment, 1))))
    if frame_bytes > 0:
        count = max(1, min(count, AHEAD_BYTES // (segment * frame_bytes)))
    return count


@dataclass
class _Slice:
    first: int  # index of its first frame in the video
    frames: torch.Tensor  # BHWC BGR uint8, our own copy
    ready: Any  # what hand_over waits on
    taken: int = 0  # frames of it already handed out


class _Stop(Exception):
    """The reader was closed: the worker leaves."""


class SegmentedFrameReader:
    """`open_decoder(stream)` opens one session's decoder, in that session's thread; session 0's is
    opened here (or passed as `first_decoder`), since its frame count sizes the segments.
    `segment`: frames per segment (default: `segment_frames` for K sessions of `frame_bytes` frames).
    `keep_decoder(worker, decoder)`: called (inside the gate) with a session's decoder when its worker ends
    and the decoder never raised, so that the next video may reuse it (`gpu/nvdec_pool.py`); default:
    released."""

    def __init__(
        self,
        path: str | Path,
        open_decoder: Callable[[Any], IndexedDecoder],
        sessions: int,
        *,
        device: torch.device | str = "cpu",
        streams: DecodeStreams | None = None,
        segment: int | None = None,
        frame_bytes: int = 0,
        first_decoder: IndexedDecoder | None = None,
        keep_decoder: Callable[[int, IndexedDecoder], None] | None = None,
    ):
        self.path = str(path)
        self._keep = keep_decoder
        self.device = torch.device(device)
        self.streams = streams or HostStreams()
        self._open = open_decoder
        if first_decoder is None:
            with self.streams.guard():  # opening (or reconfiguring) a session allocates: never during a capture
                first_decoder = open_decoder(self.streams.worker_stream(0))
        first = first_decoder
        self.total = len(first)
        self.segment = int(segment or segment_frames(self.total, sessions, frame_bytes))
        self.segments = [(s, min(s + self.segment, self.total)) for s in range(0, self.total, self.segment)]
        self.sessions = sessions_for(self.total, sessions, self.segment, frame_bytes)
        self._opened: set[int] = set()  # sessions whose decoder is open
        self._cond = threading.Condition()
        self._queues: list[deque[_Slice]] = [deque() for _ in range(self.sessions)]
        self._held = [0] * self.sessions  # frames queued per worker, not yet handed out
        self._errors: dict[int, tuple[int, BaseException]] = {}  # worker -> (frame, error)
        self._end = self.total  # frames in the video: lowered where a decoder runs out early
        self._stopped = False
        self._pos = 0  # next frame to hand out
        self._first: IndexedDecoder | None = first  # session 0's decoder, taken by its thread (not held by
        # the Thread's args, so that the thread itself releases it, inside the gate)
        self._threads = [
            threading.Thread(target=self._work, args=(w,), name=f"nvdec-session-{w}", daemon=True)
            for w in range(self.sessions)
        ]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ workers
    def _work(self, worker: int) -> None:
        decoder: IndexedDecoder | None = None
        if worker == 0:
            decoder, self._first = self._first, None
        frame = self.segments[worker][0] if worker < len(self.segments) else 0
        guard = self.streams.guard
        views: Sequence[Any] | None = None
        got: Any = None
        healthy = True  # no decoder error: the decoder may serve another video
        try:
            stream = self.streams.begin(worker)
            if decoder is None:
                with guard():
                    decoder = self._open(stream)
            with self._cond:
                self._opened.add(worker)
                self._cond.notify_all()
            for first, end in self.segments[worker :: self.sessions]:
                for frame in range(first, end, SLICE_FRAMES):
                    indices = list(range(frame, min(end, frame + SLICE_FRAMES)))
                    self._wait_for_room(worker, len(indices))
                    if frame >= self._end:
                        return
                    try:
                        with guard():
                            views = decoder.get_batch_frames_by_index(indices)
                            got = self._copy(views, stream) if views else None
                    except Exception as error:
                        # keep the frames before the one that fails; near the end the container's frame
                        # count overstates the file (the one-session reader ends there too), elsewhere it
                        # is an error, raised when the consumer reaches it. Either way the decoder raised:
                        # nothing showed it works for another video, so it is not kept
                        healthy = False
                        with guard():
                            views, got, failed = self._salvage(decoder, indices, stream)
                        if failed < self.total - 2 * self.segment:
                            self._publish(worker, frame, views, got, len(views))
                            raise error
                    self._publish(worker, frame, views, got, len(indices))  # after close(): dropped
                    if len(views) < len(indices):
                        return
        except _Stop:
            return
        except BaseException as e:  # surfaced by read() when the consumer reaches this frame
            healthy = False
            with self._cond:
                self._errors[worker] = (frame, e)
                self._cond.notify_all()
        finally:
            with self.streams.guard():
                # the session and the last views of its surfaces are released (or the session kept for the
                # next video) in this thread, inside the gate
                views = got = None
                if healthy and decoder is not None and self._keep is not None:
                    self._keep(worker, decoder)
                decoder = None

    def _publish(self, worker: int, frame: int, views: Sequence[Any], got: Any, asked: int) -> None:
        """Queue a decoded slice; fewer frames than asked means the video ends after them."""
        with self._cond:
            if got is not None and not self._stopped:
                self._queues[worker].append(_Slice(frame, *got))
                self._held[worker] += got[0].shape[0]
            if len(views) < asked:  # the decoder ran out: the video ends here, as with one session
                self._end = min(self._end, frame + len(views))
            self._cond.notify_all()

    def _salvage(self, decoder: IndexedDecoder, indices: list[int], stream: Any) -> tuple[list, Any, int]:
        """After a failed request: the frames before the first index that fails on its own, copied out,
        and that index."""
        good: list[torch.Tensor] = []
        for index in indices:
            try:
                (view,) = decoder.get_batch_frames_by_index([index])
                frames, _ = self._copy([view], stream)
            except Exception:
                break
            good.append(frames[0])
        failed = indices[0] + len(good)
        if not good:
            return [], None, failed
        with self.streams.using(stream):
            stacked = torch.stack(good)
        # the consumer waits on an event recorded after the stack (a kernel on this stream on CUDA), not on
        # the last copy's: with that one the letterbox could read the stacked frames before they are written
        return good, (stacked, self.streams.finish(stream)), failed

    def _wait_for_room(self, worker: int, n: int) -> None:
        with self._cond:
            while not self._stopped and self._held[worker] and self._held[worker] + n > self.segment:
                self._cond.wait()
            if self._stopped:
                raise _Stop

    def _copy(self, views: Sequence[Any], stream: Any) -> tuple[torch.Tensor, Any]:
        """Our own BGR copy of the decoder's RGB views, finished before the decoder is asked again."""
        with self.streams.using(stream):
            out = bgr_copy(views)
        return out, self.streams.finish(stream)

    # ------------------------------------------------------------------ consumer
    def read(self, n: int) -> torch.Tensor | None:
        parts: list[torch.Tensor] = []
        want = int(n)
        while want > 0:
            part = self._take(want)
            if part is None:
                break
            parts.append(part)
            want -= part.shape[0]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        with self.streams.consuming():
            return torch.cat(parts)

    def _take(self, n: int) -> torch.Tensor | None:
        """Up to `n` frames from the head of the slice that holds the next frame."""
        with self._cond:
            if self._pos == 0:  # every session open (or failed) before a frame goes out, so that a session
                # that cannot open is an error while the caller can still fall back to one session
                while not self._stopped and len(self._opened | set(self._errors)) < self.sessions:
                    self._cond.wait(timeout=1.0)
                unopened = [w for w in self._errors if w not in self._opened]
                if unopened:
                    raise self._failure(min(unopened))
            if self._stopped or self._pos >= self._end:
                return None
            worker = (self._pos // self.segment) % self.sessions
            queue = self._queues[worker]
            while not queue:
                if self._stopped or self._pos >= self._end:
                    return None
                if worker in self._errors:
                    raise self._failure(worker)
                if not self._threads[worker].is_alive():
                    raise RuntimeError(f"NVDEC session {worker} of video {self.path} stopped before frame {self._pos}")
                self._cond.wait(timeout=1.0)  # a notify wakes it; the timeout only re-checks the thread
            head = queue[0]
            if head.first + head.taken != self._pos:
                raise RuntimeError(f"frames of video {self.path} out of order at {self._pos}: a bug, please report it")
            count = min(n, head.frames.shape[0] - head.taken, self._end - self._pos)
            if head.taken == 0:
                self.streams.hand_over(head.frames, head.ready)
            part = head.frames[head.taken : head.taken + count]
            head.taken += count
            self._pos += count
            if head.taken == head.frames.shape[0]:
                queue.popleft()
                self._held[worker] -= head.frames.shape[0]
                self._cond.notify_all()
            return part

    def _failure(self, worker: int) -> RuntimeError:
        frame, e = self._errors[worker]
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        return RuntimeError(
            f"NVDEC session {worker} failed on video {self.path} near frame {frame} ({reason}); "
            f"set ULTRALYTICS_NVDEC_SESSIONS=1 to decode it with one session"
        )

    @property
    def handed_out(self) -> int:
        """Frames handed out so far."""
        return self._pos

    @property
    def frames_ahead(self) -> int:
        """Frames decoded and queued, not yet handed out (at most `sessions` × `segment`)."""
        with self._cond:
            return sum(self._held)

    def close(self) -> None:
        """Stop the workers and wait for them (each finishes at most its current decoder request)."""
        with self._cond:
            self._stopped = True
            for queue in self._queues:
                queue.clear()
            self._held = [0] * self.sessions
            self._cond.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()
