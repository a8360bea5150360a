"""AutoBackend: one front for every model format.

It picks the backend module by file suffix, casts input to the dtype the model wants, and makes
static-batch models accept any batch size by splitting larger batches and zero-padding smaller ones.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from ultralytics.nn.backends.base import Backend
from ultralytics.utils import LOGGER
from ultralytics.utils.formats import loadable_suffixes

# suffix → (module, class), from the one format table (utils/formats.py). Imported lazily so a missing
# optional dependency only matters when used.
BACKENDS: dict[str, tuple[str, str]] = loadable_suffixes()


def backend_class(weights: str | Path | nn.Module) -> type[Backend]:
    if isinstance(weights, nn.Module):
        module, name = BACKENDS[".pt"]
    else:
        suffix = Path(weights).suffix.lower()
        if suffix not in BACKENDS:
            raise ValueError(
                f"model '{weights}' has an unsupported suffix '{suffix}'. Supported: {', '.join(sorted(BACKENDS))}"
            )
        module, name = BACKENDS[suffix]
    return getattr(importlib.import_module(module), name)


class AutoBackend(nn.Module):
    """Wraps a format-specific backend behind one interface (see docs/architecture.md)."""

    def __init__(self, weights: str | Path | nn.Module, device: torch.device | None = None, fp16: bool = False, **kw):
        super().__init__()
        if (
            not isinstance(weights, nn.Module)
            and not Path(weights).is_file()
            and Path(weights).suffix not in (".yaml", ".yml")
        ):
            raise FileNotFoundError(f"model file '{weights}' does not exist")
        device = device if device is not None else torch.device("cpu")
        cls = backend_class(weights)
        self.backend: Backend = cls(weights, device=device, fp16=fp16, **kw)
        b = self.backend
        self.names, self.stride, self.task, self.metadata = b.names, int(b.stride), b.task, b.metadata
        self.imgsz, self.batch, self.dynamic = b.imgsz, b.batch, b.dynamic
        self.fp16, self.pt, self.device = b.fp16, b.pt, b.device
        self.static_batch = b.batch if (b.batch and not b.dynamic) else 0
        self.warmed_up = False  # set by the predictor after its one warm-up pass

    def graph_safe(self, shape: tuple[int, ...]) -> bool:
        """Whether a CUDA graph may replay the backend's forward at this input shape (the backend says)."""
        return bool(self.backend.graph_safe(tuple(shape)))

    @property
    def end2end(self) -> bool:
        """`forward` returns final detections (B, N, 6) x1,y1,x2,y2,score,cls instead of raw (B, 4 + nc, A)."""
        return bool(getattr(self.backend, "end2end", False))

    def select_head(self, end2end: bool, max_det: int = 300, agnostic: bool = False) -> None:
        """Ask the backend for NMS-free output (`nms=False`) where the model can switch; see Backend."""
        select = getattr(self.backend, "select_head", None)
        if select is not None:
            select(end2end, max_det=max_det, agnostic=agnostic)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16 if self.fp16 else torch.float32

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        """Raw head output (B, 4 + nc, anchors) for a BCHW RGB 0..1 batch of any size."""
        if im.dtype != self.dtype:
            im = im.to(self.dtype)
        if im.device != self.device:
            im = im.to(self.device)
        n = im.shape[0]
        if not self.static_batch or n == self.static_batch:
            return self.backend.forward(im)
        outputs = []
        for start in range(0, n, self.static_batch):
            chunk = im[start : start + self.static_batch]
            real = chunk.shape[0]
            if real < self.static_batch:  # zero-pad to the engine's batch, trim afterwards
                pad = chunk.new_zeros((self.static_batch - real, *chunk.shape[1:]))
                chunk = torch.cat((chunk, pad))
            outputs.append(self.backend.forward(chunk)[:real].clone())
        return torch.cat(outputs)

    def warmup(
        self, imgsz: tuple[int, int, int, int] = (1, 3, 640, 640), memory_format: torch.memory_format | None = None
    ) -> None:
        """One pass on a blank batch so lazy initialisation stays out of timed runs (GPU only); in the
        memory format the network will be fed (the CUDA pipeline's, gpu/channels_last.py)."""
        if self.device.type == "cpu" and self.pt:
            return
        shape = list(imgsz)
        if self.static_batch:
            shape[0] = self.static_batch
        if self.imgsz and not self.dynamic:
            shape[2:] = self.imgsz
        blank = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.forward(blank.contiguous(memory_format=memory_format) if memory_format is not None else blank)
        LOGGER.debug(f"warmup done with input {shape}")


def backend_for(model: object, device: torch.device, fp16: bool) -> AutoBackend:
    """An AutoBackend for a YOLO object, a path or a torch module (val, benchmark and compare share this).

    FP16 PyTorch on the CPU falls back to FP32 with a warning: torch's CPU kernels lack half convolutions.
    """
    weights = model
    if hasattr(model, "model_path"):  # a YOLO
        weights = model.model if model.model is not None else model.model_path
    is_torch = isinstance(weights, nn.Module) or Path(str(weights)).suffix.lower() in (".pt", ".pth", ".yaml", ".yml")
    if fp16 and device.type == "cpu" and is_torch:
        LOGGER.warning("WARNING half=True is not supported for PyTorch models on the CPU; using FP32")
        fp16 = False
    return AutoBackend(weights, device=device, fp16=fp16)
