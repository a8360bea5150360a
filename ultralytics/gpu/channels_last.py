"""The PyTorch network in channels-last (NHWC) memory format on CUDA: less time, FP16 only, opt-in.

Why: cuDNN runs YOLO's convolutions with NHWC kernels; fed NCHW tensors, it transposes around them.
With the weights and the network input channels-last those transposes go: on the H200 (FP16, the
network alone replayed in a CUDA graph) yolov8s takes 0.874 ms instead of 0.967 at batch 1 and 4.67
instead of 5.66 at batch 32 (docs/performance.md, session 7).

Opt-in (`ULTRALYTICS_GPU_CHANNELS_LAST=1`): through the public API it saved 0.01-0.11 ms at batch 1, and
with the trained shapes model at batch 8 cuDNN's NHWC kernels moved FP16 boxes by one FP16 step (a
confidence by two with the fused graph, session 8), where the default keeps results as they were. The GPU pipeline asks `network_memory_format` once, when it sets
up a model's state: on a CUDA device, FP16, for a backend that can switch (PyTorch; ONNX and TensorRT
models take the layout they were built with), with the switch on, the backend converts its network
(`use_channels_last`, which copies a model it borrowed from the caller first) and every tensor the
pipeline feeds the network is then in that layout (`network_input`; the letterbox writes it directly).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ultralytics.utils.settings import settings


def wants_channels_last(model: Any) -> bool:
    """Whether the CUDA pipeline on `model` (an AutoBackend) runs its network channels-last: a CUDA
    device, FP16, a backend able to switch, and the switch on.

    FP16 only: there outputs were identical at batch 1 on the H200 (at batch 8 a box moved by one FP16
    step). In FP32 cuDNN's TF32 convolutions pick other algorithms for NHWC and the outputs differed (benchmarks/channels_last.py,
    `equal False`), for at most 0.08 ms of a batch of 8 and a loss at batch 1: not worth moving boxes."""
    backend = getattr(model, "backend", None)
    return (
        torch.device(model.device).type == "cuda"
        and getattr(model, "dtype", None) == torch.float16
        and callable(getattr(backend, "use_channels_last", None))
        and settings().gpu_channels_last
    )


def network_memory_format(model: Any) -> torch.memory_format:
    """Convert the network where `wants_channels_last` says so; the layout its input must then have."""
    if not wants_channels_last(model):
        return torch.contiguous_format
    model.backend.use_channels_last()
    return torch.channels_last


def to_channels_last(module: nn.Module) -> nn.Module:
    """The module's 4-D parameters and buffers (convolution weights) channels-last, in place; every
    value stays as it was, so exports do not change (cuDNN's results on CUDA may, by an FP16 step)."""
    return module.to(memory_format=torch.channels_last)


def model_layout(model: Any) -> torch.memory_format:
    """The layout `model`'s (an AutoBackend's) network takes: channels-last once its CUDA pipeline converted
    it, else torch's. Every path that feeds that backend asks, `gpu_pipeline=False` too (the backend is
    shared between the two paths)."""
    return getattr(getattr(model, "gpu_state", None), "memory_format", torch.contiguous_format)


def network_input(im: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """`im` in the network's layout: itself when it is already (or when the network takes torch's
    default layout: a caller's tensor is not copied then), else one copy into channels-last."""
    if memory_format == torch.contiguous_format or im.ndim != 4:
        return im
    return im.contiguous(memory_format=memory_format)
