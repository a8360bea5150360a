"""Write a `.pt` that upstream Ultralytics loads: its checkpoint layout, and a model its forward runs.

Models here are fused at load (the BatchNorm folded into each convolution and removed). Upstream's
`Conv.forward` always calls `self.bn`, so a fused model pickled as is fails there. Each fused
convolution therefore gets an identity BatchNorm back (weight 1, bias 0, mean 0, var 1 - eps, so
it computes x exactly); both packages fuse it away again at load.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

import ultralytics
from ultralytics.nn.modules import Conv
from ultralytics.utils.atomic_file import atomic_open

__all__ = ["upstream_checkpoint", "write_checkpoint"]

LICENSE = "AGPL-3.0 License (https://ultralytics.com/license)"
DOCS = "https://docs.ultralytics.com"


def _identity_batchnorm(channels: int, eps: float = 1e-3, momentum: float = 0.03) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    with torch.no_grad():
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - eps)
    return bn.eval()


def savable_model(model: nn.Module) -> nn.Module:
    """A copy of `model` in FP16 (upstream's checkpoint precision) with every fused Conv given a BatchNorm."""
    out = copy.deepcopy(model).float().cpu().eval()
    for module in out.modules():
        if isinstance(module, Conv) and "bn" not in module._modules:
            module.bn = _identity_batchnorm(module.conv.out_channels)
    for p in out.parameters():
        p.requires_grad_(False)
    return out.half()


def upstream_checkpoint(model: nn.Module, ckpt: dict | None = None) -> dict:
    """Upstream's checkpoint dict: header keys, the original checkpoint's other entries, then the model."""
    header = {
        "date": datetime.now(timezone.utc).isoformat(),
        "version": ultralytics.__version__,
        "license": LICENSE,
        "docs": DOCS,
    }
    out = dict(header)
    for key, value in (ckpt or {}).items():  # the original entries, in their order
        if key not in header:
            out[key] = None if key in ("model", "ema") else value
    out["model"] = savable_model(model)
    if "ema" in out:
        out["ema"] = None  # "model" holds the weights to use (upstream loads ema first when present)
    return out


def write_checkpoint(ckpt: dict, filename: str | Path) -> Path:
    """torch.save through the package's one atomic writer: an existing file is never half-written, and the
    new one gets the permissions a plain open() would give under the umask."""
    with atomic_open(filename, "wb") as f:
        torch.save(ckpt, f)
    return Path(filename)
