"""Stage timing with CUDA events instead of device synchronisation.

A timer that calls `torch.cuda.synchronize()` around every stage (upstream's `Profile`) adds three or
more host waits per batch and serialises CPU and GPU. Events are recorded into the stream without
waiting; their elapsed time is read after the batch's one synchronisation, when they have completed.
"""

from __future__ import annotations

import torch


class CudaEventProfile:
    """Context manager with `dt` (seconds of the last stage) and `total` (seconds so far), like Profile."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.total = 0.0
        self._last = 0.0
        self._pending: tuple[torch.cuda.Event, torch.cuda.Event] | None = None

    def __enter__(self) -> CudaEventProfile:
        self._settle()
        start = torch.cuda.Event(enable_timing=True)
        start.record(torch.cuda.current_stream(self.device))
        self._pending = (start, torch.cuda.Event(enable_timing=True))
        return self

    def __exit__(self, *exc) -> None:
        self._pending[1].record(torch.cuda.current_stream(self.device))

    def _settle(self) -> None:
        """Fold the last stage into `total`; waits only if that stage is still running."""
        if self._pending is not None:
            start, end = self._pending
            end.synchronize()
            self._last = start.elapsed_time(end) / 1e3
            self.total += self._last
            self._pending = None

    @property
    def dt(self) -> float:
        self._settle()
        return self._last
