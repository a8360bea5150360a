"""NVDEC decoder sessions kept between videos and reused through PyNvVideoCodec's `reconfigure_decoder`.

A fresh SimpleDecoder makes its hardware decoder on the first request: on the H200 its first 32 720p
frames took 73-83 ms, and 4 sessions opened at once 280 ms before each had its first 32. The same
decoders reconfigured to the next video (same codec and size) gave them in 26 ms, and 4 at once in
67 ms, with frames equal to a fresh decoder's (benchmarks/NOTES.md, session 7). At ~2400 frames/s a
900-frame video decodes in ~375 ms, so a fresh start was a third of every call.

One idle decoder is kept per decode stream (a decoder is bound to the stream it was made with; the
device's decode streams are fixed, `gpu/streams.decode_streams`); a reader takes it, so two videos
decoding at once never share one. Only the multi-session reader's decoders are kept (videos of more than
64 frames with `ULTRALYTICS_NVDEC_SESSIONS` > 1 and the simple reader); a shorter video, or one session,
opens a fresh decoder as before. A decoder that raised is never kept, even near the end of a video where
the error is taken as the end of its frames. A reconfigure that raises drops the decoder and a fresh one
is opened (its error is the one reported).

Memory: a kept decoder holds its last request's output surfaces (32 frames: ~88 MB at 720p, ~0.8 GB at
4K), and PyNvVideoCodec keeps up to `decoder_cache_size` (4) hardware decoders inside each SimpleDecoder
when the videos' formats change. It is held until the process exits or `release_all()` is called;
`ULTRALYTICS_NVDEC_REUSE=0` keeps none. Callers hold the capture gate around `take`/`give_back` (they
allocate and free device memory).
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from ultralytics.utils.settings import nvdec_reuse

_LOCK = threading.Lock()
_IDLE: dict[Hashable, Any] = {}  # stream key -> a decoder no reader holds


def take(key: Hashable, path: str | Path, open_fresh: Callable[[], Any]) -> Any:
    """A decoder for `path` bound to the stream `key`: the idle one reconfigured to it, else `open_fresh()`."""
    if not nvdec_reuse():
        return open_fresh()
    with _LOCK:
        decoder = _IDLE.pop(key, None)
    if decoder is not None:
        try:
            decoder.reconfigure_decoder(str(path))
            return decoder
        except Exception:  # e.g. an unreadable file: a fresh decoder reports it as every video's open does
            decoder = None
    return open_fresh()


def give_back(key: Hashable, decoder: Any) -> None:
    """Keep `decoder` (done with its video, no views of its surfaces left) for the next video on `key`;
    one per key: a second is released (by the caller's reference going away, inside its gate)."""
    if decoder is None or not nvdec_reuse():
        return
    with _LOCK:
        _IDLE.setdefault(key, decoder)


def idle_count() -> int:
    """Decoders kept now (tests and diagnostics)."""
    with _LOCK:
        return len(_IDLE)


@atexit.register
def release_all() -> None:
    """Release every kept decoder and the device memory it holds: call it when no more videos will be
    decoded; it also runs at exit, before the interpreter tears torch's CUDA state down."""
    with _LOCK:
        kept = list(_IDLE.values())
        _IDLE.clear()
    del kept
