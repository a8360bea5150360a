"""`val`: a labelled dataset split → predictions of any format → mAP with upstream's protocol.

Upstream's val pipeline is reproduced where it changes the numbers, so an mAP here compares with
one printed by upstream for the same model and data:
- images are first resized so their long side is `imgsz` (INTER_AREA when shrinking), then
  letterboxed without upscaling;
- PyTorch models use "rect" batches: images are ordered by aspect ratio and each batch
  is padded to the smallest stride multiple that fits it plus half a stride, as upstream does;
  static exported models get the full square `imgsz` and their own batch size (from the model);
- NMS keeps every class above `conf` per box (multi-label), conf=0.001, iou=0.7, max_det=300;
- predictions and labels are compared in the letterboxed input's pixels, predictions unclipped
  (upstream 8.3+; clipping to the image would raise IoU for objects at the border).

Speed (ms per image, like upstream's): preprocess = letterbox + batch to tensor on the device;
inference = the model call; postprocess = NMS + mapping boxes back. Image decoding runs ahead in
worker threads and is not counted, as in upstream's dataloader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ultralytics.cfg import get_cfg, resolve_precision
from ultralytics.data.augment import LetterBox, images_to_tensor, resolve_imgsz
from ultralytics.data.dataset import LabelledSplit, load_dataset_yaml, load_split
from ultralytics.data.loaders import imread
from ultralytics.utils import LOGGER, IterableSimpleNamespace
from ultralytics.utils.atomic_file import atomic_write
from ultralytics.utils.callbacks import default_callbacks, run_callbacks
from ultralytics.utils.files import run_dir
from ultralytics.utils.metrics import DetMetrics, box_iou, match_predictions
from ultralytics.utils.ops import (
    Profile,
    filter_end2end,
    nms_free_requested,
    non_max_suppression,
    scale_boxes,
    xywh2xyxy,
)
from ultralytics.utils.torch_utils import select_device

VAL_DEFAULTS: dict[str, Any] = {"conf": 0.001, "iou": 0.7, "batch": 16, "rect": True, "max_det": 300}
RECT_PAD = 0.5  # upstream pads val rect batches by half a stride


@dataclass
class Placement:
    """Where one image sits in the letterboxed input: scaled size (w, h), padding, original (h0, w0)."""

    w: float
    h: float
    left: int
    top: int
    orig_shape: tuple[int, int]


@dataclass
class ValBatch:
    """Decoded images of one batch, resized so the long side is imgsz (not yet letterboxed)."""

    indices: list[int]
    images: list[np.ndarray]
    orig_shapes: list[tuple[int, int]]
    shape: tuple[int, int]  # (h, w) the batch is letterboxed to


def load_resized(path: Path, imgsz: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode an image and resize its long side to imgsz (upstream's val loader); returns (image, (h0, w0))."""
    image = imread(path)
    h0, w0 = image.shape[:2]
    r = imgsz / max(h0, w0)
    if r != 1:
        size = (min(math.ceil(w0 * r), imgsz), min(math.ceil(h0 * r), imgsz))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR if r > 1 else cv2.INTER_AREA)
    return image, (h0, w0)


def rect_batches(
    shapes: list[tuple[int, int]], batch: int, imgsz: int, stride: int
) -> list[tuple[list[int], tuple[int, int]]]:
    """Upstream's rect val batching: images sorted by aspect ratio (h/w), each batch padded to fit its extremes."""
    aspect = np.array([h / w for h, w in shapes])
    order = aspect.argsort()
    out = []
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        lo, hi = aspect[idx].min(), aspect[idx].max()
        rel = (hi, 1.0) if hi < 1 else (1.0, 1 / lo) if lo > 1 else (1.0, 1.0)
        hw = tuple(int(math.ceil(v * imgsz / stride + RECT_PAD) * stride) for v in rel)
        out.append(([int(i) for i in idx], (hw[0], hw[1])))
    return out


