"""The YOLO detection head (YOLOv8, YOLO11, YOLO26).

`Detect` turns three feature maps (strides 8, 16, 32) into one tensor (B, 4 + nc, anchors): box
centre/size in input pixels followed by per-class sigmoid scores. This is the raw output every
backend (PyTorch, ONNX Runtime, TensorRT) must reproduce, and what NMS consumes.

Anchors are computed from the feature-map shapes. In inference they are kept per feature size
(`Detect._anchors`), outside the module, so that a CUDA graph replay does not rebuild them with ~20
small kernels; while tracing or exporting they are always recomputed, so `torch.onnx.export` records
the arithmetic (a dynamic ONNX must derive them from its input shape), never one size's grid.
"""

from __future__ import annotations

import copy
import functools
import math
import weakref

import torch
from torch import nn

from ultralytics.gpu.constants import CaptureSafeCache
from ultralytics.gpu.streams import run_branches
from ultralytics.nn.modules.block import DFL
from ultralytics.nn.modules.conv import Conv, DWConv
from ultralytics.utils import LOGGER

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


# anchor grids per head, outside the module so that pickling a model (checkpoints) never carries them
_ANCHOR_GRIDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tracing() -> bool:
    """Inside torch.jit tracing, an ONNX export or torch.compile: shapes must stay symbolic."""
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)()
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or compiling)


