"""Convolution building blocks of YOLOv8, YOLO11 and YOLO26.

The class names and this module path are fixed by upstream checkpoints, which pickle layers as
`ultralytics.nn.modules.conv.Conv`, `.DWConv` and `.Concat`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ultralytics.gpu.bias_act_triton import conv_bias_silu

__all__ = ["Concat", "Conv", "DWConv", "autopad", "fuse_conv_and_bn"]


def autopad(k: int | tuple[int, ...], p: int | tuple[int, ...] | None = None, d: int = 1) -> int | list[int]:
    """Padding that keeps the spatial size at stride 1 ('same' padding), for odd kernels and dilation d."""
    if d > 1:
        k = d * (k - 1) + 1 if isinstance(k, int) else [d * (x - 1) + 1 for x in k]
    if p is None:
        p = k // 2 if isinstance(k, int) else [x // 2 for x in k]
    return p


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> SiLU: the unit every YOLOv8 layer is made of.

    After `fuse_conv_and_bn` the `bn` attribute is gone and the convolution carries the folded bias,
    which is why `forward` checks for it instead of always calling it.
    """

    # one SiLU shared by every Conv, as upstream builds them (it holds no state): model summaries count
    # leaf modules once each, so a SiLU per Conv would add ~57 "layers" to a YOLOv8n built from its yaml
    default_act = nn.SiLU()

    def __init__(
        self,
        c1: int,
        c2: int,
        k: int = 1,
        s: int = 1,
        p: int | None = None,
        g: int = 1,
        d: int = 1,
        act: bool | nn.Module = True,
    ):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        # eps/momentum are YOLOv8's training values; checkpoints carry them too.
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        if act is True:
            self.act = self.default_act
        elif isinstance(act, nn.Module):
            self.act = act
        else:
            self.act = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if "bn" in self._modules:
            return self.act(self.bn(self.conv(x)))
        if isinstance(self.act, nn.SiLU):  # fused on CUDA: bias-free conv + one bias/SiLU kernel (same bits)
            y = conv_bias_silu(self.conv, x)
            if y is not None:
                return y
        return self.act(self.conv(x))

    def fuse(self) -> None:
        """Fold the BatchNorm into the convolution (inference only; a no-op when already fused)."""
        if "bn" in self._modules:
            self.conv = fuse_conv_and_bn(self.conv, self.bn)
            del self.bn


class DWConv(Conv):
    """Depth-wise Conv (groups = gcd(c1, c2)): the cheap spatial mixing YOLO11/YOLO26 heads use before a 1x1 Conv."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, d: int = 1, act: bool | nn.Module = True):
        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), d=d, act=act)


class Concat(nn.Module):
    """Concatenate a list of tensors along dimension `d` (channels for YOLOv8's skip connections)."""

    def __init__(self, dimension: int = 1):
        super().__init__()
        self.d = dimension

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(x, self.d)


@torch.no_grad()
def fuse_conv_and_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Return one Conv2d equal to `bn(conv(x))` in eval mode.

    BatchNorm in eval mode is a per-channel affine map, y = scale * (x - mean) + beta with
    scale = gamma / sqrt(var + eps), so it folds into the conv's weights and bias. Fewer kernels at
    inference, and the same graph every exporter sees.
    """
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((conv_bias - bn.running_mean) * scale + bn.bias)
    fused.requires_grad_(False)
    return fused