def image_shape(path: Path) -> tuple[int, int]:
    """(h, w) without decoding the pixels when possible (PIL reads the header only)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
        return h, w
    except Exception:  # fall back to a full decode; imread raises a clear error for broken files
        return imread(path).shape[:2]


class DetectionValidator:
    """Validates one model on one dataset split; `run(model)` returns DetMetrics.

    `cfg` is a config namespace (from YOLO.val / the CLI) or a dict of overrides; keyword overrides
    apply on top. Unset conf/batch get val's defaults (0.001, 16).
    """

    def __init__(
        self,
        cfg: IterableSimpleNamespace | dict[str, Any] | None = None,
        callbacks: dict[str, list] | None = None,
        **overrides: Any,
    ):
        if isinstance(cfg, IterableSimpleNamespace):
            merged = {k: v for k, v in vars(cfg).items()}
            explicit = set(overrides)
        else:
            explicit = set(cfg or {}) | set(overrides)
            merged = vars(get_cfg({**VAL_DEFAULTS, **(cfg or {}), "mode": "val"}))
        merged.update(overrides)
        for key, value in VAL_DEFAULTS.items():
            if merged.get(key) is None:
                merged[key] = value
        self.args = get_cfg(merged)
        self._imgsz_explicit = "imgsz" in explicit or isinstance(cfg, IterableSimpleNamespace)
        self.metrics: DetMetrics | None = None
        self.save_dir: Path | None = None
        self.predictions: list[dict[str, Any]] = []
        self.callbacks = callbacks if callbacks is not None else default_callbacks()
        self.batch: ValBatch | None = None  # the batch being validated (callbacks read it)
        self.preds: list[torch.Tensor] | None = None

    # ------------------------------------------------------------------ setup
    def _backend(self, model: Any):
        """An AutoBackend for a YOLO, a path, a DetectionModel or an AutoBackend."""
        from ultralytics.nn.autobackend import AutoBackend, backend_for

        if isinstance(model, AutoBackend):
            return model
        device = select_device(self.args.device)
        precision = resolve_precision(
            self.args.half, False, self.args.quantize if self._is_16(self.args.quantize) else None
        )
        fp16 = precision == 16
        return backend_for(model, device, fp16)

    @staticmethod
    def _is_16(quantize: Any) -> bool:
        return str(quantize).lower() in ("16", "fp16", "half", "w16a16")

    def _imgsz(self, backend) -> tuple[int, int]:
        """The network input size by predict's rule; unless imgsz= was given, a dynamic export's training size."""
        imgsz = self.args.imgsz
        if not self._imgsz_explicit and backend.metadata.get("train_imgsz"):
            imgsz = backend.metadata["train_imgsz"]
        return resolve_imgsz(backend, imgsz, explicit=self._imgsz_explicit)

    def _check_names(self, backend, data: dict) -> dict[int, str]:
        model_names, data_names = dict(backend.names), dict(data["names"])
        if len(model_names) != len(data_names):
            raise ValueError(
                f"the model predicts {len(model_names)} classes but the dataset {Path(data['yaml_file']).name} has "
                f"{len(data_names)}: validate on the dataset the model was trained for"
            )
        if model_names != data_names:
            LOGGER.warning(f"WARNING class names differ between the model {model_names} and the dataset {data_names}")
        return data_names

    # ------------------------------------------------------------------ batches
    def _plan(self, split: LabelledSplit, backend, imgsz: tuple[int, int]) -> list[tuple[list[int], tuple[int, int]]]:
        """Which images go in which batch, and each batch's letterbox shape."""
        static_batch = int(getattr(backend, "static_batch", 0) or 0)
        batch = static_batch or max(1, int(self.args.batch or 1))
        if static_batch and self.args.batch not in (None, static_batch):
            LOGGER.info(f"val uses batch={static_batch}, the fixed batch size of this model")
        # rect only for PyTorch: its batches can be up to half a stride larger than imgsz, which a dynamic
        # engine's optimisation profile may not allow
        rect = bool(self.args.rect) and backend.pt and imgsz[0] == imgsz[1]
        if not rect:
            return [(list(range(i, min(i + batch, len(split)))), imgsz) for i in range(0, len(split), batch)]
        shapes = [image_shape(p) for p in split.im_files]
        return rect_batches(shapes, batch, imgsz[0], int(backend.stride))

    def _batches(self, split: LabelledSplit, plan, long_side: int) -> Iterator[ValBatch]:
        """Decode the next batch in worker threads while the current one runs."""
        workers = max(1, min(int(self.args.workers or 1), 8))

        def submit(pool: ThreadPoolExecutor, k: int) -> list[Future]:
            return [pool.submit(load_resized, split.im_files[i], long_side) for i in plan[k][0]]

        with ThreadPoolExecutor(workers) as pool:
            pending = submit(pool, 0) if plan else []
            for k, (indices, shape) in enumerate(plan):
                loaded = [f.result() for f in pending]
                if k + 1 < len(plan):
                    pending = submit(pool, k + 1)
                yield ValBatch(indices, [im for im, _ in loaded], [s for _, s in loaded], shape)

    def preprocess(self, batch: ValBatch, backend, stride: int) -> tuple[torch.Tensor, list[Placement]]:
        """Letterbox (no upscaling) to the batch shape; returns the tensor and where each image landed."""
        letterbox = LetterBox(batch.shape, auto=False, scaleup=False, stride=stride)
        canvases, placements = [], []
        for image, (h0, w0) in zip(batch.images, batch.orig_shapes):
            p = letterbox.params(image.shape[:2])
            canvases.append(letterbox(image))
            h, w = image.shape[:2]  # after the long-side resize
            placements.append(Placement(w * p.ratio[0], h * p.ratio[1], p.left, p.top, (h0, w0)))
        return images_to_tensor(canvases, backend.device, backend.fp16), placements

    def postprocess(self, preds: torch.Tensor, end2end: bool = False) -> list[torch.Tensor]:
        """NMS (or, for end-to-end output, thresholding only); boxes stay in input pixels (see the module docstring)."""
        if end2end:
            return filter_end2end(preds, float(self.args.conf), max_det=int(self.args.max_det))
        return non_max_suppression(
            preds.float(),
            float(self.args.conf),
            float(self.args.iou),
            multi_label=True,
            agnostic=bool(self.args.agnostic_nms),
            max_det=int(self.args.max_det),
        )

    # ------------------------------------------------------------------ driver
    def run(self, model: Any) -> DetMetrics:
        """Validate `model` (YOLO, path, DetectionModel or AutoBackend) on data=/split=; print and return metrics."""
        args = self.args
        if not args.data:
            raise ValueError("val needs a dataset: pass data=<dataset.yaml>, e.g. data=path/to/shapes.yaml")
        if args.plots:
            check_plots()  # before any slow work
        data = load_dataset_yaml(args.data)
        split = load_split(data, args.split or "val")
        backend = self._backend(model)
        if hasattr(backend, "select_head"):  # YOLO26 .pt: nms=False validates the NMS-free one-to-one head
            backend.select_head(nms_free_requested(args), max_det=int(args.max_det), agnostic=bool(args.agnostic_nms))
        names = self._check_names(backend, data)
        imgsz = self._imgsz(backend)
        stride = int(backend.stride)
        plan = self._plan(split, backend, imgsz)
        metrics = DetMetrics(names)
        self.metrics = metrics
        self.save_dir = run_dir(args.project, args.name, "val", bool(args.exist_ok))
        self.predictions = []
        self._coco_ids = _is_coco(data, args.split or "val")
        run_callbacks(self.callbacks, "on_val_start", self)
        if plan:  # one untimed pass, so lazy initialisation (sessions, kernels, allocator) is not timed
            with torch.no_grad():
                backend(torch.zeros((len(plan[0][0]), 3, *plan[0][1]), dtype=backend.dtype, device=backend.device))
        timers = [Profile(backend.device) for _ in range(3)]
        progress = _progress(len(plan), bool(args.verbose), f"val {Path(data['yaml_file']).name} {args.split}")
        for batch in self._batches(split, plan, max(imgsz)):
            self.batch = batch
            run_callbacks(self.callbacks, "on_val_batch_start", self)
            with timers[0]:
                im, placements = self.preprocess(batch, backend, stride)
            with timers[1]:
                preds = backend(im)
            with timers[2]:
                dets = self.postprocess(preds, end2end=getattr(backend, "end2end", False))
            for i, det, placement in zip(batch.indices, dets, placements):
                self._update(metrics, det.cpu(), split.labels[i], placement, split.im_files[i], im.shape[2:])
            self.preds = dets
            run_callbacks(self.callbacks, "on_val_batch_end", self)
            progress.update(1)
        progress.close()
        metrics.process()
        seen = max(metrics.seen, 1)
        metrics.speed = {
            "preprocess": timers[0].total * 1e3 / seen,
            "inference": timers[1].total * 1e3 / seen,
            "loss": 0.0,
            "postprocess": timers[2].total * 1e3 / seen,
        }
        self._report(metrics, plan)
        if args.save_json or args.plots:
            self.save_dir.mkdir(parents=True, exist_ok=True)
        metrics.save_dir = self.save_dir
        if args.save_json:
            self._save_json()
        if args.plots:
            from ultralytics.utils.plotting import plot_confusion_matrix, plot_curves

            plot_curves(metrics, self.save_dir)
            plot_confusion_matrix(metrics.confusion_matrix, self.save_dir)
        if args.save_json or args.plots:
            LOGGER.info(f"Results saved to {self.save_dir}")
        run_callbacks(self.callbacks, "on_val_end", self)
        return metrics

    def _update(
        self, metrics: DetMetrics, det: torch.Tensor, labels: np.ndarray, at: Placement, file: Path, input_hw
    ) -> None:
        """Match one image's predictions to its labels, both in the letterboxed input's pixels."""
        gt_cls = labels[:, 0]
        gt_boxes = xywh2xyxy(labels[:, 1:5].astype(np.float64)) * np.array([at.w, at.h, at.w, at.h])
        gt_boxes += np.array([at.left, at.top, at.left, at.top])
        if len(det) and len(labels):
            correct = match_predictions(det[:, 5].numpy(), gt_cls, box_iou(gt_boxes, det[:, :4]).numpy())
        else:
            correct = np.zeros((len(det), 10), dtype=bool)
        metrics.update(correct, det[:, 4].numpy(), det[:, 5].numpy(), gt_cls)
        metrics.confusion_matrix.process_batch(
            det[:, :4].numpy(), det[:, 4].numpy(), det[:, 5].numpy(), gt_boxes, gt_cls, conf_thres=float(self.args.conf)
        )
        if self.args.save_json:  # original-image pixels, clipped, like predict's boxes
            h0, w0 = at.orig_shape
            ratio_pad = ((at.w / w0, at.h / h0), (at.left, at.top))
            boxes = scale_boxes(tuple(input_hw), det[:, :4].clone(), at.orig_shape, ratio_pad=ratio_pad)
            out = torch.cat((boxes, det[:, 4:6]), 1)
            self.predictions.append({"file": str(file), "shape": [h0, w0], "det": out.numpy().tolist()})

    def _report(self, metrics: DetMetrics, plan) -> None:
        table = metrics.table()
        LOGGER.info(table if self.args.verbose else "\n".join(table.splitlines()[:2]))
        s = metrics.speed
        shape = (len(plan[0][0]), 3, *plan[0][1]) if plan else None
        LOGGER.info(
            f"Speed: {s['preprocess']:.1f}ms preprocess, {s['inference']:.1f}ms inference, {s['loss']:.1f}ms loss, "
            f"{s['postprocess']:.1f}ms postprocess per image (first batch shape {shape})"
        )

    def _save_json(self) -> None:
        """COCO-style predictions: image_id = file stem, bbox = x, y, w, h, and category_id numbered as
        upstream numbers it: class + 1, or COCO's 91-id numbering when validating on COCO val2017."""
        records = []
        for p in self.predictions:
            stem = Path(p["file"]).stem
            image_id = int(stem) if stem.isnumeric() else stem
            for x1, y1, x2, y2, conf, cls in p["det"]:
                records.append(
                    {
                        "image_id": image_id,
                        "file_name": Path(p["file"]).name,
                        "category_id": COCO80_TO_91[int(cls)] if self._coco_ids else int(cls) + 1,
                        "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                        "score": round(conf, 5),
                    }
                )
        out = self.save_dir / "predictions.json"
        atomic_write(out, json.dumps(records))  # utils/atomic_file: a full disk never leaves half a JSON
        LOGGER.info(f"Saving {out}")


# COCO's category ids for the 80 classes YOLO numbers 0..79 (COCO's ids have gaps up to 90).
COCO80_TO_91 = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
    35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)  # fmt: skip


def _is_coco(data: dict, split: str) -> bool:
    """Upstream switches to COCO's ids for the COCO val2017 split of an 80-class dataset."""
    source = str(data.get(split, "") or "")
    return len(data.get("names", {})) == 80 and "coco" in source.lower() and "val2017" in source


def check_plots() -> None:
    """plots=True draws with matplotlib, an optional dependency: say so before validating."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "val plots=True draws with matplotlib: pip install matplotlib (or pass plots=False)"
        ) from None


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, verbose: bool, desc: str):
    if not verbose:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False)
