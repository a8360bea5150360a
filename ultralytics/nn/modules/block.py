"""Composite blocks of YOLOv8 (C2f, Bottleneck, SPPF, DFL), YOLO11 and YOLO26 (C3k2, C3k, C2PSA, attention).

Module path and class names are fixed by upstream checkpoints (`ultralytics.nn.modules.block.*`).
Attributes that some releases do not pickle (SPPF's `n`, `add`) are class-level defaults, so
checkpoints from every 8.x release run the same forward.
"""

from __future__ import annotations

import torch
from torch import nn

from ultralytics.nn.modules.conv import Conv

__all__ = ["C2PSA", "C2f", "C3", "C3k", "C3k2", "DFL", "SPPF", "Attention", "Bottleneck", "PSABlock"]


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
    """Spatial pyramid pooling, fast: `n` chained max-pools (kernel k) concatenated, then a 1x1 conv.

    YOLO26 adds a residual (`shortcut`, when c1 == c2) and leaves the first 1x1 conv unactivated;
    YOLOv8/YOLO11 rows (`[c2, k]` only) keep it activated, so `cv1_act` defaults to True.
    """

    # Class-level defaults: releases before 8.3 pickle neither attribute.
    n: int = 3
    add: bool = False

    def __init__(self, c1: int, c2: int, k: int = 5, n: int = 3, shortcut: bool = False, cv1_act: bool = True):
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1, 1, act=cv1_act)
        self.cv2 = Conv(hidden * (n + 1), c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
        self.n = n
        self.add = bool(shortcut) and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [self.cv1(x)]
        for _ in range(self.n):
            pooled.append(self.m(pooled[-1]))
        y = self.cv2(torch.cat(pooled, 1))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block with three convolutions: one branch through `n` Bottlenecks, one 1x1 shortcut branch,
    concatenated and mixed by a final 1x1 conv (the base of YOLO11's C3k)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(c1, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, g, k=(1, 3), e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k(C3):
    """C3 whose Bottlenecks use k x k kernels in both convolutions (YOLO11 m/l/x, YOLO26 neck)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5, k: int = 3):
        super().__init__(c1, c2, n, shortcut, g, e)
        hidden = int(c2 * e)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, g, k=(k, k), e=1.0) for _ in range(n)))


class C3k2(C2f):
    """C2f with a choice of inner block: Bottleneck (default), C3k (`c3k=True`), or Bottleneck followed
    by a PSABlock (`attn=True`, YOLO26's last neck stage). Forward is C2f's."""

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        c3k: bool = False,
        e: float = 0.5,
        attn: bool = False,
        g: int = 1,
        shortcut: bool = True,
    ):
        super().__init__(c1, c2, n, shortcut, g, e)
        c = self.c

        def inner() -> nn.Module:
            if attn:
                return nn.Sequential(
                    Bottleneck(c, c, shortcut, g), PSABlock(c, attn_ratio=0.5, num_heads=max(c // 64, 1))
                )
            if c3k:
                return C3k(c, c, 2, shortcut, g)
            return Bottleneck(c, c, shortcut, g)

        self.m = nn.ModuleList(inner() for _ in range(n))


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a depth-wise conv positional term.

    One 1x1 conv makes q, k (key_dim channels per head) and v (head_dim per head); attention is
    softmax(q^T k * scale) over all H*W positions, written with matmul + softmax so every runtime
    (ONNX, TensorRT's network API) sees plain ops.
    """

    def __init__(self, dim: int, num_heads: int = 8, attn_ratio: float = 0.5):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        qk_channels = self.key_dim * num_heads
        self.qkv = Conv(dim, dim + 2 * qk_channels, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, h * w)
        q, k, v = qkv.split((self.key_dim, self.key_dim, self.head_dim), dim=2)
        weights = ((q * self.scale).transpose(-2, -1) @ k).softmax(dim=-1)  # (B, heads, N, N)
        attended = (v @ weights.transpose(-2, -1)).view(b, c, h, w)
        return self.proj(attended + self.pe(v.reshape(b, c, h, w)))


class PSABlock(nn.Module):
    """Attention then a two-layer 1x1 feed-forward, each with a residual when `shortcut`."""

    def __init__(self, c: int, attn_ratio: float = 0.5, num_heads: int = 4, shortcut: bool = True):
        super().__init__()
        self.attn = Attention(c, attn_ratio=attn_ratio, num_heads=num_heads)
        self.ffn = nn.Sequential(Conv(c, c * 2, 1), Conv(c * 2, c, 1, act=False))
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.ffn(x) if self.add else self.ffn(x)


class C2PSA(nn.Module):
    """Split channels in two halves; one passes through, the other through `n` PSABlocks; a 1x1 conv
    mixes them back (YOLO11/YOLO26's attention stage after SPPF)."""

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5):
        super().__init__()
        if c1 != c2:
            raise ValueError(f"C2PSA keeps the channel count: got c1={c1}, c2={c2}")
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, attn_ratio=0.5, num_heads=max(self.c // 64, 1)) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))
