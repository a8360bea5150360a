"""Box arithmetic, non-maximum suppression and a stage timer for the predict path.

Everything works on torch tensors (CPU or CUDA); the box converters also accept numpy arrays. NMS is
pure torch, no torchvision, so the package runs wherever torch does.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ultralytics.data.augment import letterbox_params

Boxes = torch.Tensor | np.ndarray


def _empty_like(x: Boxes) -> Boxes:
    return x.clone() if isinstance(x, torch.Tensor) else np.copy(x)


def xywh2xyxy(x: Boxes) -> Boxes:
    """(cx, cy, w, h) → (x1, y1, x2, y2), last axis of size 4."""
    _check_last_dim(x)
    y = _empty_like(x)
    half_w, half_h = x[..., 2] / 2, x[..., 3] / 2
    y[..., 0] = x[..., 0] - half_w
    y[..., 1] = x[..., 1] - half_h
    y[..., 2] = x[..., 0] + half_w
    y[..., 3] = x[..., 1] + half_h
    return y


def xyxy2xywh(x: Boxes) -> Boxes:
    """(x1, y1, x2, y2) → (cx, cy, w, h), last axis of size 4."""
    _check_last_dim(x)
    y = _empty_like(x)
    y[..., 0] = (x[..., 0] + x[..., 2]) / 2
    y[..., 1] = (x[..., 1] + x[..., 3]) / 2
    y[..., 2] = x[..., 2] - x[..., 0]
    y[..., 3] = x[..., 3] - x[..., 1]
    return y


def xyxy2xywhn(x: Boxes, w: int, h: int, clip: bool = False) -> Boxes:
    """(x1, y1, x2, y2) pixels → (cx, cy, w, h) normalised to 0..1 by the image width/height."""
    if clip:
        x = clip_boxes(_empty_like(x), (h, w))
    y = xyxy2xywh(x)
    y[..., [0, 2]] /= w
    y[..., [1, 3]] /= h
    return y


def _check_last_dim(x: Boxes) -> None:
    if x.shape[-1] != 4:
        raise ValueError(f"boxes must have 4 values in the last dimension, got shape {tuple(x.shape)}")


def clip_boxes(boxes: Boxes, shape: tuple[int, ...]) -> Boxes:
    """Clamp xyxy boxes in place to an image of `shape` (h, w, ...); returns them."""
    h, w = shape[0], shape[1]
    if isinstance(boxes, torch.Tensor):
        boxes[..., 0].clamp_(0, w)
        boxes[..., 1].clamp_(0, h)
        boxes[..., 2].clamp_(0, w)
        boxes[..., 3].clamp_(0, h)
    else:
        boxes[..., [0, 2]] = boxes[..., [0, 2]].clip(0, w)
        boxes[..., [1, 3]] = boxes[..., [1, 3]].clip(0, h)
    return boxes


def scale_boxes(
    img1_shape: tuple[int, ...],
    boxes: Boxes,
    img0_shape: tuple[int, ...],
    ratio_pad: tuple | None = None,
    padding: bool = True,
    xywh: bool = False,
) -> Boxes:
    """Map boxes from the letterboxed image (`img1_shape`, h w) back to the original (`img0_shape`).

    The gain is recomputed per axis from the rounded resized size (exactly what `LetterBox` did),
    the centred padding is subtracted, then boxes are clipped to the original image. `ratio_pad`
    ((gain,) or (gain_x, gain_y), (pad_x, pad_y)) overrides the recomputation. Modifies `boxes`.
    """
    if ratio_pad is None:
        p = letterbox_params(tuple(img0_shape[:2]), tuple(img1_shape[:2]), auto=False)
        gain_x = p.new_unpad[0] / img0_shape[1]
        gain_y = p.new_unpad[1] / img0_shape[0]
        pad_x, pad_y = p.left, p.top  # the centred split LetterBox used
    else:
        gains = ratio_pad[0] if isinstance(ratio_pad[0], list | tuple) else (ratio_pad[0],)
        gain_x, gain_y = float(gains[0]), float(gains[-1])
        pad_x, pad_y = ratio_pad[1][0], ratio_pad[1][1]
    if padding:
        boxes[..., 0] -= pad_x
        boxes[..., 1] -= pad_y
        if not xywh:
            boxes[..., 2] -= pad_x
            boxes[..., 3] -= pad_y
    boxes[..., [0, 2]] /= gain_x
    boxes[..., [1, 3]] /= gain_y
    return boxes if xywh else clip_boxes(boxes, img0_shape)


def box_iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every xyxy box in `a` (N,4) with every box in `b` (M,4) → (N, M); 0/0 gives NaN."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


NMS_BLOCK = 1024  # boxes per block: bounds the IoU matrix to BLOCK x BLOCK (+ BLOCK x kept)


NMS_MAX_SWEEPS = 16  # fixed-point sweeps before switching to one pass over the rows on the host


def _resolve_block(over: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """Greedy keep mask of one sorted block, given over[i, j] = (i < j and IoU > t) for alive i."""
    keep = alive.clone()
    for _ in range(NMS_MAX_SWEEPS):
        new_keep = alive & ~(over & keep[:, None]).any(0)
        if torch.equal(new_keep, keep):
            return keep
        keep = new_keep
    # Long suppression chains (dense, low-confidence boxes): one ordered pass is cheaper than more
    # sweeps; it touches each row once and only rows of boxes that are still kept.
    rows, keep_np = over.cpu().numpy(), alive.cpu().numpy().copy()
    for i in range(len(keep_np)):
        if keep_np[i]:
            keep_np[i + 1 :] &= ~rows[i, i + 1 :]
    return torch.from_numpy(keep_np).to(alive.device)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS with torchvision.ops.nms semantics; returns kept indices by decreasing score.

    A box is dropped when its IoU with an already kept, higher-scoring box is > `iou_threshold`.
    Equal scores keep their input order (stable sort).

    Method: boxes are sorted and handled in blocks of NMS_BLOCK. Each block is first suppressed by
    the boxes kept in earlier blocks (one IoU matrix), then resolved internally by iterating
    keep[j] = not any(keep[i] and IoU[i, j] > t for i < j) to its fixed point. The rule is
    triangular, so the fixed point is the greedy answer and iteration k settles every box whose
    chain of suppressors is at most k long. Cost per block: O(B * kept + B^2 * d) with d the longest
    suppression chain (a handful in practice), all as tensor ops. When d exceeds NMS_MAX_SWEEPS
    the block finishes with one ordered O(B^2) pass over its kept rows on the host.
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = boxes[order].float()
    kept_parts: list[torch.Tensor] = []
    kept_boxes = boxes[:0]
    for start in range(0, boxes.shape[0], NMS_BLOCK):
        block = boxes[start : start + NMS_BLOCK]
        alive = torch.ones(block.shape[0], dtype=torch.bool, device=boxes.device)
        if kept_boxes.shape[0]:
            alive = ~(box_iou_matrix(kept_boxes, block) > iou_threshold).any(0)
        over = torch.triu(box_iou_matrix(block, block) > iou_threshold, diagonal=1) & alive[:, None]
        keep = _resolve_block(over, alive)
        idx = torch.nonzero(keep).flatten() + start
        kept_parts.append(idx)
        kept_boxes = torch.cat([kept_boxes, boxes[idx]])
    if not kept_parts:
        return order[:0]
    return order[torch.cat(kept_parts)]


MAX_WH = 7680  # upstream's class offset in pixels: boxes of different classes never overlap
MAX_NMS = 30000  # upstream's cap on candidates per image


def non_max_suppression(
    prediction: torch.Tensor | list | tuple,
    conf_thres: float = 0.25,
    iou_thres: float = 0.45,
    classes: list[int] | None = None,
    agnostic: bool = False,
    multi_label: bool = False,
    max_det: int = 300,
    nc: int = 0,
    max_nms: int = MAX_NMS,
    max_wh: int = MAX_WH,
) -> list[torch.Tensor]:
    """Raw head output (B, 4 + nc + extra, A) → per image a (n, 6 + extra) tensor: xyxy, conf, cls, extra.

    Steps (upstream's): drop anchors whose best class score is <= conf_thres, xywh → xyxy, pick the
    best class (or every class above the threshold with `multi_label`), filter `classes`, keep the
    `max_nms` highest, offset boxes by class * max_wh so classes never suppress each other (unless
    `agnostic`), greedy NMS, first `max_det`.
    """
    if not 0 <= conf_thres <= 1:
        raise ValueError(f"conf_thres must be within 0..1, got {conf_thres}")
    if not 0 <= iou_thres <= 1:
        raise ValueError(f"iou_thres must be within 0..1, got {iou_thres}")
    if isinstance(prediction, list | tuple):  # some exports return (output, extras)
        prediction = prediction[0]
    if prediction.ndim != 3:
        raise ValueError(f"NMS expects a (batch, 4 + classes, anchors) tensor, got shape {tuple(prediction.shape)}")
    bs = prediction.shape[0]
    nc = nc or (prediction.shape[1] - 4)
    if nc < 1 or prediction.shape[1] < 4 + nc:
        raise ValueError(f"prediction has {prediction.shape[1]} rows, too few for 4 box values and {nc} classes")
    mi = 4 + nc
    candidates = prediction[:, 4:mi].amax(1) > conf_thres  # (B, A)
    prediction = prediction.transpose(-1, -2)  # (B, A, 4 + nc + extra)
    class_filter = None
    if classes is not None:
        class_filter = torch.tensor(classes, device=prediction.device, dtype=prediction.dtype)
    output = [torch.zeros((0, 6 + prediction.shape[2] - mi), device=prediction.device) for _ in range(bs)]
    for xi in range(bs):
        x = prediction[xi][candidates[xi]]
        if not x.shape[0]:
            continue
        box = xywh2xyxy(x[:, :4])
        cls, extra = x[:, 4:mi], x[:, mi:]
        if multi_label:
            i, j = torch.nonzero(cls > conf_thres).T
            x = torch.cat((box[i], x[i, 4 + j, None], j[:, None].to(x.dtype), extra[i]), 1)
        else:
            conf, j = cls.max(1, keepdim=True)
            x = torch.cat((box, conf, j.to(x.dtype), extra), 1)[conf.view(-1) > conf_thres]
        if class_filter is not None:
            x = x[(x[:, 5:6] == class_filter).any(1)]
        if not x.shape[0]:
            continue
        if x.shape[0] > max_nms:
            x = x[torch.sort(x[:, 4], descending=True, stable=True).indices[:max_nms]]
        offsets = x[:, 5:6] * (0 if agnostic else max_wh)
        keep = nms(x[:, :4] + offsets, x[:, 4], iou_thres)[:max_det]
        output[xi] = x[keep]
    return output


def nms_free_requested(args: Any) -> bool:
    """Whether the arguments ask for NMS-free (end-to-end) output: upstream's `nms=False`, or its older
    `end2end` key, which when given decides alone (True = NMS-free, False = not)."""
    end2end, nms = getattr(args, "end2end", None), getattr(args, "nms", None)
    for key, value in (("end2end", end2end), ("nms", nms)):
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"'{key}={value!r}' must be a bool, i.e. '{key}=True' or '{key}=False'")
    if end2end is not None:
        return end2end
    return nms is False


def filter_end2end(
    prediction: torch.Tensor,
    conf_thres: float = 0.25,
    classes: list[int] | None = None,
    max_det: int = 300,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """Final detections (B, N, 6) x1,y1,x2,y2,score,cls from an end-to-end model → per image (n, 6).

    The one rule for every path (CPU predictor, device pipeline, validator), as upstream 8.4.190 does it:
    no NMS and no re-sorting (the model's row order is kept); a row stays when score > conf_thres,
    compared in the model's dtype (a half score equal to the half-rounded threshold is dropped), and
    its class is in `classes`; then the first `max_det` of those. Rows come back float32 on `device`
    (default: the prediction's). The whole batch is filtered at once, so a CUDA prediction costs one
    device→host copy per batch (the rows and counts together, or the counts alone when the rows stay
    on the device) and no per-image syncs.
    """
    if not 0 <= conf_thres <= 1:
        raise ValueError(f"conf_thres must be within 0..1, got {conf_thres}")
    if isinstance(prediction, list | tuple):
        prediction = prediction[0]
    if prediction.ndim != 3 or prediction.shape[-1] != 6:
        raise ValueError(
            f"end-to-end detections must be (batch, boxes, 6) x1,y1,x2,y2,score,class; got {tuple(prediction.shape)}"
        )
    if max_det < 0:
        raise ValueError(f"max_det must be 0 or more, got {max_det}")
    batch, boxes = prediction.shape[:2]
    keep = prediction[..., 4] > conf_thres
    if classes is not None:
        wanted = torch.tensor(classes, device=prediction.device, dtype=prediction.dtype)
        keep &= (prediction[..., 5:6] == wanted).any(-1)
    width = min(max_det, boxes)
    # kept rows first, each group in the model's order (a stable sort of 0 = kept, 1 = dropped)
    order = (~keep).to(torch.uint8).argsort(dim=1, stable=True)[:, :width]
    rows = torch.gather(prediction, 1, order[..., None].expand(-1, -1, 6)).float().reshape(batch, width * 6)
    counts = keep.sum(1).clamp_(max=width)
    target = prediction.device if device is None else torch.device(device)
    if target != prediction.device:  # rows and counts in one transfer
        packed = torch.cat([counts[:, None].float(), rows], 1).to(target)
        counts, rows = packed[:, 0].long(), packed[:, 1:]
    n = counts.tolist()  # on a device target, the only device→host copy
    return [rows[i, : n[i] * 6].view(n[i], 6) for i in range(batch)]


class Profile:
    """Context-manager timer: `dt` is the last block's seconds, `total` their sum.

    On CUDA the device is synchronised on entry and exit, otherwise asynchronous kernels would be
    billed to whichever later stage happens to wait for them.
    """

    def __init__(self, device: torch.device | str | None = None, t: float = 0.0):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.cuda = self.device.type == "cuda"
        self.total = t
        self.dt = 0.0
        self.start = 0.0

    def _time(self) -> float:
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def __enter__(self) -> Profile:
        self.start = self._time()
        return self

    def __exit__(self, *exc) -> None:
        self.dt = self._time() - self.start
        self.total += self.dt

    def __str__(self) -> str:
        return f"Elapsed time is {self.total:.4f} s"
