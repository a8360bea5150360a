"""Composite blocks of YOLOv8: C2f, its Bottleneck, SPPF and the DFL box decoder.

Module path and class names are fixed by upstream checkpoints (`ultralytics.nn.modules.block.*`).
Attributes that some releases do not pickle (SPPF's `n`, `add`) are class-level defaults, so
checkpoints from every 8.x release run the same forward.
"""

from __future__ import annotations

import torch
from torch import nn

from ultralytics.nn.modules.conv import Conv

__all__ = ["C2f", "DFL", "SPPF", "Bottleneck"]


class DFL(nn.Module):
    """Distribution Focal Loss decoder: turns `c1` logits per box side into one expected distance.

    The side distance is the softmax-weighted mean of 0..c1-1; a fixed 1x1 conv with weights
    0..c1-1 computes that mean, which exports to every runtime as a plain convolution.
    """

    def __init__(self, c1: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1))
        self.c1 = c1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4*c1, A) logits -> (B, 4, A) distances in grid units."""
        b, _, a = x.shape
        probs = x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)  # (B, c1, 4, A)
        return self.conv(probs).view(b, 4, a)


class Bottleneck(nn.Module):
    """Two convolutions with an optional residual connection (when shapes allow it)."""

    def __init__(
        self,
        c1: int,
        c2: int,
        shortcut: bool = True,
        g: int = 1,
        k: tuple[int, int] = (3, 3),
        e: float = 0.5,
    ):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, k[0], 1)
        self.cv2 = Conv(hidden, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block with two halves: one half passes through, the other feeds `n` Bottlenecks, and
    every intermediate output is concatenated before the final 1x1 conv."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, g, k=(3, 3), e=1.0) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # split() with fixed sizes exports to a single static ONNX Split.
        parts = list(self.cv1(x).split((self.c, self.c), 1))
        for block in self.m:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: `n` chained max-pools (k=5 each) concatenated, then a 1x1 conv."""

    # Class-level defaults: releases before 8.3 pickle neither attribute.
    n: int = 3
    add: bool = False

    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden * (self.n + 1), c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [self.cv1(x)]
        for _ in range(self.n):
            pooled.append(self.m(pooled[-1]))
        y = self.cv2(torch.cat(pooled, 1))
        return x + y if self.add else y
