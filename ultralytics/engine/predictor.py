"""Prediction: source → letterbox → backend → NMS → Results.

The stages are separate methods so the validator, the benchmark and the GPU pipeline can reuse them,
and so each can be timed on its own (Results.speed).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ultralytics.data.augment import (  # noqa: F401 - check_imgsz/resolve_imgsz/tensor_to_bgr: their old home
    LetterBox,
    check_imgsz,
    images_to_tensor,
    originals,
    rect_padding,
    resolve_imgsz,
    tensor_to_bgr,
)
from ultralytics.data.loaders import InferenceSource, load_inference_source
from ultralytics.engine.results import Results
from ultralytics.gpu.channels_last import model_layout, network_input
from ultralytics.nn.autobackend import AutoBackend
from ultralytics.utils import LOGGER, IterableSimpleNamespace
from ultralytics.utils.atomic_file import atomic_write
from ultralytics.utils.callbacks import default_callbacks, run_callbacks
from ultralytics.utils.files import run_dir
from ultralytics.utils.ops import Profile, filter_end2end, nms_free_requested, non_max_suppression, scale_boxes
from ultralytics.utils.settings import settings


class CpuStages:
    """Upstream's path, stage after stage: OpenCV letterbox, the backend, `ops` NMS, Results."""

    def __init__(self, model: AutoBackend, args: Any, imgsz: tuple[int, int]):
        self.model, self.args, self.imgsz = model, args, imgsz

    def timers(self) -> tuple:
        return tuple(Profile(self.model.device) for _ in range(3))

    def preprocess(self, images: list[np.ndarray] | torch.Tensor) -> torch.Tensor:
        """BGR HWC uint8 images → BCHW RGB 0..1 on the model's device, in the model's dtype."""
        if isinstance(images, torch.Tensor):  # already BCHW RGB 0..1 (upstream's tensor-source convention)
            return images.to(self.model.device, self.model.dtype)
        letterbox = LetterBox(self.imgsz, auto=rect_padding(images, self.args, self.model), stride=self.model.stride)
        return images_to_tensor([letterbox(image=im) for im in images], self.model.device, self.model.fp16)

    def inference(self, im: torch.Tensor) -> torch.Tensor:
        # the backend is shared with the CUDA pipeline, which may have made its network channels-last
        return self.model(network_input(im, model_layout(self.model)))

    def postprocess(
        self, preds: torch.Tensor, im: torch.Tensor, orig_imgs: list[np.ndarray], paths: list[str]
    ) -> list[Results]:
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

    def run(self, batches: Any, profilers: tuple) -> Iterator[tuple]:
        """(paths, images, infos, im, results) per batch, one batch after another."""
        for paths, images, infos in batches:
            with profilers[0]:
                im = self.preprocess(images)
            with profilers[1]:
                preds = self.inference(im)
            with profilers[2]:
                results = self.postprocess(preds, im, originals(images), paths)
            yield paths, images, infos, im, results


