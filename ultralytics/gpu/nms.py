"""Batched non-maximum suppression with fixed tensor shapes and no host synchronisation.

Upstream's NMS (and a per-image loop around any NMS) filters with boolean indexing, which makes every
image wait for the GPU several times. Here every image keeps its `top_k` best-scoring candidates (a
fixed shape), and greedy NMS is solved as a fixed point over the IoU matrix:

    keep[i] = valid[i] and no higher-scoring j with keep[j] overlaps i by more than iou_thres.

Iterating that rule from keep = valid fixes one more link of every suppression chain per step; the
unique fixed point is exactly greedy NMS. After a few steps the result, the per-image counts and a
"converged / nothing truncated" flag go to the host together in one copy. The rare batch that has not
converged, or has more candidates than `top_k`, is redone with more steps or a larger `top_k` (which then stays: a video rarely changes much).

On CUDA, `run_on_device` prefers `gpu/nms_triton.py`: the same packed result from two Triton kernels
(exact greedy NMS, no K×K fixed point) instead of ~85 small torch kernels, for every batch and top_k
the kernels take; `ULTRALYTICS_GPU_TRITON=0` keeps the torch path.

Semantics follow upstream's `non_max_suppression` for multi_label=False: score = best class score,
strictly greater than conf_thres, optional class filter, class-offset boxes (max_wh) unless agnostic,
suppression when IoU > iou_thres, at most max_det boxes per image, highest scores first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ultralytics.gpu.graphs import GraphFamily
from ultralytics.gpu.nms_triton import try_nms_triton
from ultralytics.utils.ops import MAX_NMS, MAX_WH
from ultralytics.utils.settings import settings


def _iou_matrix(boxes: torch.Tensor) -> torch.Tensor:
    """(B, K, 4) xyxy → (B, K, K) IoU, the same arithmetic as torchvision's nms."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    area = (x2 - x1) * (y2 - y1)
    iw = (torch.minimum(x2[:, :, None], x2[:, None, :]) - torch.maximum(x1[:, :, None], x1[:, None, :])).clamp_(min=0)
    ih = (torch.minimum(y2[:, :, None], y2[:, None, :]) - torch.maximum(y1[:, :, None], y1[:, None, :])).clamp_(min=0)
    inter = iw.mul_(ih)
    return inter / (area[:, :, None] + area[:, None, :] - inter)


def _xywh2xyxy(xywh: torch.Tensor) -> torch.Tensor:
    xy, wh = xywh[..., :2], xywh[..., 2:4] / 2
    return torch.cat((xy - wh, xy + wh), -1)


def capped_top_k(top_k: int, anchors: int) -> int:
    """Candidates NMS keeps per image: `top_k`, at most the anchors there are and upstream's cap."""
    return min(top_k, anchors, MAX_NMS)


@dataclass
class PendingNMS:
    """An enqueued NMS: its input (kept alive for a redo), the host copy and the event ending it."""

    preds: torch.Tensor
    host: torch.Tensor
    done: torch.cuda.Event | None
    top_k: int
    steps: int


