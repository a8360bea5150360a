"""PyTorch backend: a `.pt` checkpoint, a model `.yaml`, or an in-memory DetectionModel.

The only backend with `pt=True` (upstream's minimal "rect" letterbox applies) and fully dynamic
shapes: any batch, any image size that is a multiple of the stride.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from ultralytics.gpu.channels_last import to_channels_last
from ultralytics.nn.backends.base import Backend
from ultralytics.nn.checkpoint import checkpoint_imgsz, load_checkpoint
from ultralytics.nn.tasks import DetectionModel


class PyTorchBackend(Backend):
    """Runs a DetectionModel in eval mode, BatchNorm fused, FP32 or (fp16=True) FP16."""

    pt = True
    dynamic = True
    imgsz = None
    batch = 0

    def __init__(
        self,
        weights: str | Path | nn.Module,
        device: torch.device | str = "cpu",
        fp16: bool = False,
        trust: bool = False,
        **kw,
    ) -> None:
        self.device = torch.device(device)
        self.fp16 = bool(fp16)
        self.ckpt: dict = {}
        if isinstance(weights, nn.Module):
            model = self._prepare_in_memory(weights)
        else:
            path = Path(weights)
            if path.suffix.lower() in (".yaml", ".yml"):
                model = DetectionModel(path).fuse().eval()
            else:
                model, self.ckpt = load_checkpoint(path, trust=trust)
        self.model = model.to(self.device)
        self.model = self.model.half() if self.fp16 else self.model.float()
        self.borrowed = self.model is weights  # the caller's own model, used as it is (see _prepare_in_memory)
        self.names = dict(model.names)
        self.stride = int(max(model.stride))
        self.task = "detect"
        self.metadata = {
            "task": self.task,
            "stride": self.stride,
            "names": self.names,
            "batch": self.batch,
            "imgsz": None,
            "train_imgsz": checkpoint_imgsz(self.ckpt),
        }

    def _prepare_in_memory(self, model: nn.Module) -> DetectionModel:
        """Use the caller's model as is when it is already inference-ready; otherwise work on a copy,
        so that fusing or changing its dtype/device never alters the model the caller still holds."""
        if not isinstance(model, DetectionModel):
            raise TypeError(f"PyTorchBackend needs a DetectionModel, got {type(model).__name__}")
        first = next(model.parameters())
        wanted_dtype = torch.float16 if self.fp16 else torch.float32
        ready = model.is_fused() and not model.training and first.device == self.device and first.dtype == wanted_dtype
        if ready:
            return model
        return copy.deepcopy(model).fuse().eval()

    def use_channels_last(self) -> None:
        """Hold the network's weights channels-last from now on (the CUDA pipeline asks: cuDNN's NHWC
        kernels without layout transposes, the same values up to an FP16 step; gpu/channels_last.py). A model borrowed from
        the caller is copied first, so the caller's `YOLO.model` is left as it was: what it saves, exports
        and computes on the CPU (whose channels-last kernels may round differently) does not change."""
        if self.borrowed:
            self.model = copy.deepcopy(self.model)
            self.borrowed = False
        to_channels_last(self.model)

    @property
    def end2end(self) -> bool:
        """True while the model's one-to-one head is selected: forward then returns (B, k, 6) detections."""
        return self.model.end2end

    def select_head(self, end2end: bool, max_det: int = 300, agnostic: bool = False) -> None:
        """YOLO26: one-to-one top-k (no NMS) when `end2end`, else one-to-many; no-op for single-head models."""
        self.model.select_head(end2end, max_det=max_det, agnostic=agnostic)

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(im)

    def graph_safe(self, shape: tuple[int, ...]) -> bool:
        """Pure tensor work on the current stream: capturable at any shape."""
        return True
