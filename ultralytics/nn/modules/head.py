"""The YOLOv8 detection head.

`Detect` turns three feature maps (strides 8, 16, 32) into one tensor (B, 4 + nc, anchors): box
centre/size in input pixels followed by per-class sigmoid scores. This is the raw output every
backend (PyTorch, ONNX Runtime, TensorRT) must reproduce, and what NMS consumes.

Anchors are recomputed from the feature-map shapes on every call instead of being cached on the
module: a cache keyed on the input shape is Python-side state that `torch.onnx.export` would bake
in as constants for one shape and CUDA graph capture cannot see. The arithmetic is a few hundred
microseconds of small kernels, and static ONNX exports fold it into constants anyway.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ultralytics.nn.modules.block import DFL
from ultralytics.nn.modules.conv import Conv

__all__ = ["Detect", "make_anchors"]


def make_anchors(
    feats: list[torch.Tensor], strides: torch.Tensor, offset: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid-cell centres and their strides for every feature map.

    Returns points (2, A) as (x, y) in grid units and strides (1, A), A = sum of h*w over levels,
    in row-major order matching `feat.flatten(2)`.
    """
    points, stride_rows = [], []
    for i, feat in enumerate(feats):
        stride = strides[i]
        h, w = feat.shape[2], feat.shape[3]
        xs = torch.arange(w, device=feat.device, dtype=feat.dtype) + offset
        ys = torch.arange(h, device=feat.device, dtype=feat.dtype) + offset
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((grid_x, grid_y), 0).flatten(1))
        stride_rows.append((torch.ones_like(grid_x) * stride.to(feat.dtype)).flatten().unsqueeze(0))
    return torch.cat(points, 1), torch.cat(stride_rows, 1)


class Detect(nn.Module):
    """Anchor-free decoupled head: per level, `cv2` predicts 4 box-side distributions and `cv3` the
    class logits; `dfl` turns each distribution into a distance from the cell centre."""

    # Class-level defaults for attributes older checkpoints do not carry, and for flags that
    # upstream code sets on the class (export tooling reads them).
    reg_max: int = 16
    dynamic: bool = False
    export: bool = False
    format: str | None = None
    max_det: int = 300
    legacy: bool = False

    def __init__(self, nc: int = 80, ch: tuple[int, ...] | list[int] = ()):
        super().__init__()
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = 16
        self.no = nc + self.reg_max * 4
        self.stride = torch.zeros(self.nl)  # filled in by DetectionModel once the strides are known
        box_ch = max(16, ch[0] // 4, self.reg_max * 4)
        cls_ch = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(c, box_ch, 3), Conv(box_ch, box_ch, 3), nn.Conv2d(box_ch, 4 * self.reg_max, 1))
            for c in ch
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(c, cls_ch, 3), Conv(cls_ch, cls_ch, 3), nn.Conv2d(cls_ch, nc, 1)) for c in ch
        )
        self.dfl = DFL(self.reg_max) if self.reg_max > 1 else nn.Identity()

    @property
    def end2end(self) -> bool:
        """YOLOv8 has no NMS-free one-to-one branch; kept for code that asks."""
        return False

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """Eval: the decoded (B, 4 + nc, A) tensor. Train: the raw per-level maps (B, no, h, w)."""
        levels = [torch.cat((self.cv2[i](feats[i]), self.cv3[i](feats[i])), 1) for i in range(self.nl)]
        if self.training:
            return levels
        return self.decode(levels)

    def decode(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Raw per-level maps -> (B, 4 + nc, A): xywh in input pixels, then sigmoid class scores."""
        flat = torch.cat([level.flatten(2) for level in levels], 2)
        box_logits, cls_logits = flat.split((4 * self.reg_max, self.nc), 1)
        points, strides = make_anchors(levels, self.stride)
        distances = self.dfl(box_logits)  # (B, 4, A): left, top, right, bottom in grid units
        left_top, right_bottom = distances.chunk(2, 1)
        top_left = points - left_top
        bottom_right = points + right_bottom
        xywh = torch.cat(((top_left + bottom_right) / 2, bottom_right - top_left), 1) * strides
        return torch.cat((xywh, cls_logits.sigmoid()), 1)

    def bias_init(self) -> None:
        """Start a fresh head from sensible priors (box bias 1; class bias for ~5 objects per 640
        image), so an untrained model's scores are small rather than 0.5. Needs `stride` set."""
        for box_head, cls_head, stride in zip(self.cv2, self.cv3, self.stride):
            box_head[-1].bias.data[:] = 1.0
            cls_head[-1].bias.data[: self.nc] = math.log(5 / self.nc / (640 / float(stride)) ** 2)

    def _apply(self, fn, *args, **kwargs):
        # `stride` is a plain tensor attribute (as in upstream pickles), not a buffer, so .to(),
        # .half() and .cuda() would otherwise leave it behind on the CPU / in the old dtype.
        module = super()._apply(fn, *args, **kwargs)
        if isinstance(self.stride, torch.Tensor):
            self.stride = fn(self.stride)
        return module
