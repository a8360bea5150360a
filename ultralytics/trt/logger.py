"""A TensorRT logger that forwards to ours and keeps the last messages for error reports.

A failed build or deserialization returns `None` with the reason only in the log, so every error
we raise for those carries the tail this logger kept.
"""

from __future__ import annotations

from collections import deque
from types import ModuleType

from ultralytics.utils import LOGGER

TAIL_LINES = 40


def make_logger(trt: ModuleType, verbose: bool = False):
    """Return an `ILogger` subclass instance with `.tail()` (recent warnings and errors, newest last)."""

    class TailLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.lines: deque[str] = deque(maxlen=TAIL_LINES)

        def log(self, severity, msg: str) -> None:
            # Severity order in every version: INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE.
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                self.lines.append(f"[TensorRT ERROR] {msg}")
                LOGGER.error(f"TensorRT: {msg}")
            elif severity == trt.ILogger.WARNING:
                self.lines.append(f"[TensorRT WARNING] {msg}")
                if verbose:
                    LOGGER.warning(f"TensorRT: {msg}")
            elif verbose and severity == trt.ILogger.INFO:
                self.lines.append(f"[TensorRT INFO] {msg}")
                LOGGER.info(f"TensorRT: {msg}")

        def tail(self) -> str:
            return "\n".join(self.lines) if self.lines else "(TensorRT logged no warnings or errors)"

    return TailLogger()
