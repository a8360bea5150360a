"""Process-wide state TensorRT keeps once per library: the logger, and the current CUDA device.

Logger: TensorRT has one logger per process. The first Builder/Runtime/Refitter fixes it; a later one
given a different logger gets a warning and keeps using the first (NVIDIA TensorRT C++ API reference,
`nvinfer1::createInferRuntime` / `getLogger`: "The logger passed into createInferBuilder differs from one
already provided for an existing builder, runtime, or refitter. Uses of the global logger, returned by
nvinfer1::getLogger(), will return the existing value."). One stand-in module models one process.

Device: an engine belongs to the CUDA device that was current when it was deserialized; enqueueing it
while another device is current fails (CUDA "invalid resource handle", ultralytics issue 21300 on
cuda:1). The current device is torch's; tests without a GPU fake two devices by patching
`torch.cuda.current_device` (and `torch.cuda.device`, the context manager the package uses).
"""

from __future__ import annotations

import sys

from .common import log

LOGGER_DIFFERS = (
    "The logger passed into {what} differs from one already provided for an existing builder, runtime, or "
    "refitter. Uses of the global logger, returned by nvinfer1::getLogger(), will return the existing value."
)


def adopt_logger(ctx, logger, what: str):
    """The logger an object created with `logger` really uses: the process's first one."""
    first = getattr(ctx, "process_logger", None)
    if first is None:
        ctx.process_logger = logger
        return logger
    if logger is not first:
        log(first, "WARNING", LOGGER_DIFFERS.format(what=what))
    return first


def current_device() -> int:
    """torch's current CUDA device; 0 on a machine without CUDA (unless a test fakes devices)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    try:
        return int(torch.cuda.current_device())
    except Exception:  # noqa: BLE001 - CPU-only torch raises here: one (virtual) device 0
        return 0
