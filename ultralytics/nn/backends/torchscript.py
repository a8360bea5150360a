"""TorchScript backend for `.torchscript` files (ours and upstream's `format=torchscript` exports).

Names, stride, input size and batch come from the `config.txt` metadata upstream stores in the
archive. A traced model is static: AutoBackend letterboxes to its size and splits/pads batches.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from ultralytics.export.metadata import parse_metadata
from ultralytics.nn.backends.base import Backend, default_names


class TorchScriptBackend(Backend):
    """Runs a traced YOLO detection model with torch.jit."""

    def __init__(self, weights: str | Path, device: torch.device | str = "cpu", fp16: bool = False, **kw) -> None:
        self.path = Path(weights)
        self.device = torch.device(device)
        extra = {"config.txt": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
                self.model = torch.jit.load(str(self.path), _extra_files=extra, map_location=self.device)
        except Exception as e:  # torch raises RuntimeError/ValueError for non-TorchScript files
            raise ValueError(
                f"'{self.path}' is not a loadable TorchScript file ({type(e).__name__}: {str(e).splitlines()[0]}); "
                "export one with format=torchscript"
            ) from None
        self.model.eval()
        raw = extra["config.txt"]
        self.metadata = parse_metadata(json.loads(raw)) if raw else {}
        meta = self.metadata
        self.fp16 = bool(fp16) and self.device.type != "cpu"
        self.model = self.model.half() if self.fp16 else self.model.float()
        self.stride = int(meta.get("stride", 32))
        self.batch = int(meta.get("batch", 1))
        self.imgsz = tuple(meta["imgsz"]) if meta.get("imgsz") else None
        self.dynamic = self.imgsz is None  # a file without metadata: no recorded size to enforce
        self.task = meta.get("task", "detect")
        self.names = meta.get("names") or default_names(self._probe_classes())
        if self.dynamic:
            self.batch = 0

    def _probe_classes(self) -> int:
        out = self.forward(torch.zeros((1, 3, 640, 640), device=self.device))
        return int(out.shape[1]) - 4

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.model(im.half() if self.fp16 else im.float())
        return out[0] if isinstance(out, (list, tuple)) else out
