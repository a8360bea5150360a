"""`model.info()`: layer, parameter and gradient counts and GFLOPs, in upstream's summary line."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from ultralytics.utils import LOGGER


def model_flops(model: nn.Module, imgsz: int = 640) -> float:
    """GFLOPs of one imgsz x imgsz image: counted at one stride-sized input and scaled, as upstream does.

    torch's FlopCounterMode counts a multiply-add as 2 FLOPs, the convention upstream's number uses.
    """
    from torch.utils.flop_counter import FlopCounterMode

    try:
        stride = max(int(max(getattr(model, "stride", torch.tensor([32])))), 32)
        first = next(model.parameters())
        im = torch.zeros((1, 3, stride, stride), dtype=first.dtype, device=first.device)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            copy.deepcopy(model).eval()(im)
        return counter.get_total_flops() / 1e9 * (imgsz / stride) ** 2
    except Exception:  # FLOPs are informative only; a model torch cannot count still reports the rest
        return 0.0


def model_info(
    model: nn.Module, detailed: bool = False, verbose: bool = True, imgsz: int = 640
) -> tuple[int, int, int, float] | None:
    """Log '<name> summary (fused): L layers, P parameters, G gradients, F GFLOPs'; return (L, P, G, F)."""
    if not verbose:  # nothing to log: skip the counting and the FLOP pass (a forward of a model copy)
        return None
    n_layers = sum(1 for m in model.modules() if not any(True for _ in m.children()))  # leaf modules, as upstream
    n_params = sum(p.numel() for p in model.parameters())
    n_grads = sum(p.numel() for p in model.parameters() if p.requires_grad)
    flops = model_flops(model, imgsz)
    if detailed:
        for i, (name, p) in enumerate(model.named_parameters()):
            LOGGER.info(f"{i:5g} {name:>40s} {str(p.requires_grad):>9s} {p.numel():12g} {str(list(p.shape)):>20s}")
    spec = getattr(model, "yaml", None)
    yaml_file = spec.get("yaml_file") if isinstance(spec, dict) else None
    name = Path(str(yaml_file)).stem.replace("yolo", "YOLO") if yaml_file else "Model"
    fused = " (fused)" if getattr(model, "is_fused", lambda: False)() else ""
    LOGGER.info(
        f"{name} summary{fused}: {n_layers:,} layers, {n_params:,} parameters, {n_grads:,} gradients, {flops:,.1f} GFLOPs"
    )
    return n_layers, n_params, n_grads, flops
