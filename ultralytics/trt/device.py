"""Where TensorRT reads and writes tensors: CUDA memory, or host memory under the test hook.

Real TensorRT needs a CUDA GPU: even creating a `Runtime` without one returns an object that
segfaults when touched, so we refuse early with a clear message. The test suite runs the engine
path through a pure-Python stand-in that reads host pointers; setting the environment variable
`ULTRALYTICS_TRT_HOST_MEMORY=1` lets the builder and backend run on the CPU, pass CPU tensor
pointers and stream handle 0. Never set it with real TensorRT.
"""

from __future__ import annotations

import contextlib

import torch

from ultralytics.utils.settings import HOST_MEMORY_ENV, trt_host_memory  # noqa: F401 - HOST_MEMORY_ENV: its old home


def host_memory_enabled() -> bool:
    """True when the test hook asks for CPU buffers (stand-in only)."""
    return trt_host_memory()


def require_cuda(device: torch.device | None, purpose: str) -> None:
    """Raise a clear error when TensorRT would have to run without a CUDA device."""
    if host_memory_enabled():
        return
    if device is not None and device.type != "cuda":
        raise ValueError(
            f"{purpose} needs a CUDA device, but device={str(device)!r} was given: TensorRT runs on NVIDIA GPUs "
            "only. Pass device=0 (or 'cuda:0'), or use the .pt or .onnx model on the CPU."
        )
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"{purpose} needs a CUDA GPU, but torch.cuda.is_available() is False. TensorRT cannot run on the "
            "CPU; use the .pt or .onnx model instead."
        )


class HostStream:
    """What the host-memory test hook uses for a CUDA stream: a unique non-zero handle with nothing to order
    (the stand-in runs synchronously), so the backend's stream code is the same on both paths."""

    @property
    def cuda_stream(self) -> int:
        return id(self)

    def wait_stream(self, other) -> None:
        pass


def device_context(device: torch.device):
    """Make `device` the current CUDA device for the block (TensorRT works on the current device)."""
    if device.type == "cuda":
        return torch.cuda.device(device)
    return contextlib.nullcontext()


def owned_stream(device: torch.device, host_memory: bool | None = None):
    """A stream of our own on `device` for TensorRT work (never the legacy default stream, on which
    TensorRT adds synchronizations); a `HostStream` under the test hook (`host_memory`, read from the
    environment when None) or on the CPU."""
    if host_memory is None:
        host_memory = host_memory_enabled()
    if device.type == "cuda" and not host_memory:
        return torch.cuda.Stream(device)
    return HostStream()


def caller_stream(device: torch.device, host_memory: bool | None = None):
    """The caller's current stream on `device`, which our stream is ordered against; a backend passes the
    `host_memory` switch it read at load (called on every inference: no environment read here then)."""
    if host_memory is None:
        host_memory = host_memory_enabled()
    if device.type == "cuda" and not host_memory:
        return torch.cuda.current_stream(device)
    return HostStream()
