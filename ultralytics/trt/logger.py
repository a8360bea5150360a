"""One TensorRT logger per process, with a slice of its messages per operation for error reports.

TensorRT keeps a single logger per process: the first `Builder`/`Runtime` fixes it, a later one made
with another logger gets the warning "The logger passed into createInferRuntime differs from one
already provided ..." and its messages still go to the first (NVIDIA TensorRT developer guide,
"The Python API: Instantiating TensorRT objects"; C++ API `nvinfer1::getLogger`). So we make exactly
one logger per `tensorrt` module, and each build or load opens an `operation()` that collects only the
messages logged while it runs: its error report then shows its own log tail, never another's.
A call made on every inference (the enqueue, which logs only when it fails or is misused) does not open
one: it takes a mark (`logged`, one integer read) and, if it fails, reports what its own thread logged
`since` then (TensorRT reports an enqueue's errors in the calling thread; another thread's inference or
build logging in that window is not this call's).

A Python `ILogger` is called for every message TensorRT emits; the first thing `log` does is drop
messages above the current threshold (VERBOSE/INFO unless some operation asked for verbose), so the
flood of builder VERBOSE messages costs one integer comparison each.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from types import ModuleType

from ultralytics.utils import LOGGER

TAIL_LINES = 40
# TensorRT's severities, the same values in every version: INTERNAL_ERROR 0, ERROR 1, WARNING 2, INFO 3, VERBOSE 4.
ERROR, WARNING, INFO, VERBOSE = 1, 2, 3, 4
_LABELS = {0: "ERROR", 1: "ERROR", 2: "WARNING", 3: "INFO", 4: "VERBOSE"}

_LOGGERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOGGERS_LOCK = threading.Lock()


class Operation:
    """The messages logged while one operation (a build, a load, an inference call) was open."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)

    def tail(self) -> str:
        return "\n".join(self.lines) if self.lines else "(TensorRT logged no warnings or errors)"


def process_logger(trt: ModuleType):
    """The one logger of this `tensorrt` module (made on first use, shared by every builder and runtime)."""
    with _LOGGERS_LOCK:
        logger = _LOGGERS.get(trt)
        if logger is None:
            logger = _LOGGERS[trt] = _make_process_logger(trt)
        return logger


def _make_process_logger(trt: ModuleType):
    class ProcessLogger(trt.ILogger):
        """Forwards errors (and warnings/info when verbose) to our LOGGER and to the open operations."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self._lock = threading.Lock()
            self._open: list[Operation] = []
            self.recent: deque[str] = deque(maxlen=TAIL_LINES)  # warnings and errors of every operation
            self._threads: deque[int] = deque(maxlen=TAIL_LINES)  # the thread that logged each of `recent`
            self.logged = 0  # warnings and errors so far: the mark `since` counts from
            self.threshold = WARNING  # the most detailed severity kept; raised while a verbose operation runs

        def log(self, severity, msg: str) -> None:
            level = int(severity)
            if level > self.threshold:  # VERBOSE/INFO when nobody asked for them: drop at once
                return
            label = _LABELS.get(level, "INFO")
            with self._lock:
                if level <= WARNING:
                    self.recent.append(f"[TensorRT {label}] {msg}")
                    self._threads.append(threading.get_ident())
                    self.logged += 1
                operations = list(self._open)
            for operation in operations:
                if level <= WARNING or operation.verbose:
                    operation.lines.append(f"[TensorRT {label}] {msg}")
            if level <= ERROR:
                LOGGER.error(f"TensorRT: {msg}")
            elif any(op.verbose for op in operations):
                (LOGGER.warning if level == WARNING else LOGGER.info)(f"TensorRT: {msg}")

        def tail(self) -> str:
            """The latest warnings and errors of any operation (an operation's own `tail()` is preferred)."""
            return "\n".join(self.recent) if self.recent else "(TensorRT logged no warnings or errors)"

        def since(self, mark: int) -> str:
            """The warnings and errors this thread logged after `mark` (an earlier `logged`; at most the last
            TAIL_LINES): the report of a call that did not open an operation."""
            me = threading.get_ident()
            with self._lock:
                start = len(self.recent) - min(self.logged - mark, len(self.recent))
                lines = [line for line, t in list(zip(self.recent, self._threads))[start:] if t == me]
            return "\n".join(lines) if lines else "(TensorRT logged no warnings or errors)"

        @contextlib.contextmanager
        def operation(self, verbose: bool = False) -> Iterator[Operation]:
            """Collect the messages logged until the block ends; INFO and VERBOSE too when `verbose`."""
            operation = Operation(verbose)
            with self._lock:
                self._open.append(operation)
                self._update_threshold()
            try:
                yield operation
            finally:
                with self._lock:
                    self._open.remove(operation)
                    self._update_threshold()

        def _update_threshold(self) -> None:
            self.threshold = VERBOSE if any(op.verbose for op in self._open) else WARNING

    return ProcessLogger()


def make_logger(trt: ModuleType, verbose: bool = False):
    """The process logger (kept for callers written before it was shared); `verbose` is per operation now."""
    return process_logger(trt)
