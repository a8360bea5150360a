"""`YOLO`: the user-facing model object (predict, export, val, benchmark, compare).

Arguments merge like upstream: defaults, then what the checkpoint was trained with (`overrides`:
task, data, imgsz, single_cls, model), then per-mode defaults, then the caller's keywords. The rest of
upstream's public surface is here too (to/cpu/cuda/half/fuse/info/save/load, callbacks, predictor,
metrics, task_map); training and tracking are not part of this deployment package.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch

from ultralytics.cfg import ConfigError, get_cfg
from ultralytics.engine.results import Results
from ultralytics.utils import DEFAULT_CFG_KEYS, LOGGER
from ultralytics.utils.callbacks import check_event, default_callbacks, run_callbacks
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
        self.callbacks = default_callbacks()
        self.predictor = None  # the last predict's DetectionPredictor, as upstream keeps it
        self.metrics = None  # the last val's DetMetrics
        self.transforms = None  # upstream's classification transforms; a detector has none
        self._backends: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        suffix = self.model_path.suffix.lower()
        if suffix in YAML_SUFFIXES:
            from ultralytics.nn.tasks import DetectionModel

            self.model = DetectionModel(str(model)).eval()
            self.overrides = {"task": "detect"}
        elif suffix in PT_SUFFIXES:
            from ultralytics.nn.checkpoint import checkpoint_imgsz, load_checkpoint

            if not self.model_path.is_file():
                raise FileNotFoundError(
                    f"model file '{model}' does not exist. Nothing is downloaded here: pass the path to a local "
                    f".pt, .onnx or .engine file"
                )
            self.model, self.ckpt = load_checkpoint(self.model_path, trust=trust)
            train_args = self.ckpt.get("train_args")
            train_args = vars(train_args) if hasattr(train_args, "__dict__") else train_args
            train_args = train_args if isinstance(train_args, dict) else {}
            # upstream keeps these training arguments (defaults where unrecorded) as the model's defaults
            self.overrides = {
                "task": "detect",
                "data": train_args.get("data"),
                "imgsz": checkpoint_imgsz(self.ckpt) or 640,
                "single_cls": bool(train_args.get("single_cls", False)),
            }
        else:
            from ultralytics.nn.autobackend import backend_class
            from ultralytics.utils.formats import check_model_file

            backend_class(self.model_path)  # raises a clear error for unsupported suffixes
            if not self.model_path.is_file():
                raise FileNotFoundError(f"model file '{model}' does not exist")
            check_model_file(self.model_path)  # a corrupt export fails here, not at the first predict
            self.overrides = {"task": "detect"}
        self.overrides["model"] = str(model)
        self.model_name = str(model)
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

    @property
    def task_map(self) -> dict[str, dict[str, Any]]:
        """Upstream's task → classes table; detection only, and no trainer (nothing is trained here)."""
        from ultralytics.engine.predictor import DetectionPredictor
        from ultralytics.engine.validator import DetectionValidator
        from ultralytics.nn.tasks import DetectionModel

        return {
            "detect": {
                "model": DetectionModel,
                "trainer": None,
                "validator": DetectionValidator,
                "predictor": DetectionPredictor,
            }
        }

    @property
    def device(self) -> torch.device | None:
        """Where the PyTorch model's weights are (None for exported formats, which pick a device per call)."""
        return next(self.model.parameters()).device if self.model is not None else None

    def __repr__(self) -> str:
        return f"YOLO('{self.model_path}')"

    # ------------------------------------------------------------------ callbacks
    def add_callback(self, event: str, func) -> None:
        """Call `func(predictor or validator)` at `event` (upstream's event names, e.g. 'on_predict_batch_end')."""
        check_event(event)
        self.callbacks[event].append(func)

    def clear_callback(self, event: str) -> None:
        check_event(event)
        self.callbacks[event] = []

    def reset_callbacks(self) -> None:
        self.callbacks = default_callbacks()

    # ------------------------------------------------------------------ the PyTorch model
    def _check_is_pytorch_model(self, what: str) -> None:
        if self.model is None:
            raise TypeError(
                f"{what} needs a PyTorch model (.pt or .yaml); '{self.model_path}' is an exported model, whose "
                "weights are fixed: load the .pt it was exported from"
            )

    def _model_changed(self) -> YOLO:
        self._backends.clear()  # cached backends were built from the old weights/device/dtype
        return self

    def to(self, *args: Any, **kwargs: Any) -> YOLO:
        """Move (or cast) the PyTorch model, like nn.Module.to; returns self."""
        self._check_is_pytorch_model("to()")
        self.model.to(*args, **kwargs)
        return self._model_changed()

    def cpu(self) -> YOLO:
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> YOLO:
        return self.to(
            torch.device("cuda" if device is None else f"cuda:{device}" if isinstance(device, int) else device)
        )

    def half(self) -> YOLO:
        return self.to(torch.float16)

    def float(self) -> YOLO:
        return self.to(torch.float32)

    def fuse(self) -> YOLO:
        """Fold BatchNorm into the convolutions (loaded checkpoints already are; then this does nothing)."""
        self._check_is_pytorch_model("fuse()")
        self.model.fuse()
        return self._model_changed()

    def info(self, detailed: bool = False, verbose: bool = True) -> tuple[int, int, int, float] | None:
        """Log and return (layers, parameters, gradients, GFLOPs at 640) as upstream's `model.info()`."""
        self._check_is_pytorch_model("info()")
        return self.model.info(detailed=detailed, verbose=verbose)

    def save(self, filename: str | Path = "saved_model.pt") -> str:
        """Write a checkpoint that upstream Ultralytics (and this package) loads and predicts with.

        The layout is upstream's: its header keys, the original checkpoint's other entries (training
        arguments, metrics), and the model in FP16 with a BatchNorm in every fused convolution (an
        identity one), so upstream's unfused forward runs it unchanged. Written atomically: an existing
        file is replaced only once the new one is complete.
        """
        from ultralytics.nn.checkpoint_writer import upstream_checkpoint, write_checkpoint

        self._check_is_pytorch_model("save()")
        filename = Path(filename)
        if filename.suffix.lower() not in PT_SUFFIXES:
            raise ValueError(f"save() writes a PyTorch checkpoint: give a .pt file name, not '{filename}'")
        write_checkpoint(upstream_checkpoint(self.model, self.ckpt), filename)
        return str(filename)

    def load(self, weights: str | Path) -> YOLO:
        """Copy the weights of another checkpoint into this model wherever names and shapes match."""
        from ultralytics.nn.checkpoint import load_checkpoint

        self._check_is_pytorch_model("load()")
        other, _ = load_checkpoint(weights)
        mine = self.model.state_dict()
        theirs = {k: v for k, v in other.state_dict().items() if k in mine and v.shape == mine[k].shape}
        self.model.load_state_dict(theirs, strict=False)
        LOGGER.info(f"Transferred {len(theirs)}/{len(mine)} items from pretrained weights")
        return self._model_changed()

    def embed(self, source: Any = None, **kwargs: Any):
        """Upstream's feature embeddings are not implemented in this deployment package."""
        raise NotImplementedError(_REFUSED["embed"])

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
        # of the checkpoint's recorded arguments only these act as defaults (upstream's model/task/single_cls
        # describe the model and training, and must not trip a mode's key checks)
        overrides = {k: v for k, v in self.overrides.items() if k in ("imgsz", "data") and k in DEFAULT_CFG_KEYS}
        args = get_cfg({**overrides, **mode_defaults, **kwargs, "mode": mode})
        for key, reason in _REFUSED.items():  # upstream features that would otherwise be silently skipped
            if getattr(args, key, None) and mode in ("predict", "val"):
                raise ConfigError(reason)
        return args

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
        predictor = DetectionPredictor(
            args, self._backend(device, fp16), explicit=set(kwargs), callbacks=self.callbacks
        )
        self.predictor = predictor
        return predictor(source, stream=stream)

    __call__ = predict

    def export(self, **kwargs) -> str:
        """Export to TorchScript (the default), ONNX or a TensorRT engine; returns the written file's path.

        `on_export_start` / `on_export_end` callbacks get an object with `args`, `model` and (at the end) `file`.
        """
        import types

        from ultralytics.engine.exporter import export

        if self.model is None:
            raise ValueError(f"export needs a PyTorch model (.pt or .yaml); '{self.model_path}' is already exported")
        args = self._args({"batch": 1, "data": None, "device": None, "verbose": False}, kwargs, "export")
        run = types.SimpleNamespace(args=args, model=self.model, file=None)
        run_callbacks(self.callbacks, "on_export_start", run)
        run.file = export(self.model, self.ckpt_path, args)
        run_callbacks(self.callbacks, "on_export_end", run)
        return run.file

    def val(self, **kwargs):
        """Accuracy on a labelled dataset (mAP50-95 etc.)."""
        from ultralytics.engine.validator import DetectionValidator

        args = self._args({"rect": True, "conf": 0.001, "batch": kwargs.get("batch", 16), "save": False}, kwargs, "val")
        if not kwargs.get("data") and args.data and not Path(str(args.data)).exists():
            raise FileNotFoundError(
                f"val needs a dataset: pass data=<dataset.yaml> (the one this checkpoint was trained on, "
                f"'{args.data}', is not on this machine)"
            )
        self.metrics = DetectionValidator(args, callbacks=self.callbacks).run(self)
        return self.metrics

    def benchmark(self, **kwargs):
        """Accuracy and speed of every format available on this machine, in one table."""
        from ultralytics.engine.benchmarks import run_benchmark

        args = self._args({"verbose": False}, kwargs, "benchmark")
        return run_benchmark(self, args)

    def compare(self, other: str | Path, **kwargs):
        """Raw-output differences and matched detections between this model and another."""
        from ultralytics.engine.compare import compare_models

        args = self._args({"conf": 0.25}, kwargs, "compare")
        return compare_models(self, other, args)


# Upstream predict/val features this package does not implement: refused with the reason, never ignored.
_REFUSED = {
    "augment": "augment=True (test-time augmentation: flipped and rescaled copies merged) is not implemented here; "
    "drop augment, or run upstream Ultralytics for TTA",
    "visualize": "visualize=True (feature-map / LayerCAM images) is not implemented here; drop visualize",
    "embed": "embed (feature embeddings instead of detections) is not implemented here; drop embed",
}
