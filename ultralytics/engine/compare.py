"""`yolo compare`: does an exported model still agree with the model it came from?

Both models see the same letterboxed tensors (square, at the size a static model requires), so their
raw head outputs line up anchor by anchor and can be compared directly:
- box rows (xywh pixels) and class-score rows (0..1) are reported separately, because an absolute
  difference means different things for each: max and mean |a - b|, and the relative difference
  ||a - b|| / ||a|| of each part;
- after NMS (conf, iou as for predict), each detection of one model is matched one-to-one to a
  detection of the other with the same class and IoU >= 0.9; the share matched is reported both
  ways (a → b: how many of a's detections b reproduces, b → a: how many of b's are explained by a).
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm import tqdm

from ultralytics.cfg import get_cfg, resolve_precision
from ultralytics.data.augment import LetterBox, check_imgsz, images_to_tensor
from ultralytics.data.loaders import load_inference_source
from ultralytics.utils import ASSETS, LOGGER, IterableSimpleNamespace
from ultralytics.utils.metrics import box_iou
from ultralytics.utils.ops import non_max_suppression
from ultralytics.utils.torch_utils import select_device

MATCH_IOU = 0.9


def compare_models(
    model_a: Any, model_b: Any, cfg: IterableSimpleNamespace | dict[str, Any] | None = None, **overrides: Any
) -> dict[str, Any]:
    """Compare two models (YOLO objects or paths: .pt, .onnx, .engine) on `source`; print and return a report.

    Config keys: source (images; the bundled ones when unset), imgsz, device, half/quantize (for the
    models that take it), conf (0.25), iou (0.7), batch. Returns the summary numbers plus `per_image`.
    """
    args = _compare_args(cfg, overrides)
    device = select_device(args.device)
    fp16 = (
        resolve_precision(args.half, False, args.quantize if str(args.quantize).lower() in ("16", "fp16") else None)
        == 16
    )
    a, b = _backend(model_a, device, fp16), _backend(model_b, device, fp16)
    if a.names and b.names and len(a.names) != len(b.names):
        raise ValueError(f"the models predict different numbers of classes ({len(a.names)} vs {len(b.names)})")
    imgsz = _common_imgsz(a, b, args.imgsz)
    stride = max(int(a.stride), int(b.stride))
    source = args.source if args.source is not None else str(ASSETS)
    conf = float(args.conf) if args.conf is not None else 0.25
    letterbox = LetterBox(imgsz, auto=False, stride=stride)
    box_diffs, score_diffs = [], []
    norms = {"box_diff": 0.0, "box_ref": 0.0, "score_diff": 0.0, "score_ref": 0.0}
    per_image = []
    counts = {"a": 0, "b": 0, "a_matched": 0, "b_matched": 0}
    loader = load_inference_source(source, batch=int(args.batch or 1))
    # Two models per batch can take seconds each (an engine's first call, a large folder): show progress.
    for paths, images, _ in tqdm(loader, desc="compare", unit="batch", leave=False, total=_length(loader)):
        if isinstance(images, torch.Tensor):
            raise ValueError("compare needs image files or arrays as source, not a tensor")
        # converted on the CPU (as predict's CPU path does), uploaded once for both models
        tensor = images_to_tensor([letterbox(image=im) for im in images], "cpu").to(device)
        with torch.no_grad():
            out_a = a(tensor).float().cpu().clone()
            out_b = b(tensor).float().cpu().clone()
        if out_a.shape != out_b.shape:
            raise ValueError(f"the models' raw outputs differ in shape: {tuple(out_a.shape)} vs {tuple(out_b.shape)}")
        diff = (out_a - out_b).abs()
        box_diffs.append(diff[:, :4].flatten())
        score_diffs.append(diff[:, 4:].flatten())
        norms["box_diff"] += float((out_a[:, :4] - out_b[:, :4]).pow(2).sum())
        norms["box_ref"] += float(out_a[:, :4].pow(2).sum())
        norms["score_diff"] += float((out_a[:, 4:] - out_b[:, 4:]).pow(2).sum())
        norms["score_ref"] += float(out_a[:, 4:].pow(2).sum())
        dets_a = non_max_suppression(out_a, conf, float(args.iou), max_det=int(args.max_det))
        dets_b = non_max_suppression(out_b, conf, float(args.iou), max_det=int(args.max_det))
        for path, da, db, d in zip(paths, dets_a, dets_b, diff):
            matched = matched_detections(da, db)
            counts["a"] += len(da)
            counts["b"] += len(db)
            counts["a_matched"] += matched
            counts["b_matched"] += matched
            per_image.append(
                {
                    "image": str(path),
                    "detections_a": len(da),
                    "detections_b": len(db),
                    "matched": matched,
                    "box_max_abs": float(d[:4].max()),
                    "score_max_abs": float(d[4:].max()),
                }
            )
    if not per_image:
        raise ValueError(f"source={source!r} contains no images to compare")
    box_all, score_all = torch.cat(box_diffs), torch.cat(score_diffs)
    report = {
        "model_a": _name(model_a),
        "model_b": _name(model_b),
        "images": len(per_image),
        "imgsz": list(imgsz),
        "box_max_abs": float(box_all.max()),
        "box_mean_abs": float(box_all.mean()),
        "box_rel": (norms["box_diff"] / max(norms["box_ref"], 1e-12)) ** 0.5,
        "score_max_abs": float(score_all.max()),
        "score_mean_abs": float(score_all.mean()),
        "score_rel": (norms["score_diff"] / max(norms["score_ref"], 1e-12)) ** 0.5,
        "detections_a": counts["a"],
        "detections_b": counts["b"],
        "matched": counts["a_matched"],
        "matched_a_in_b": counts["a_matched"] / counts["a"] if counts["a"] else 1.0,
        "matched_b_in_a": counts["b_matched"] / counts["b"] if counts["b"] else 1.0,
        "match_iou": MATCH_IOU,
        "conf": conf,
        "per_image": per_image,
    }
    LOGGER.info(format_report(report))
    return report


def matched_detections(det_a: torch.Tensor, det_b: torch.Tensor, iou_threshold: float = MATCH_IOU) -> int:
    """How many detections pair up one-to-one (same class, IoU >= threshold), most confident of `a` first."""
    if not len(det_a) or not len(det_b):
        return 0
    iou = box_iou(det_a[:, :4], det_b[:, :4])
    iou[det_a[:, 5:6] != det_b[:, 5].unsqueeze(0)] = 0
    taken = torch.zeros(len(det_b), dtype=torch.bool)
    matched = 0
    for i in torch.argsort(det_a[:, 4], descending=True).tolist():
        row = iou[i].masked_fill(taken, -1)
        j = int(row.argmax())
        if row[j] >= iou_threshold:
            taken[j] = True
            matched += 1
    return matched


def format_report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Compared {r['model_a']} (a) with {r['model_b']} (b) on {r['images']} images at imgsz={r['imgsz']}",
            "raw outputs (same input tensors):",
            f"  boxes  (px):  max |a-b| {r['box_max_abs']:.4g}, mean {r['box_mean_abs']:.4g}, relative {r['box_rel']:.3g}",
            f"  scores (0-1): max |a-b| {r['score_max_abs']:.4g}, mean {r['score_mean_abs']:.4g}, relative {r['score_rel']:.3g}",
            f"detections (conf>{r['conf']}, matched = same class and IoU>={r['match_iou']}):",
            f"  a: {r['detections_a']}, b: {r['detections_b']}, matched: {r['matched']}",
            f"  a found by b: {100 * r['matched_a_in_b']:.1f}%   b found by a: {100 * r['matched_b_in_a']:.1f}%",
        ]
    )


def _compare_args(cfg, overrides: dict[str, Any]) -> IterableSimpleNamespace:
    if isinstance(cfg, IterableSimpleNamespace):
        return IterableSimpleNamespace(**{**vars(cfg), **overrides})
    return get_cfg({**(cfg or {}), **overrides, "mode": "compare"})


def _backend(model: Any, device: torch.device, fp16: bool):
    from ultralytics.nn.autobackend import backend_for

    return backend_for(model, device, fp16)


def _common_imgsz(a, b, imgsz: Any) -> tuple[int, int]:
    """The static model's size when there is one (both must agree), else imgsz (default 640)."""
    fixed = {tuple(int(v) for v in m.imgsz) for m in (a, b) if m.imgsz and not m.dynamic}
    if len(fixed) > 1:
        raise ValueError(f"the models have different fixed input sizes {sorted(fixed)}; export them at the same imgsz")
    if fixed:
        return fixed.pop()
    if imgsz is None:
        imgsz = a.metadata.get("train_imgsz") or b.metadata.get("train_imgsz") or 640
    return check_imgsz(imgsz, max(int(a.stride), int(b.stride)))


def _name(model: Any) -> str:
    return str(getattr(model, "model_path", model))


def _length(loader: Any) -> int | None:
    """The number of batches when the source knows it (files), else None (streams)."""
    try:
        return len(loader)
    except TypeError:
        return None