class DetectionPredictor:
    """Runs one model over one source; cheap to create, one per call.

    The stages (CpuStages, or on CUDA engine/gpu_pipeline.GpuStages) are chosen once here; the driver
    runs them over the source's batches and turns their output into logged, saved, timed Results.
    """

    def __init__(
        self,
        cfg: IterableSimpleNamespace,
        model: AutoBackend,
        explicit: set[str] | None = None,
        callbacks: dict | None = None,
    ):
        self.args = cfg
        self.model = model
        self.callbacks = callbacks if callbacks is not None else default_callbacks()  # upstream's events
        self.batch = self.results = None  # the batch in flight, for callbacks
        self.dataset: InferenceSource | None = None  # the source being read (upstream's name)
        self.save_dir: Path | None = None
        settings()  # a bad switch is one line here, not an error inside a decode thread mistaken for a bad image
        self.imgsz = resolve_imgsz(model, cfg.imgsz, explicit=explicit is None or "imgsz" in explicit)
        if hasattr(model, "select_head"):  # YOLO26 .pt: nms=False selects the NMS-free one-to-one head
            model.select_head(
                nms_free_requested(cfg), max_det=max(int(cfg.max_det), 300), agnostic=bool(cfg.agnostic_nms)
            )
        self.stages: Any = CpuStages(model, cfg, self.imgsz)
        if model.device.type == "cuda" and cfg.gpu_pipeline is not False:
            from ultralytics.engine.gpu_pipeline import GpuStages

            self.stages = GpuStages(model, cfg, self.imgsz)

    @property
    def gpu(self) -> Any:
        """The device stages when they run (None on the CPU path); assigning None selects the CPU path."""
        return None if isinstance(self.stages, CpuStages) else self.stages

    @gpu.setter
    def gpu(self, stages: Any) -> None:
        self.stages = CpuStages(self.model, self.args, self.imgsz) if stages is None else stages

    # ------------------------------------------------------------------ stages (validator, benchmarks)
    def preprocess(self, images: list[np.ndarray] | torch.Tensor) -> torch.Tensor:
        return self.stages.preprocess(images)

    def inference(self, im: torch.Tensor) -> torch.Tensor:
        return self.stages.inference(im)

    def postprocess(
        self, preds: torch.Tensor, im: torch.Tensor, orig_imgs: list[np.ndarray], paths: list[str]
    ) -> list[Results]:
        return self.stages.postprocess(preds, im, orig_imgs, paths)

    # ------------------------------------------------------------------ driver
    def __call__(self, source: Any = None, stream: bool = False) -> list[Results] | Iterator[Results]:
        gen = self.stream_inference(source)
        return gen if stream else list(gen)

    def warmup(self) -> None:
        """Upstream's warm-up before the first timed batch (once per backend): lazy CUDA/cuDNN set-up
        stays out of the first call's Speed line."""
        if getattr(self.model, "warmed_up", False) or self.model.device.type == "cpu":
            return  # upstream skips the warm-up on the CPU too
        state = getattr(self.gpu, "state", None)  # the CUDA pipeline: the network's input layout
        self.model.warmup((1, 3, *self.imgsz), getattr(state, "memory_format", None))
        self.model.warmed_up = True

    def stream_inference(self, source: Any) -> Iterator[Results]:
        args = self.args
        if isinstance(source, InferenceSource):  # already resolved (e.g. with list_as_one_batch=False)
            batches = source
        else:
            batches = load_inference_source(source, batch=int(args.batch or 1), vid_stride=int(args.vid_stride or 1))
        self.dataset = batches  # whoever reads its videos records their fps there; saving uses it
        if getattr(args, "gpu_decode", False):  # issue 19: decode files on the GPU (gpu/decode_source.py)
            from ultralytics.gpu.decode_source import gpu_decoded

            batches = gpu_decoded(batches, self.model.device, pipeline=self.gpu is not None)
        if args.save or args.save_txt or args.save_crop:
            self._ensure_save_dir()  # an unwritable project= fails here, in one line, before any image runs
        self.warmup()
        profilers = self.stages.timers()
        seen = 0
        shape = None
        writers: dict[str, cv2.VideoWriter] = {}
        run_callbacks(self.callbacks, "on_predict_start", self)
        try:
            for _paths, _images, infos, im, results in self.stages.run(batches, profilers):
                # the stages may overlap batches (CUDA): a batch's events fire once it is done, in
                # upstream's order and with what upstream's callbacks see (no Results at batch start)
                self.batch, self.results = (_paths, _images, infos), None
                run_callbacks(self.callbacks, "on_predict_batch_start", self)
                self.results = results
                run_callbacks(self.callbacks, "on_predict_postprocess_end", self)
                n = len(results)
                seen += n
                shape = tuple(im.shape[2:])
                for i, r in enumerate(results):
                    r.speed = {
                        "preprocess": profilers[0].dt * 1e3 / n,
                        "inference": profilers[1].dt * 1e3 / n,
                        "postprocess": profilers[2].dt * 1e3 / n,
                    }
                    if args.verbose:
                        LOGGER.info(f"{infos[i]}{im.shape[2]}x{im.shape[3]} {r.verbose()}{r.speed['inference']:.1f}ms")
                    if args.save or args.save_txt or args.save_crop:
                        self._save(r, infos[i], writers)
                    if args.show:
                        r.show(line_width=args.line_width, conf=bool(args.show_conf), labels=bool(args.show_labels))
                    yield r
                run_callbacks(self.callbacks, "on_predict_batch_end", self)
        finally:
            for w in writers.values():
                w.release()
        if args.verbose and seen:
            t = tuple(p.total * 1e3 / seen for p in profilers)
            # upstream's shape: the batch argument (at most the images seen), 3, the last input's h, w
            shown = (min(int(args.batch or 1), seen), 3, *shape)
            LOGGER.info(
                f"Speed: {t[0]:.1f}ms preprocess, {t[1]:.1f}ms inference, {t[2]:.1f}ms postprocess per image at shape {shown}"
            )
            if self.save_dir is not None:
                LOGGER.info(f"Results saved to {self.save_dir}")
        run_callbacks(self.callbacks, "on_predict_end", self)

    # ------------------------------------------------------------------ saving
    def _ensure_save_dir(self) -> Path:
        if self.save_dir is None:
            self.save_dir = run_dir(self.args.project, self.args.name, "predict", bool(self.args.exist_ok))
            self.save_dir.mkdir(parents=True, exist_ok=True)
        return self.save_dir

    def _fps(self, path: str) -> float:
        """The fps the source video was read at (recorded by its reader), 30 when unknown (upstream)."""
        return self.dataset.video_fps(path) if self.dataset is not None else 30.0

    def _save(self, r: Results, info: str, writers: dict[str, cv2.VideoWriter]) -> None:
        save_dir = self._ensure_save_dir()
        stem = Path(r.path).stem or "image0"
        is_video = info.startswith("video")
        frame = _frame_number(info) if is_video else None
        if self.args.save_txt:
            txt = save_dir / "labels" / (f"{stem}_{frame}.txt" if is_video else f"{stem}.txt")
            txt.parent.mkdir(parents=True, exist_ok=True)
            r.save_txt(txt, save_conf=bool(self.args.save_conf))
        if self.args.save_crop:
            r.save_crop(save_dir / "crops", file_name=f"{stem}_{frame}" if is_video else stem)
        if not self.args.save:
            return
        plotted = r.plot(
            conf=bool(self.args.show_conf),
            labels=bool(self.args.show_labels),
            boxes=bool(self.args.show_boxes),
            line_width=self.args.line_width,
        )
        if is_video:
            suffix, fourcc = video_container()
            out = str(save_dir / f"{stem}{suffix}")
            if out not in writers:
                h, w = plotted.shape[:2]
                writers[out] = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*fourcc), self._fps(r.path), (w, h))
            writers[out].write(plotted)
        else:
            name = Path(r.path).name if Path(r.path).suffix else f"{stem}.jpg"
            ok, encoded = cv2.imencode(Path(name).suffix, plotted)
            if not ok:  # a suffix OpenCV cannot write (e.g. a source read through PIL): save as upstream, .jpg
                name, (ok, encoded) = f"{Path(name).stem}.jpg", cv2.imencode(".jpg", plotted)
            atomic_write(save_dir / name, encoded.tobytes(), durable=False)  # per image: atomic, no fsync


def video_container() -> tuple[str, str]:
    """(suffix, fourcc) of saved videos, as upstream 8.4 writes them: MJPG in .avi on Linux, WMV2 in .avi on
    Windows, avc1 in .mp4 on macOS — so scripts that look for upstream's output file find ours."""
    if sys.platform == "darwin":
        return ".mp4", "avc1"
    if sys.platform.startswith("win"):
        return ".avi", "WMV2"
    return ".avi", "MJPG"


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