class BatchedNMS:
    """Callable: raw head output (B, 4 + nc, A) → per-image (n, 6) xyxy, conf, cls arrays on the host.

    `launch` + `finish` split the call so the host can prepare the next batch while this one runs.
    """

    def __init__(
        self,
        conf_thres: float = 0.25,
        iou_thres: float = 0.7,
        classes: list[int] | None = None,
        agnostic: bool = False,
        max_det: int = 300,
        top_k: int = 256,
        steps: int = 6,
        max_top_k: int = 4096,
        graphs: GraphFamily | None = None,
    ):
        if not 0 <= conf_thres <= 1 or not 0 <= iou_thres <= 1:
            raise ValueError(f"conf and iou must be within 0..1, got conf={conf_thres} iou={iou_thres}")
        if max_det < 1 or top_k < 1 or steps < 1:
            raise ValueError(f"max_det, top_k and steps must be positive, got {max_det}, {top_k}, {steps}")
        self.conf_thres, self.iou_thres = float(conf_thres), float(iou_thres)
        self.classes = None if classes is None else [int(c) for c in classes]
        self.agnostic, self.max_det = bool(agnostic), int(max_det)
        self.top_k, self.steps, self.max_top_k = int(top_k), int(steps), int(max_top_k)
        self.graphs = graphs  # on CUDA: replay NMS as one graph instead of ~40 kernel launches
        self._classes_on: dict[torch.device, torch.Tensor] = {}

    def __call__(self, preds: torch.Tensor) -> list[np.ndarray] | None:
        """Per-image (n, 6) float32 numpy detections, or None when an image has more than `max_top_k`
        candidates (a very low conf): the K×K matrix would not pay off, use a sorting NMS instead."""
        return self.finish(self.launch(preds))

    def launch(self, preds: torch.Tensor) -> PendingNMS:
        """Enqueue NMS and the copy of its result into pinned host memory; returns without waiting."""
        if preds.ndim != 3:
            raise ValueError(f"NMS expects the raw head output (B, 4 + nc, anchors), got shape {tuple(preds.shape)}")
        return self._launch(preds, capped_top_k(self.top_k, preds.shape[2]), self.steps)

    def _launch(self, preds: torch.Tensor, top_k: int, steps: int) -> PendingNMS:
        self.prepare_classes(preds.device)
        if self.graphs is not None and preds.device.type == "cuda":
            key = self.graph_key(top_k, steps)
            packed = self.graphs(key, lambda: lambda p: self.run_on_device(p, top_k, steps), preds)
        else:
            packed = self.run_on_device(preds, top_k, steps)
        return self.to_host(packed, preds, top_k, steps)

    def graph_key(self, top_k: int, steps: int) -> tuple:
        """Everything a captured NMS bakes in: settings that change it need another graph (the Triton
        switch included: it picks the kernels that get captured)."""
        triton = settings().gpu_triton
        return (
            self.conf_thres,
            self.iou_thres,
            tuple(self.classes or ()),
            self.agnostic,
            self.max_det,
            top_k,
            steps,
            triton,
        )

    def prepare_classes(self, device: torch.device) -> None:
        """Upload the class filter once, outside any graph capture (a capture cannot upload)."""
        if self.classes is not None and device not in self._classes_on:
            self._classes_on[device] = torch.tensor(self.classes, device=device)

    def to_host(self, packed: torch.Tensor, preds: torch.Tensor, top_k: int, steps: int) -> PendingNMS:
        """Enqueue the copy of `run_on_device`'s result into pinned host memory (on CUDA)."""
        if packed.device.type != "cuda":
            return PendingNMS(preds, packed, None, top_k, steps)
        host = torch.empty(packed.shape, dtype=packed.dtype, pin_memory=True)
        host.copy_(packed, non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(packed.device))
        return PendingNMS(preds, host, done, top_k, steps)

    def finish(self, pending: PendingNMS) -> list[np.ndarray] | None:
        """Wait for the copy (the one device→host synchronisation) and split it per image; redo the
        rare batch that overflowed `top_k` or did not converge in `steps`."""
        while True:
            if pending.done is not None:
                pending.done.synchronize()
            host = pending.host.numpy()
            preds = pending.preds
            b, anchors = preds.shape[0], preds.shape[2]
            candidates = int(host[:, -2].max())
            need_k = capped_top_k(candidates, anchors)
            if need_k > pending.top_k:  # more candidates than we kept: redo with room, and keep it for next time
                if need_k > self.max_top_k:
                    return None
                top_k = capped_top_k(1 << (need_k - 1).bit_length(), anchors)
                self.top_k = max(self.top_k, top_k)
                pending = self._launch(preds, top_k, pending.steps)
                continue
            if host[:, -1].min() <= 0:  # a suppression chain longer than `steps`: keep iterating
                pending = self._launch(preds, pending.top_k, pending.steps * 2)
                continue
            dets = host[:, : self.max_det * 6].reshape(b, self.max_det, 6)
            counts = host[:, -3].astype(np.int64)
            return [dets[i, : counts[i]] for i in range(b)]

    def run_on_device(self, preds: torch.Tensor, top_k: int, steps: int) -> torch.Tensor:
        """All of NMS with fixed shapes; returns (B, max_det*6 + 3): detections, count, candidates, converged.

        The Triton kernels when they apply (gpu/nms_triton.py); otherwise images go through in chunks
        that bound the (chunk, K, K) IoU matrix to ~32M elements."""
        # every batch the kernels take: on the H200 they were faster at each size measured (1, 8, 32;
        # graph-replayed 0.018-0.257 ms against 0.207-0.763, benchmarks/nms_kernels.py, session 6)
        classes = None if self.classes is None else self._classes_on[preds.device]
        packed = try_nms_triton(preds, self.conf_thres, self.iou_thres, classes, self.agnostic, self.max_det, top_k)
        if packed is not None:
            return packed
        chunk = max(1, (1 << 25) // (top_k * top_k))
        parts = [self._run_chunk(preds[i : i + chunk], top_k, steps) for i in range(0, preds.shape[0], chunk)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _run_chunk(self, preds: torch.Tensor, top_k: int, steps: int) -> torch.Tensor:
        preds = preds.float()
        b = preds.shape[0]
        x = preds.transpose(1, 2)  # (B, A, 4 + nc)
        scores, cls = x[..., 4:].max(-1)
        valid = scores > self.conf_thres
        if self.classes is not None:
            valid &= torch.isin(cls, self._classes_on[cls.device].to(cls.dtype))
        candidates = valid.sum(1)
        masked = torch.where(valid, scores, torch.full_like(scores, -1.0))
        top_scores, idx = masked.topk(top_k, dim=1, sorted=True)
        valid = top_scores > self.conf_thres
        boxes = _xywh2xyxy(x[..., :4].gather(1, idx[..., None].expand(-1, -1, 4)))
        top_cls = cls.gather(1, idx).float()
        shifted = boxes if self.agnostic else boxes + top_cls[..., None] * MAX_WH
        overlap = _iou_matrix(shifted) > self.iou_thres
        overlap &= torch.ones(top_k, top_k, dtype=torch.bool, device=preds.device).tril(-1)  # only higher scores
        overlap &= valid[:, None, :]

        keep = valid
        for _ in range(steps):
            keep = valid & ~(overlap & keep[:, None, :]).any(-1)
        after = valid & ~(overlap & keep[:, None, :]).any(-1)
        converged = (after == keep).all(1)

        # kept boxes first, in score order (a stable sort on "not kept")
        order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
        n_out = min(self.max_det, top_k)
        order = order[:, :n_out]
        dets = torch.cat((boxes, top_scores[..., None], top_cls[..., None]), -1).gather(
            1, order[..., None].expand(-1, -1, 6)
        )
        if n_out < self.max_det:
            dets = torch.cat((dets, dets.new_zeros(b, self.max_det - n_out, 6)), 1)
        counts = keep.sum(1).clamp(max=self.max_det)
        tail = torch.stack((counts.float(), candidates.float(), converged.float()), 1)
        return torch.cat((dets.reshape(b, -1), tail), 1)
