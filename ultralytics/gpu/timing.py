"""Stage timing with CUDA events instead of device synchronisation.

A timer that calls `torch.cuda.synchronize()` around every stage (upstream's `Profile`) adds three or
more host waits per batch and serialises CPU and GPU. Events are recorded into the stream without
waiting; their elapsed time is read once they have completed. When batches overlap (the pipelined
predictor), each batch's events are taken right after its stage and published once that batch's
results are on the host, so reading a time never waits for a later batch.
"""

from __future__ import annotations

import torch

EventPair = tuple[torch.cuda.Event, torch.cuda.Event]


class CudaEventProfile:
    """Context manager with `dt` (seconds of the last stage) and `total` (seconds so far), like Profile."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.total = 0.0
        self._last = 0.0
        self._pending: EventPair | None = None

    def __enter__(self) -> CudaEventProfile:
        start = torch.cuda.Event(enable_timing=True)
        start.record(torch.cuda.current_stream(self.device))
        self._pending = (start, torch.cuda.Event(enable_timing=True))
        return self

    def __exit__(self, *exc) -> None:
        self._pending[1].record(torch.cuda.current_stream(self.device))

    def take(self) -> EventPair | None:
        """Detach the last stage's events, to publish them later (no waiting)."""
        pair, self._pending = self._pending, None
        return pair

    def publish(self, pair: EventPair | None) -> None:
        """Make `pair` the current `dt` and add it to `total`; waits only if it is still running."""
        if pair is None:
            return
        if not pair:  # the stage ran inside another one (gpu_pipeline.NO_TIME): it took no time of its own
            self._last = 0.0
            return
        start, end = pair
        end.synchronize()
        self._last = start.elapsed_time(end) / 1e3
        self.total += self._last

    @property
    def dt(self) -> float:
        self.publish(self.take())
        return self._last
