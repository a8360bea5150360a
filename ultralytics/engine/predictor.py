"""Prediction: source → letterbox → backend → NMS → Results.

The stages are separate methods so the validator, the benchmark and the GPU pipeline can reuse them,
and so each can be timed on its own (Results.speed).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ultralytics.data.augment import LetterBox
from ultralytics.data.loaders import load_inference_source
from ultralytics.engine.results import Results
from ultralytics.nn.autobackend import AutoBackend
from ultralytics.utils import LOGGER, IterableSimpleNamespace
from ultralytics.utils.files import run_dir
from ultralytics.utils.ops import Profile, filter_end2end, nms_free_requested, non_max_suppression, scale_boxes


def check_imgsz(imgsz: int | list[int] | tuple[int, ...], stride: int) -> tuple[int, int]:
    """[h, w] rounded up to multiples of the stride, with a warning when that changes it (as upstream)."""
    hw = [imgsz, imgsz] if isinstance(imgsz, int) else list(imgsz) * (2 if len(imgsz) == 1 else 1)
    fixed = [max(math.ceil(int(v) / stride) * stride, stride) for v in hw]
    if fixed != hw:
        LOGGER.warning(f"WARNING imgsz={list(hw)} must be a multiple of max stride {stride}, updating to {fixed}")
    return fixed[0], fixed[1]


class DetectionPredictor:
    """Runs one model over one source; cheap to create, one per call."""

    def __init__(self, cfg: IterableSimpleNamespace, model: AutoBackend):
        self.args = cfg
        self.model = model
        self.save_dir: Path | None = None
        self.imgsz = self._resolve_imgsz()
        if hasattr(model, "select_head"):  # YOLO26 .pt: nms=False selects the NMS-free one-to-one head
            model.select_head(
                nms_free_requested(cfg), max_det=max(int(cfg.max_det), 300), agnostic=bool(cfg.agnostic_nms)
            )
        self.gpu = None  # CUDA fast path (engine/gpu_pipeline.py): device letterbox, CUDA graphs, batched NMS
        # end2end output (B, N, 6) needs no NMS: until the CUDA pipeline skips its NMS stage for it, run the plain path
        if model.device.type == "cuda" and cfg.gpu_pipeline is not False and not getattr(model, "end2end", False):
            from ultralytics.engine.gpu_pipeline import GpuPipeline

            self.gpu = GpuPipeline(model, cfg)

    # ------------------------------------------------------------------ setup
    def _resolve_imgsz(self) -> tuple[int, int]:
        model = self.model
        if model.imgsz and not model.dynamic:
            wanted = self.args.imgsz
            fixed = tuple(model.imgsz)
            if wanted is not None and check_imgsz(wanted, model.stride) != fixed:
                LOGGER.warning(f"WARNING this model has a fixed input size {list(fixed)}; imgsz={wanted} is ignored")
            return fixed
        return check_imgsz(self.args.imgsz if self.args.imgsz is not None else 640, model.stride)

    # ------------------------------------------------------------------ stages
    def preprocess(self, images: list[np.ndarray] | torch.Tensor) -> torch.Tensor:
        """BGR HWC uint8 images → BCHW RGB 0..1 on the model's device, in the model's dtype."""
        if isinstance(images, torch.Tensor):  # already BCHW RGB 0..1 (upstream's tensor-source convention)
            return images.to(self.model.device, self.model.dtype)
        same_shapes = len({im.shape for im in images}) == 1
        auto = same_shapes and bool(self.args.rect) and (self.model.pt or self.model.dynamic)
        if self.gpu is not None:
            return self.gpu.preprocess(images, self.imgsz, auto=auto, stride=self.model.stride)
        letterbox = LetterBox(self.imgsz, auto=auto, stride=self.model.stride)
        batch = np.stack([letterbox(image=im) for im in images])
        batch = np.ascontiguousarray(batch[..., ::-1].transpose(0, 3, 1, 2))  # BGR→RGB, BHWC→BCHW
        tensor = torch.from_numpy(batch).to(self.model.device)
        tensor = tensor.half() if self.model.fp16 else tensor.float()
        return tensor / 255

    def inference(self, im: torch.Tensor) -> torch.Tensor:
        if self.gpu is not None:
            return self.gpu.inference(im)
        return self.model(im)

    def postprocess(
        self, preds: torch.Tensor, im: torch.Tensor, orig_imgs: list[np.ndarray], paths: list[str]
    ) -> list[Results]:
        if self.gpu is not None:
            return self.gpu.postprocess(preds, im, orig_imgs, paths)
        conf = self.args.conf if self.args.conf is not None else 0.25
        if getattr(self.model, "end2end", False):  # final (B, N, 6) detections: threshold only, no NMS
            dets = filter_end2end(preds, conf, _as_class_list(self.args.classes), int(self.args.max_det))
        else:
            dets = non_max_suppression(
                preds.float(),
                conf,
                self.args.iou,
                classes=_as_class_list(self.args.classes),
                agnostic=bool(self.args.agnostic_nms),
                max_det=int(self.args.max_det),
            )
        results = []
        for det, orig, path in zip(dets, orig_imgs, paths):
            det[:, :4] = scale_boxes(im.shape[2:], det[:, :4], orig.shape)
            results.append(Results(orig, path=path, names=self.model.names, boxes=det))
        return results

    # ------------------------------------------------------------------ driver
    def __call__(self, source: Any = None, stream: bool = False) -> list[Results] | Iterator[Results]:
        gen = self.stream_inference(source)
        return gen if stream else list(gen)

    def stream_inference(self, source: Any) -> Iterator[Results]:
        args = self.args
        batches = load_inference_source(source, batch=int(args.batch or 1), vid_stride=int(args.vid_stride or 1))
        profilers = (Profile(self.model.device), Profile(self.model.device), Profile(self.model.device))
        if self.gpu is not None:  # decode + upload ahead, overlap batches, time stages with CUDA events
            profilers = self.gpu.stage_timers(3) or profilers
            stages = self.gpu.pipelined(
                self.gpu.prefetch(batches), profilers, self.preprocess, self.inference, _originals
            )
        else:
            stages = self._run_batches(batches, profilers)
        seen = 0
        shape = None
        writers: dict[str, cv2.VideoWriter] = {}
        try:
            for _paths, _images, infos, im, results in stages:
                n = len(results)
                seen += n
                shape = tuple(im.shape)
                for i, r in enumerate(results):
                    r.speed = {
                        "preprocess": profilers[0].dt * 1e3 / n,
                        "inference": profilers[1].dt * 1e3 / n,
                        "postprocess": profilers[2].dt * 1e3 / n,
                    }
                    if args.verbose:
                        LOGGER.info(
                            f"{infos[i]}{im.shape[2]}x{im.shape[3]} {r.verbose() or '(no detections), '}{r.speed['inference']:.1f}ms"
                        )
                    if args.save or args.save_txt:
                        self._save(r, infos[i], writers)
                    yield r
        finally:
            for w in writers.values():
                w.release()
        if args.verbose and seen:
            t = tuple(p.total * 1e3 / seen for p in profilers)
            LOGGER.info(
                f"Speed: {t[0]:.1f}ms preprocess, {t[1]:.1f}ms inference, {t[2]:.1f}ms postprocess per image at shape {shape}"
            )
            if self.save_dir is not None:
                LOGGER.info(f"Results saved to {self.save_dir}")

    def _run_batches(self, batches, profilers) -> Iterator[tuple]:
        """The stages one batch after another: (paths, images, infos, im, results) per batch."""
        for paths, images, infos in batches:
            with profilers[0]:
                im = self.preprocess(images)
            with profilers[1]:
                preds = self.inference(im)
            with profilers[2]:
                results = self.postprocess(preds, im, _originals(images), paths)
            yield paths, images, infos, im, results

    # ------------------------------------------------------------------ saving
    def _ensure_save_dir(self) -> Path:
        if self.save_dir is None:
            self.save_dir = run_dir(self.args.project, self.args.name, "predict", bool(self.args.exist_ok))
            self.save_dir.mkdir(parents=True, exist_ok=True)
        return self.save_dir

    def _save(self, r: Results, info: str, writers: dict[str, cv2.VideoWriter]) -> None:
        save_dir = self._ensure_save_dir()
        stem = Path(r.path).stem or "image0"
        is_video = info.startswith("video")
        frame = _frame_number(info) if is_video else None
        if self.args.save_txt:
            txt = save_dir / "labels" / (f"{stem}_{frame}.txt" if is_video else f"{stem}.txt")
            txt.parent.mkdir(parents=True, exist_ok=True)
            r.save_txt(txt, save_conf=bool(self.args.save_conf))
        if not self.args.save:
            return
        plotted = r.plot(
            conf=bool(self.args.show_conf),
            labels=bool(self.args.show_labels),
            boxes=bool(self.args.show_boxes),
            line_width=self.args.line_width,
        )
        if is_video:
            out = str(save_dir / f"{stem}.mp4")
            if out not in writers:
                h, w = plotted.shape[:2]
                writers[out] = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
            writers[out].write(plotted)
        else:
            name = Path(r.path).name if Path(r.path).suffix else f"{stem}.jpg"
            cv2.imwrite(str(save_dir / name), plotted)


def _frame_number(info: str) -> int:
    """'video 1/1 (frame 3/120) path: ' → 3."""
    try:
        return int(info.split("(frame ")[1].split("/")[0])
    except (IndexError, ValueError):
        return 0


def _as_class_list(classes: Any) -> list[int] | None:
    if classes is None:
        return None
    return [int(c) for c in classes] if isinstance(classes, list | tuple) else [int(classes)]


def _originals(images: list[np.ndarray] | torch.Tensor) -> list[np.ndarray]:
    """The images Results keep: the BGR arrays as loaded, or a tensor source turned back into them."""
    return _tensor_to_bgr(images) if isinstance(images, torch.Tensor) else images


def _tensor_to_bgr(batch: torch.Tensor) -> list[np.ndarray]:
    """BCHW RGB 0..1 tensor → list of HWC BGR uint8 arrays (the 'original images' of a tensor source)."""
    arr = (batch.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    return [np.ascontiguousarray(a.transpose(1, 2, 0)[..., ::-1]) for a in arr]
