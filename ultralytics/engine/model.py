"""`YOLO`: the user-facing model object (predict, export, val, benchmark, compare).

Arguments merge like upstream: defaults, then what the checkpoint was trained with (imgsz), then
per-mode defaults, then the caller's keywords.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch

from ultralytics.cfg import get_cfg
from ultralytics.engine.results import Results
from ultralytics.utils import LOGGER
from ultralytics.utils.torch_utils import select_device

PT_SUFFIXES = (".pt", ".pth")
YAML_SUFFIXES = (".yaml", ".yml")


class YOLO:
    """A YOLOv8 detector from a .pt checkpoint, a .yaml architecture, an .onnx file or a TensorRT engine."""

    def __init__(
        self, model: str | Path = "yolov8n.pt", task: str | None = None, verbose: bool = False, trust: bool = False
    ):
        self.model_path = Path(model)
        self.task = task or "detect"
        if self.task != "detect":
            raise ValueError(f"task='{self.task}' is not supported: this package implements detection only")
        self.model = None  # the torch DetectionModel for .pt/.yaml; None for exported formats
        self.ckpt: dict = {}
        self.overrides: dict[str, Any] = {}
        self._backends: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        suffix = self.model_path.suffix.lower()
        if suffix in YAML_SUFFIXES:
            from ultralytics.nn.tasks import DetectionModel

            self.model = DetectionModel(str(model)).eval()
        elif suffix in PT_SUFFIXES:
            from ultralytics.nn.checkpoint import checkpoint_imgsz, load_checkpoint

            if not self.model_path.is_file():
                raise FileNotFoundError(
                    f"model file '{model}' does not exist. Nothing is downloaded here: pass the path to a local "
                    f".pt, .onnx or .engine file"
                )
            self.model, self.ckpt = load_checkpoint(self.model_path, trust=trust)
            imgsz = checkpoint_imgsz(self.ckpt)
            if imgsz:
                self.overrides["imgsz"] = imgsz
        else:
            from ultralytics.nn.autobackend import backend_class

            backend_class(self.model_path)  # raises a clear error for unsupported suffixes
            if not self.model_path.is_file():
                raise FileNotFoundError(f"model file '{model}' does not exist")
        if verbose:
            LOGGER.info(f"Loaded {self.model_path}")

    # ------------------------------------------------------------------ properties
    @property
    def names(self) -> dict[int, str]:
        if self.model is not None:
            return dict(self.model.names)
        return self._backend(torch.device("cpu") if not torch.cuda.is_available() else select_device(None), False).names

    @property
    def ckpt_path(self) -> Path:
        return self.model_path

    def __repr__(self) -> str:
        return f"YOLO('{self.model_path}')"

    # ------------------------------------------------------------------ backends
    def _backend(self, device: torch.device, fp16: bool, **kw):
        """One AutoBackend per (device, precision), reused across calls."""
        from ultralytics.nn.autobackend import AutoBackend

        key = (str(device), bool(fp16))
        with self._lock:
            if key not in self._backends:
                weights = self.model if self.model is not None else self.model_path
                self._backends[key] = AutoBackend(weights, device=device, fp16=fp16, **kw)
            return self._backends[key]

    def _args(self, mode_defaults: dict[str, Any], kwargs: dict[str, Any], mode: str):
        return get_cfg({**self.overrides, **mode_defaults, **kwargs, "mode": mode})

    # ------------------------------------------------------------------ modes
    def predict(self, source: Any = None, stream: bool = False, **kwargs) -> list[Results]:
        """Detect objects in images, folders, globs, videos, arrays, PIL images or tensors."""
        from ultralytics.cfg import resolve_precision
        from ultralytics.engine.predictor import DetectionPredictor

        if source is None:
            from ultralytics.utils import ASSETS

            source = str(ASSETS)
            LOGGER.warning(f"WARNING source is missing, using the bundled images in {ASSETS}")
        args = self._args({"conf": 0.25, "batch": 1, "save": False, "rect": True}, kwargs, "predict")
        device = select_device(args.device)
        fp16 = resolve_precision(args.half, False, args.quantize if args.quantize in (16, "16", "fp16") else None) == 16
        if fp16 and device.type == "cpu" and self.model is not None:
            LOGGER.warning("WARNING half=True is not supported for PyTorch models on the CPU; using FP32")
            fp16 = False
        predictor = DetectionPredictor(args, self._backend(device, fp16), explicit=set(kwargs))
        return predictor(source, stream=stream)

    __call__ = predict

    def export(self, **kwargs) -> str:
        """Export to ONNX or a TensorRT engine; returns the written file's path."""
        from ultralytics.engine.exporter import export

        if self.model is None:
            raise ValueError(f"export needs a PyTorch model (.pt or .yaml); '{self.model_path}' is already exported")
        args = self._args({"batch": 1, "data": None, "device": None, "verbose": False}, kwargs, "export")
        return export(self, args)

    def val(self, **kwargs):
        """Accuracy on a labelled dataset (mAP50-95 etc.)."""
        from ultralytics.engine.validator import DetectionValidator

        args = self._args({"rect": True, "conf": 0.001, "batch": kwargs.get("batch", 16), "save": False}, kwargs, "val")
        return DetectionValidator(args).run(self)

    def benchmark(self, **kwargs):
        """Accuracy and speed of every format available on this machine, in one table."""
        from ultralytics.utils.benchmarks import run_benchmark

        args = self._args({"verbose": False}, kwargs, "benchmark")
        return run_benchmark(self, args)

    def compare(self, other: str | Path, **kwargs):
        """Raw-output differences and matched detections between this model and another."""
        from ultralytics.utils.compare import compare_models

        args = self._args({"conf": 0.25}, kwargs, "compare")
        return compare_models(self, other, args)