class Detect(nn.Module):
    """Anchor-free decoupled head: per level, `cv2` predicts the 4 box sides (as `reg_max`-bin
    distributions that `dfl` turns into distances; YOLO26's reg_max=1 predicts the distances directly)
    and `cv3` the class logits.

    YOLOv8 (`legacy=True`) uses two 3x3 Convs in `cv3`; YOLO11/YOLO26 a depth-wise + 1x1 pair.
    YOLO26 (`end2end=True`) also carries a one-to-one copy (`one2one_cv2`/`one2one_cv3`) trained to
    give one box per object, so it needs no NMS. Which branch runs is the `end2end` property: off by
    default (one-to-many + NMS, as upstream predicts), on when selected (upstream's `nms=False`) or when
    the one-to-many branch is absent from the checkpoint.
    """

    # Class-level defaults for attributes older checkpoints do not carry, and for flags that
    # upstream code sets on the class (export tooling reads them).
    reg_max: int = 16
    dynamic: bool = False
    export: bool = False
    format: str | None = None
    max_det: int = 300
    agnostic_nms: bool = False
    legacy: bool = False

    def __init__(
        self,
        nc: int = 80,
        ch: tuple[int, ...] | list[int] = (),
        reg_max: int = 16,
        end2end: bool = False,
        legacy: bool = True,
    ):
        super().__init__()
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = reg_max
        self.no = nc + self.reg_max * 4
        self.legacy = legacy
        self.stride = torch.zeros(self.nl)  # filled in by DetectionModel once the strides are known
        box_ch = max(16, ch[0] // 4, self.reg_max * 4)
        cls_ch = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(c, box_ch, 3), Conv(box_ch, box_ch, 3), nn.Conv2d(box_ch, 4 * self.reg_max, 1))
            for c in ch
        )
        if legacy:
            self.cv3 = nn.ModuleList(
                nn.Sequential(Conv(c, cls_ch, 3), Conv(cls_ch, cls_ch, 3), nn.Conv2d(cls_ch, nc, 1)) for c in ch
            )
        else:
            self.cv3 = nn.ModuleList(
                nn.Sequential(
                    nn.Sequential(DWConv(c, c, 3), Conv(c, cls_ch, 1)),
                    nn.Sequential(DWConv(cls_ch, cls_ch, 3), Conv(cls_ch, cls_ch, 1)),
                    nn.Conv2d(cls_ch, nc, 1),
                )
                for c in ch
            )
        self.dfl = DFL(self.reg_max) if self.reg_max > 1 else nn.Identity()
        if end2end:
            self.one2one_cv2 = copy.deepcopy(self.cv2)
            self.one2one_cv3 = copy.deepcopy(self.cv3)

    # ------------------------------------------------------------------ head selection
    @property
    def has_one2one(self) -> bool:
        """True for heads with an NMS-free one-to-one branch (YOLO26)."""
        return getattr(self, "one2one_cv2", None) is not None

    @property
    def end2end(self) -> bool:
        """Whether inference runs the one-to-one branch and returns (B, max_det, 6) detections."""
        return self.has_one2one and (bool(self.__dict__.get("_end2end", False)) or self.cv2 is None)

    @end2end.setter
    def end2end(self, value: bool) -> None:
        if value and not self.has_one2one:
            LOGGER.warning("this model has no one-to-one (NMS-free) head; using the one-to-many head + NMS")
        self._end2end = bool(value)

    # ------------------------------------------------------------------ forward
    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """Eval: (B, 4 + nc, A) decoded one-to-many output, or (B, k, 6) x1,y1,x2,y2,score,cls from the
        one-to-one branch when `end2end`. Train: the one-to-many raw per-level maps (B, no, h, w)."""
        if self.training:
            return [torch.cat((self.cv2[i](feats[i]), self.cv3[i](feats[i])), 1) for i in range(self.nl)]
        if self.end2end:
            boxes, scores = self._branch(feats, self.one2one_cv2, self.one2one_cv3)
            xyxy = self._decode_boxes(boxes, feats, xywh=False)
            return self.top_k(xyxy.transpose(1, 2), scores.sigmoid().transpose(1, 2))
        boxes, scores = self._branch(feats, self.cv2, self.cv3)
        return torch.cat((self._decode_boxes(boxes, feats, xywh=True), scores.sigmoid()), 1)

    def _branch(
        self, feats: list[torch.Tensor], box_head: nn.ModuleList, cls_head: nn.ModuleList
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Box logits (B, 4 * reg_max, A) and class logits (B, nc, A), levels concatenated in order.

        The 2 x nl branches are independent: while a CUDA graph is captured they run side by side
        (`gpu/streams.run_branches`), elsewhere one after another."""
        heads = [(box_head[i], feats[i]) for i in range(self.nl)] + [(cls_head[i], feats[i]) for i in range(self.nl)]
        outs = run_branches([functools.partial(_flat, head, x) for head, x in heads])
        return torch.cat(outs[: self.nl], 2), torch.cat(outs[self.nl :], 2)

    def _anchors(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """`make_anchors` for these feature sizes, kept per (sizes, device, dtype) in inference so that a
        CUDA graph replay does not rebuild them (`gpu/constants.py`).

        Made fresh whenever a gradient is recorded, and while tracing or exporting (an ONNX export must
        compute them from the input's shape, not carry one size's grid as a constant)."""
        if torch.is_grad_enabled() or _tracing():
            return make_anchors(feats, self.stride)
        key = (tuple(tuple(f.shape[2:]) for f in feats), feats[0].device, feats[0].dtype, id(self.stride))
        cache = _ANCHOR_GRIDS.get(self)
        if cache is None:
            cache = _ANCHOR_GRIDS.setdefault(self, CaptureSafeCache(recent=16))
        return cache.get(key, feats[0].device, lambda capturing: make_anchors(feats, self.stride))

    def _decode_boxes(self, box_logits: torch.Tensor, feats: list[torch.Tensor], xywh: bool) -> torch.Tensor:
        """Box logits -> (B, 4, A) in input pixels: centre/size (xywh) or corners (xyxy)."""
        points, strides = self._anchors(feats)
        distances = self.dfl(box_logits)  # (B, 4, A): left, top, right, bottom in grid units
        left_top, right_bottom = distances.chunk(2, 1)
        top_left = points - left_top
        bottom_right = points + right_bottom
        if xywh:
            return torch.cat(((top_left + bottom_right) / 2, bottom_right - top_left), 1) * strides
        return torch.cat((top_left, bottom_right), 1) * strides

    def decode(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Raw one-to-many per-level maps (B, no, h, w) -> (B, 4 + nc, A): xywh pixels, sigmoid scores."""
        flat = torch.cat([level.flatten(2) for level in levels], 2)
        box_logits, cls_logits = flat.split((4 * self.reg_max, self.nc), 1)
        return torch.cat((self._decode_boxes(box_logits, levels, xywh=True), cls_logits.sigmoid()), 1)

    def top_k(self, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """NMS-free selection: (B, A, 4) xyxy + (B, A, nc) scores -> (B, k, 6), k = min(max_det, A).

        Class-aware (default): keep the k anchors with the highest best-class score, then the k best
        (anchor, class) pairs among them, so one anchor may appear with two classes. With
        `agnostic_nms` each anchor counts once, with its best class. Sorted by score, descending.
        """
        k = min(int(self.max_det), scores.shape[1])
        if self.agnostic_nms:
            best, labels = scores.max(dim=-1)
            top, anchor = best.topk(k, dim=1)
            label = labels.gather(1, anchor).float()
        else:
            nc = scores.shape[-1]
            candidates = scores.amax(dim=-1).topk(k, dim=1).indices  # (B, k) anchors
            candidate_scores = scores.gather(1, candidates.unsqueeze(-1).expand(-1, -1, nc))
            top, flat = candidate_scores.flatten(1).topk(k, dim=1)
            label = (flat % nc).float()
            anchor = candidates.gather(1, flat // nc)
        picked = boxes.gather(1, anchor.unsqueeze(-1).expand(-1, -1, boxes.shape[-1]))
        return torch.cat((picked, top.unsqueeze(-1), label.unsqueeze(-1)), -1)

    def bias_init(self) -> None:
        """Start a fresh head from sensible priors (box bias 1; class bias for ~5 objects per 640
        image), so an untrained model's scores are small rather than 0.5. Needs `stride` set."""
        heads = [(self.cv2, self.cv3)]
        if self.has_one2one:
            heads.append((self.one2one_cv2, self.one2one_cv3))
        for box_heads, cls_heads in heads:
            for box_head, cls_head, stride in zip(box_heads, cls_heads, self.stride):
                box_head[-1].bias.data[:] = 1.0
                cls_head[-1].bias.data[: self.nc] = math.log(5 / self.nc / (640 / float(stride)) ** 2)

    def _apply(self, fn, *args, **kwargs):
        # `stride` is a plain tensor attribute (as in upstream pickles), not a buffer, so .to(),
        # .half() and .cuda() would otherwise leave it behind on the CPU / in the old dtype.
        module = super()._apply(fn, *args, **kwargs)
        if isinstance(self.stride, torch.Tensor):
            self.stride = fn(self.stride)
        return module


def _flat(head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return head(x).flatten(2)
