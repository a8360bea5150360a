"""Detection accuracy with upstream Ultralytics' protocol, so our numbers compare with theirs.

The protocol (what makes a number "mAP50-95" here):
- a prediction is a true positive at IoU threshold t when the same-class ground-truth box it overlaps
  most (IoU >= t) is not claimed by a more confident prediction; thresholds 0.50, 0.55, ..., 0.95;
- per class, predictions are ranked by confidence; AP is the area under the precision envelope
  (precision made monotonically non-increasing), which ends at the highest recall the predictions
  reach (precision 0 beyond it, upstream 8.4), sampled at 101 recall points 0, 0.01, ..., 1 and
  integrated with the trapezoid rule;
- classes with no ground truth are left out of the means; mAP50-95 is the mean over classes and
  thresholds; P and R are read at the confidence where the (smoothed) mean F1 over classes peaks.

docs/validation.md explains how this differs from pycocotools' COCO mAP.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ultralytics.utils.tabular import SummaryExports

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0, 1, 101)  # where the precision envelope is sampled for AP
CONF_GRID = np.linspace(0, 1, 1000)  # confidences at which P, R and F1 curves are evaluated
EPS = 1e-16
AP_METHODS = ("upstream", "upstream-8.3", "coco")  # see average_precision


def box_iou(box1: torch.Tensor | np.ndarray, box2: torch.Tensor | np.ndarray, eps: float = 1e-7) -> torch.Tensor:
    """IoU of every box in box1 (N, 4) with every box in box2 (M, 4), both xyxy → (N, M) tensor."""
    b1 = torch.as_tensor(box1, dtype=torch.float32)
    b2 = torch.as_tensor(box2, dtype=torch.float32, device=b1.device)
    if b1.ndim != 2 or b1.shape[-1] != 4 or b2.ndim != 2 or b2.shape[-1] != 4:
        raise ValueError(f"box_iou needs (N, 4) and (M, 4) xyxy boxes, got {tuple(b1.shape)} and {tuple(b2.shape)}")
    top_left = torch.maximum(b1[:, None, :2], b2[None, :, :2])
    bottom_right = torch.minimum(b1[:, None, 2:], b2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area1 = (b1[:, 2:] - b1[:, :2]).clamp(min=0).prod(-1)
    area2 = (b2[:, 2:] - b2[:, :2]).clamp(min=0).prod(-1)
    return inter / (area1[:, None] + area2[None, :] - inter + eps)


def match_predictions(
    pred_classes: np.ndarray, true_classes: np.ndarray, iou: np.ndarray, iou_thresholds: np.ndarray = IOU_THRESHOLDS
) -> np.ndarray:
    """(n_pred, n_thresholds) bool: is each prediction a true positive at each IoU threshold.

    `iou` is (n_true, n_pred); predictions must be in decreasing confidence (NMS output order).
    Upstream's rule, at each threshold t, over pairs of the same class with IoU >= t: each prediction
    is paired with the ground truth it overlaps most; a ground truth paired with several predictions
    goes to the most confident of them, the others are false positives.
    """
    pred_classes, true_classes = np.asarray(pred_classes), np.asarray(true_classes)
    correct = np.zeros((len(pred_classes), len(iou_thresholds)), dtype=bool)
    if len(pred_classes) == 0 or len(true_classes) == 0:
        return correct
    iou = np.where(true_classes[:, None] == pred_classes[None, :], np.asarray(iou, dtype=np.float64), 0.0)
    for k, threshold in enumerate(iou_thresholds):
        candidate = iou >= threshold
        if not candidate.any():
            continue
        masked = np.where(candidate, iou, -1.0)
        best_gt = masked.argmax(0)  # each prediction's highest-IoU ground truth (first on ties)
        has_gt = candidate.any(0)
        taken: set[int] = set()
        for p in np.flatnonzero(has_gt):  # most confident first
            if best_gt[p] not in taken:
                taken.add(int(best_gt[p]))
                correct[p, k] = True
    return correct


def smooth(y: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """Box-filter y with a window of about `fraction`*2 of its length, edges padded with the end values."""
    width = round(len(y) * fraction * 2) // 2 + 1  # always odd
    half = np.ones(width // 2)
    padded = np.concatenate((half * y[0], y, half * y[-1]))
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def precision_envelope(
    recall: np.ndarray, precision: np.ndarray, method: str = "upstream"
) -> tuple[np.ndarray, np.ndarray]:
    """The (recall, envelope) points AP integrates, with the end points `method` adds (see average_precision).

    The envelope is the best precision at this recall or beyond; upstream's PR curve is this function
    sampled at 1000 recalls (`Metric.prec_values`).
    """
    if method == "upstream":
        # (highest recall, 0) then (1, 0): nothing beyond the recall actually reached
        last = recall[-1] if len(recall) else 1.0
        recall = np.concatenate(([0.0], recall, [last, 1.0]))
        precision = np.concatenate(([1.0], precision, [0.0, 0.0]))
    elif method == "upstream-8.3":
        recall = np.concatenate(([0.0], recall, [1.0]))
        precision = np.concatenate(([1.0], precision, [0.0]))
    else:
        raise ValueError(f"AP method '{method}' is not known; use one of {', '.join(AP_METHODS)}")
    return recall, np.maximum.accumulate(precision[::-1])[::-1]


def average_precision(recall: np.ndarray, precision: np.ndarray, method: str = "upstream") -> float:
    """Area under the precision envelope at 101 recall points 0, 0.01, ..., 1.

    method="upstream" (the default, upstream Ultralytics 8.4): the envelope is linearly interpolated
    between the ranked predictions, drops to precision 0 right after the highest recall reached and
    stays 0 up to recall 1, and is integrated with the trapezoid rule. Recall the model never reaches
    earns nothing, so the AP does not depend on how many false positives trail the last true one.
    method="upstream-8.3": upstream before April 2026 (8.3.x, early 8.4.x), which joined the last point
    straight to (recall 1, precision 0); that ramp credits unreached recall, and more so the fewer
    low-confidence false positives there are, so its AP falls as the conf threshold is lowered.
    method="coco" (pycocotools): at each recall point, the envelope's value at the first ranked
    prediction reaching that recall (0 beyond the highest recall), averaged.
    docs/validation.md explains when they differ.
    """
    if method == "coco":
        envelope = np.maximum.accumulate(np.asarray(precision)[::-1])[::-1]
        first = np.searchsorted(recall, RECALL_POINTS, side="left")
        reached = first < len(envelope)
        return (
            float(np.where(reached, envelope[np.minimum(first, len(envelope) - 1)], 0.0).mean())
            if len(envelope)
            else 0.0
        )
    recall, envelope = precision_envelope(recall, precision, method)
    # Where a recall value repeats, np.interp takes the last (lowest-envelope) point of the run, as upstream's
    # integration does: a recall point exactly at the highest recall reached therefore samples precision 0.
    sampled = np.interp(RECALL_POINTS, recall, envelope)
    return float(np.sum((sampled[1:] + sampled[:-1]) / 2 * np.diff(RECALL_POINTS)))


def ap_per_class(
    tp: np.ndarray,
    conf: np.ndarray,
    pred_cls: np.ndarray,
    target_cls: np.ndarray,
    eps: float = EPS,
    method: str = "upstream",
) -> dict[str, np.ndarray]:
    """Per-class AP at every IoU threshold, plus P, R and F1 at the best mean-F1 confidence.

    tp: (n_pred, n_thresholds) bool; conf, pred_cls: (n_pred,); target_cls: (n_true,) — all predictions
    and ground truths of the whole dataset. Only classes present in target_cls are scored. `method`
    picks the AP integration (see average_precision).
    Returns arrays indexed like `classes`: ap (n_cls, n_thresholds), p, r, f1, tp, fp (n_cls,),
    plus `classes`, the curves over CONF_GRID (p_curve, r_curve, f1_curve) and the PR curve at IoU 0.5
    sampled at recall = CONF_GRID (prec_values; zeros for method="coco").
    """
    conf, pred_cls, target_cls = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (conf, pred_cls, target_cls))
    tp = np.asarray(tp, dtype=np.float64)
    tp = tp.reshape(len(conf), tp.shape[-1] if tp.ndim == 2 else len(IOU_THRESHOLDS))
    order = np.argsort(-conf, kind="stable")
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    classes, n_true = np.unique(target_cls, return_counts=True)
    n_cls, n_thr = len(classes), tp.shape[1]
    ap = np.zeros((n_cls, n_thr))
    p_curve, r_curve = np.zeros((n_cls, len(CONF_GRID))), np.zeros((n_cls, len(CONF_GRID)))
    prec_values = np.zeros((n_cls, len(CONF_GRID)))  # PR curve at IoU 0.5, sampled at recall = CONF_GRID
    for ci, c in enumerate(classes):
        mine = pred_cls == c
        if not mine.any():
            continue  # a class nobody predicted: AP, P and R stay 0
        tp_cum = np.cumsum(tp[mine], axis=0)
        fp_cum = np.cumsum(1 - tp[mine], axis=0)
        recall = tp_cum / (n_true[ci] + eps)
        precision = tp_cum / (tp_cum + fp_cum)
        # np.interp needs increasing x: confidences fall along the ranking, so interpolate on -conf.
        r_curve[ci] = np.interp(-CONF_GRID, -conf[mine], recall[:, 0], left=0)
        p_curve[ci] = np.interp(-CONF_GRID, -conf[mine], precision[:, 0], left=1)
        for k in range(n_thr):
            ap[ci, k] = average_precision(recall[:, k], precision[:, k], method)
        if method != "coco":
            prec_values[ci] = np.interp(CONF_GRID, *precision_envelope(recall[:, 0], precision[:, 0], method))
    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + eps)
    best = int(smooth(f1_curve.mean(0), 0.1).argmax()) if n_cls else 0
    p, r, f1 = p_curve[:, best], r_curve[:, best], f1_curve[:, best]
    tp_at_best = (r * n_true).round()
    fp_at_best = (tp_at_best / (p + eps) - tp_at_best).round()
    return {
        "classes": classes.astype(int),
        "ap": ap,
        "p": p,
        "r": r,
        "f1": f1,
        "tp": tp_at_best,
        "fp": fp_at_best,
        "p_curve": p_curve,
        "r_curve": r_curve,
        "f1_curve": f1_curve,
        "prec_values": prec_values,
    }


CURVE_NAMES = ["Precision-Recall(B)", "F1-Confidence(B)", "Precision-Confidence(B)", "Recall-Confidence(B)"]


class Metric:
    """Box metrics of one evaluation; per-class arrays are indexed like `ap_class_index`.

    Attribute names follow upstream's `Metric` (p, r, f1, all_ap, ap_class_index, nc, the curves over
    `px`), so code that reads them there reads them here.
    """

    def __init__(self, nc: int = 0) -> None:
        self.nc = int(nc)
        self.p = np.zeros(0)
        self.r = np.zeros(0)
        self.f1 = np.zeros(0)
        self.all_ap = np.zeros((0, len(IOU_THRESHOLDS)))
        self.ap_class_index = np.zeros(0, dtype=int)
        self.px = CONF_GRID
        self.p_curve = self.r_curve = self.f1_curve = self.prec_values = np.zeros((0, len(CONF_GRID)))

    def update(self, result: dict[str, np.ndarray]) -> None:
        self.p, self.r, self.f1 = result["p"], result["r"], result["f1"]
        self.all_ap, self.ap_class_index = result["ap"], result["classes"]
        self.p_curve, self.r_curve, self.f1_curve = result["p_curve"], result["r_curve"], result["f1_curve"]
        self.prec_values = result.get("prec_values", np.zeros_like(self.p_curve))

    @property
    def ap50(self) -> np.ndarray:
        """Per-class AP at IoU 0.5."""
        return self.all_ap[:, 0] if len(self.all_ap) else np.zeros(0)

    @property
    def ap(self) -> np.ndarray:
        """Per-class AP averaged over IoU 0.50:0.95."""
        return self.all_ap.mean(1) if len(self.all_ap) else np.zeros(0)

    @property
    def mp(self) -> float:
        return float(self.p.mean()) if len(self.p) else 0.0

    @property
    def mr(self) -> float:
        return float(self.r.mean()) if len(self.r) else 0.0

    @property
    def map50(self) -> float:
        return float(self.all_ap[:, 0].mean()) if len(self.all_ap) else 0.0

    @property
    def map75(self) -> float:
        return float(self.all_ap[:, 5].mean()) if len(self.all_ap) else 0.0

    @property
    def map(self) -> float:
        return float(self.all_ap.mean()) if len(self.all_ap) else 0.0

    def mean_results(self) -> list[float]:
        return [self.mp, self.mr, self.map50, self.map]

    def class_result(self, i: int) -> tuple[float, float, float, float]:
        """(P, R, AP50, AP50-95) of the i-th scored class (i indexes ap_class_index)."""
        return float(self.p[i]), float(self.r[i]), float(self.ap50[i]), float(self.ap[i])

    @property
    def maps(self) -> np.ndarray:
        """AP50-95 per class id 0..nc-1 (an array, as upstream); classes without ground truth get the mAP."""
        out = np.full(self.nc, self.map)
        for i, c in enumerate(self.ap_class_index):
            if c < self.nc:
                out[c] = self.ap[i]
        return out

    def fitness(self) -> float:
        """Upstream's single number for model selection; since 8.4 it is mAP50-95 alone."""
        return self.map

    @property
    def curves_results(self) -> list[list]:
        """[x, y (n_cls, 1000), x label, y label] for the PR, F1, P and R curves (upstream's plot data)."""
        return [
            [self.px, self.prec_values, "Recall", "Precision"],
            [self.px, self.f1_curve, "Confidence", "F1"],
            [self.px, self.p_curve, "Confidence", "Precision"],
            [self.px, self.r_curve, "Confidence", "Recall"],
        ]


