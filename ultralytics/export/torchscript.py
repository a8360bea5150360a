"""TorchScript export (`format=torchscript`, upstream's default format): a traced model plus metadata.

The model is traced at the export shape, so the file is static (batch and imgsz fixed), as
upstream's is. Upstream's metadata goes into the archive as the extra file `config.txt` (JSON, class
ids as string keys), where upstream and `nn/backends/torchscript.py` read it back.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ultralytics.export.metadata import build_metadata
from ultralytics.utils.atomic_file import atomic_open

METADATA_FILE = "config.txt"


def export_torchscript(
    model: nn.Module,
    file: str | Path,
    *,
    imgsz: tuple[int, int],
    batch: int = 1,
    half: bool = False,
    device: torch.device | None = None,
    args: dict[str, Any] | None = None,
) -> Path:
    """Trace `model` on a (batch, 3, *imgsz) input and write `file` atomically; returns its path.

    FP16 only on a GPU (torch's CPU kernels lack half convolutions), as upstream; on the CPU half is
    ignored with a warning rather than writing a model that cannot run.
    """
    from ultralytics.utils import LOGGER

    file = Path(file)
    device = device or torch.device("cpu")
    if half and device.type == "cpu":
        LOGGER.warning("WARNING half=True needs a GPU for TorchScript (pass device=0); exporting FP32")
        half = False
    model = model.to(device).eval()
    im = torch.zeros((int(batch), 3, *imgsz), device=device)
    if half:
        model, im = model.half(), im.half()
    meta = build_metadata(model, imgsz=imgsz, batch=batch, args=args)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's trace deprecation and tracer warnings say nothing about this model
        traced = torch.jit.trace(model, im, strict=False)
    with atomic_open(file, "wb") as f:  # the package's one writer: temp file, fsync, umask mode, rename
        torch.jit.save(traced, f.name, _extra_files={METADATA_FILE: json.dumps(meta)})
    return file