class ConfusionMatrix:
    """Detection confusion matrix, upstream's layout: `matrix[predicted class, true class]`.

    The extra last row and column are the background: `matrix[c, nc]` counts class-c predictions that
    match no object (false positives), `matrix[nc, c]` class-c objects that no prediction matched
    (missed). Predictions are taken most confident first; each pairs with the free object it overlaps
    most (IoU > `iou_thres`), whatever the classes, so a confident wrong class lands off the diagonal
    (upstream 8.4's pairing, checked against its matrix on the shapes val set).
    """

    def __init__(self, names: dict[int, str], task: str = "detect") -> None:
        self.task = task
        self.names = dict(names)
        self.nc = len(self.names)
        self.matrix = np.zeros((self.nc + 1, self.nc + 1))

    def process_batch(
        self,
        boxes: np.ndarray,
        conf: np.ndarray,
        pred_cls: np.ndarray,
        true_boxes: np.ndarray,
        true_cls: np.ndarray,
        conf_thres: float = 0.25,
        iou_thres: float = 0.45,
    ) -> None:
        """Add one image: predictions (xyxy, conf, class) above `conf_thres` against its labels (xyxy, class)."""
        keep = np.asarray(conf) > conf_thres
        pred_cls = np.asarray(pred_cls, dtype=int)[keep]
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[keep]
        true_cls = np.asarray(true_cls, dtype=int)
        background = self.nc
        if not len(true_cls):
            for c in pred_cls:
                self.matrix[c, background] += 1
            return
        if not len(pred_cls):
            for c in true_cls:
                self.matrix[background, c] += 1
            return
        iou = box_iou(np.asarray(true_boxes, dtype=np.float64), boxes).numpy()
        gt_of_pred = np.full(len(pred_cls), -1)
        pred_of_gt = np.full(len(true_cls), -1)
        for p in np.argsort(-np.asarray(conf)[keep], kind="stable"):  # most confident prediction first
            free = (iou[:, p] > iou_thres) & (pred_of_gt < 0)
            if free.any():
                g = int(np.argmax(np.where(free, iou[:, p], -1.0)))  # its best-overlapping free object
                pred_of_gt[g], gt_of_pred[p] = p, g
        for g, c in enumerate(true_cls):
            self.matrix[pred_cls[pred_of_gt[g]] if pred_of_gt[g] >= 0 else background, c] += 1
        for p, c in enumerate(pred_cls):
            if gt_of_pred[p] < 0:
                self.matrix[c, background] += 1

    def tp_fp(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-class true positives and false positives (background column excluded)."""
        tp = self.matrix.diagonal()
        fp = self.matrix.sum(1) - tp
        return tp[:-1], fp[:-1]


class DetMetrics(SummaryExports):
    """Accumulates per-image matches, then computes box metrics for the whole dataset.

    Usage: `update(correct, conf, pred_cls, target_cls)` once per image, `process()` once, then read
    `.box.map`, `.box.maps`, `.results_dict`, `.summary()`, `.to_csv()`. `speed` (ms per image),
    `confusion_matrix` and `save_dir` are filled in by the validator. `ap_method` picks the AP
    integration: "upstream" (8.4, the default), "upstream-8.3" (to compare with numbers printed by
    older upstream versions) or "coco" (pycocotools).
    """

    def __init__(self, names: dict[int, str] | None = None, ap_method: str = "upstream") -> None:
        if ap_method not in AP_METHODS:
            raise ValueError(f"ap_method '{ap_method}' is not known; use one of {', '.join(AP_METHODS)}")
        self.names: dict[int, str] = dict(names or {})
        self.ap_method = ap_method
        self.box = Metric(len(self.names))
        self.speed: dict[str, float] = {"preprocess": 0.0, "inference": 0.0, "loss": 0.0, "postprocess": 0.0}
        self.seen = 0
        self._stats: dict[str, list[np.ndarray]] = {"tp": [], "conf": [], "pred_cls": [], "target_cls": []}
        self._target_img: list[np.ndarray] = []
        self.nt_per_class = np.zeros(len(self.names), dtype=int)
        self.nt_per_image = np.zeros(len(self.names), dtype=int)
        self.confusion_matrix = ConfusionMatrix(self.names)
        self.save_dir = None  # the run folder when val saved anything (Path), as upstream

    # ------------------------------------------------------------------ accumulation
    def update(self, correct: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray) -> None:
        """One image: (n_pred, 10) bool matches, (n_pred,) confidences and classes, (n_true,) true classes."""
        self.seen += 1
        self._stats["tp"].append(np.asarray(correct, dtype=bool).reshape(-1, len(IOU_THRESHOLDS)))
        self._stats["conf"].append(np.asarray(conf, dtype=np.float64).reshape(-1))
        self._stats["pred_cls"].append(np.asarray(pred_cls, dtype=np.float64).reshape(-1))
        target = np.asarray(target_cls, dtype=np.float64).reshape(-1)
        self._stats["target_cls"].append(target)
        self._target_img.append(np.unique(target))

    @property
    def stats(self) -> dict[str, np.ndarray]:
        """Everything accumulated, concatenated: tp, conf, pred_cls, target_cls, target_img (upstream's keys)."""
        empty = {"tp": np.zeros((0, len(IOU_THRESHOLDS)), dtype=bool)}
        out = {k: np.concatenate(v) if v else empty.get(k, np.zeros(0)) for k, v in self._stats.items()}
        out["target_img"] = np.concatenate(self._target_img) if self._target_img else np.zeros(0)
        return out

    def process(self) -> DetMetrics:
        """Compute the metrics from everything accumulated so far; returns self."""
        stats = self.stats
        nc = max(len(self.names), int(stats["target_cls"].max()) + 1 if len(stats["target_cls"]) else 0)
        self.nt_per_class = np.bincount(stats["target_cls"].astype(int), minlength=nc)
        self.nt_per_image = np.bincount(stats["target_img"].astype(int), minlength=nc)
        self.box.nc = nc
        if len(stats["target_cls"]):
            result = ap_per_class(
                stats["tp"], stats["conf"], stats["pred_cls"], stats["target_cls"], method=self.ap_method
            )
            self.box.update(result)
        return self

    def above(self, conf: float, ap_method: str | None = None) -> DetMetrics:
        """The metrics of only the predictions with confidence > conf, without running the model again.

        Exact because matching is greedy in confidence order: a prediction's match never depends on
        less confident ones, so dropping the tail leaves every other match unchanged. `ap_method`
        re-scores with another AP integration (default: this one's).
        """
        out = DetMetrics(self.names, ap_method=ap_method or self.ap_method)
        for tp, c, cls, target in zip(*(self._stats[k] for k in ("tp", "conf", "pred_cls", "target_cls"))):
            keep = c > conf
            out.update(tp[keep], c[keep], cls[keep], target)
        out.speed = dict(self.speed)
        return out.process()

    # ------------------------------------------------------------------ results
    @property
    def keys(self) -> list[str]:
        return ["metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)"]

    @property
    def maps(self) -> np.ndarray:
        return self.box.maps

    @property
    def ap_class_index(self) -> np.ndarray:
        return self.box.ap_class_index

    @property
    def fitness(self) -> float:
        return self.box.fitness()

    @property
    def results_dict(self) -> dict[str, float]:
        return {**dict(zip(self.keys, self.box.mean_results())), "fitness": self.fitness}

    @property
    def curves(self) -> list[str]:
        return list(CURVE_NAMES)

    @property
    def curves_results(self) -> list[list]:
        return self.box.curves_results

    def mean_results(self) -> list[float]:
        return self.box.mean_results()

    def class_result(self, i: int) -> tuple[float, float, float, float]:
        return self.box.class_result(i)

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
        """One dict per scored class: name, images, instances, P, R, F1, mAP50, mAP75, mAP50-95.

        `normalize` is accepted for upstream's signature; box metrics have nothing to normalize.
        """
        rows = []
        ap75 = self.box.all_ap[:, 5] if len(self.box.all_ap) else np.zeros(0)
        for i, c in enumerate(self.box.ap_class_index):
            p, r, ap50, ap = self.box.class_result(i)
            rows.append(
                {
                    "Class": self.names.get(int(c), str(c)),
                    "Images": int(self.nt_per_image[c]),
                    "Instances": int(self.nt_per_class[c]),
                    "Box-P": round(p, decimals),
                    "Box-R": round(r, decimals),
                    "Box-F1": round(float(self.box.f1[i]), decimals),
                    "mAP50": round(ap50, decimals),
                    "mAP75": round(float(ap75[i]), decimals),
                    "mAP50-95": round(ap, decimals),
                }
            )
        return rows

    def table(self) -> str:
        """Upstream's validation table: an `all` row, then one row per class (when there are several)."""
        header = ("%22s" + "%11s" * 6) % ("Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)")
        row = "%22s%11i%11i" + "%11.3g" * 4
        lines = [header, row % ("all", self.seen, int(self.nt_per_class.sum()), *self.mean_results())]
        if len(self.names) > 1:
            for i, c in enumerate(self.box.ap_class_index):
                name = self.names.get(int(c), str(c))
                lines.append(row % (name, self.nt_per_image[c], self.nt_per_class[c], *self.class_result(i)))
        return "\n".join(lines)

    def __repr__(self) -> str:
        m = self.box
        return f"DetMetrics(mAP50-95={m.map:.4f}, mAP50={m.map50:.4f}, P={m.mp:.4f}, R={m.mr:.4f}, images={self.seen})"
