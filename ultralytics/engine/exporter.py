"""Export dispatcher: resolve the arguments once, then hand off to one module per target format.

Each target lives in `ultralytics/export/<target>.py`; this file only decides which one runs and
reports the result the way upstream does.
"""

from __future__ import annotations

import copy
import importlib
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ultralytics.cfg import ConfigError, resolve_precision
from ultralytics.data.augment import check_imgsz
from ultralytics.utils import DEFAULT_CFG_DICT, LOGGER, IterableSimpleNamespace
from ultralytics.utils.atomic_file import atomic_copy, check_writable_folder
from ultralytics.utils.formats import check_export_args, find_format
from ultralytics.utils.ops import nms_free_requested
from ultralytics.utils.torch_utils import select_device


def export_file(weights: str | Path, overrides: dict[str, Any]) -> str:
    """Export a .pt checkpoint by path (what `yolo benchmark` does per row), without building a `YOLO`."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.checkpoint import load_checkpoint

    model, _ = load_checkpoint(Path(weights))
    defaults = {"batch": 1, "data": None, "device": None, "verbose": False}
    return export(model, weights, get_cfg({**defaults, **overrides, "mode": "export"}))


def export(model: torch.nn.Module, weights: str | Path, args: IterableSimpleNamespace) -> str:
    """Write `<weights stem>.<suffix>` next to `weights` (the checkpoint `model` came from) and return its path.

    Every cheap check (format, arguments, precision, the destination folder) runs before the slow
    work (calibration, builds), so a bad call fails in a second with one line.
    """
    spec = find_format(args.format)
    fmt = spec.name
    if args.half and args.int8 and args.quantize in (None, ""):
        raise ConfigError("half=True and int8=True were both given; choose one precision (or quantize=16 / quantize=8)")
    precision = resolve_precision(args.half, args.int8, args.quantize)
    args.precision = precision
    if precision == 8 and not args.data:
        raise ConfigError(
            "INT8 export needs calibration images: pass data=<dataset.yaml> (its split, 'val' by default, "
            "is used; split=train to calibrate on training images). Nothing is downloaded here."
        )
    if fmt == "onnx":
        from ultralytics.export.network_route import check_builder

        builder = check_builder(getattr(args, "builder", None))
        if builder != "onnx":
            raise ConfigError(
                f"builder={builder} chooses how a TensorRT engine is built and applies to format=engine only; "
                "drop builder= for an ONNX export, or pass format=engine"
            )
    check_export_args(spec, _changed_args(args))
    weights = Path(weights)
    target = weights.with_suffix(spec.suffix)
    check_writable_folder(target.parent, f"the {spec.title} export")
    if args.dynamic and int(args.batch or 1) == 1 and fmt == "engine":
        LOGGER.warning("WARNING dynamic=True with batch=1: the engine's maximum batch will be 1; pass batch=N for more")
    device = _export_device(args.device, fmt)
    model = copy.deepcopy(model).to(device).eval()
    if hasattr(model, "select_head"):  # YOLO26: nms=False / end2end=True exports the NMS-free (B, max_det, 6) head
        model.select_head(nms_free_requested(args), max_det=int(args.max_det or 300), agnostic=bool(args.agnostic_nms))
    for p in model.parameters():
        p.requires_grad_(False)
    stride = int(max(model.stride)) if hasattr(model, "stride") else 32
    imgsz = check_imgsz(args.imgsz if args.imgsz is not None else 640, stride)
    args.imgsz = list(imgsz)
    t0 = time.time()
    if fmt == "onnx":
        file = _export_onnx(model, target, args, device)
    elif fmt == "torchscript":
        from ultralytics.export.torchscript import export_torchscript

        file = export_torchscript(model, target, **_torchscript_kwargs(args, device))
    elif fmt == "engine":
        from ultralytics.export.tensorrt import export_engine

        file = export_engine(model, target, args)
    else:  # a format added to utils/formats.py with its own exporter module
        module, _, function = str(spec.exporter).partition(":")
        file = getattr(importlib.import_module(module), function)(model, target, args)
    size_mb = Path(file).stat().st_size / 1e6
    LOGGER.info(
        f"\nExport complete ({time.time() - t0:.1f}s)\nResults saved to {Path(file).resolve().parent}\n"
        f"Predict:         yolo predict task=detect model={file} imgsz={imgsz[0] if imgsz[0] == imgsz[1] else list(imgsz)}\n"
        f"Validate:        yolo val task=detect model={file} imgsz={imgsz[0] if imgsz[0] == imgsz[1] else list(imgsz)} data=...\n"
        f"File size:       {size_mb:.1f} MB"
    )
    return str(file)


def _export_device(device_arg, fmt: str) -> torch.device:
    """Upstream exports engines on GPU 0 by default; ONNX on the CPU unless a device is given."""
    if device_arg in (None, ""):
        return select_device(None) if fmt == "engine" else torch.device("cpu")
    return select_device(device_arg)


def _export_onnx(model, file: Path, args: IterableSimpleNamespace, device: torch.device) -> Path:
    from ultralytics.export.metadata import build_metadata
    from ultralytics.export.nms import nms_settings
    from ultralytics.export.onnx import export_onnx

    imgsz = tuple(args.imgsz)
    batch = int(args.batch or 1)
    meta = build_metadata(model, imgsz=imgsz, batch=batch, args=_format_args(args))
    common = dict(
        imgsz=imgsz,
        batch=batch,
        dynamic=bool(args.dynamic),
        simplify=bool(args.simplify),
        opset=args.opset,
        device=device,
    )
    nms = nms_settings(args)
    if args.precision != 8:
        return export_onnx(model, file, half=args.precision == 16, metadata=meta, nms=nms, **common)
    if nms is not None:
        raise ConfigError("nms=True is not available with INT8 (int8=True / quantize=8) yet; export FP32 or FP16")
    # INT8: an FP32 ONNX first, then our post-training quantization writes the Q/DQ graph.
    from ultralytics.export.calibration import CalibrationSet
    from ultralytics.export.quantize import quantize_onnx

    calib = CalibrationSet(
        args.data, split=args.split or "val", imgsz=imgsz, fraction=float(args.fraction or 1.0), batch=batch
    )
    kw = {"method": args.calib_method} if args.calib_method else {}
    # Both steps write into a temporary folder; only the finished INT8 model is copied over `file`,
    # atomically, so a failure (full disk, Ctrl-C) leaves the user's existing file byte-identical.
    with tempfile.TemporaryDirectory(prefix="yolo-int8-") as tmp:
        fp32 = export_onnx(model, Path(tmp) / f"{file.stem}.fp32.onnx", half=False, metadata=meta, **common)
        int8 = quantize_onnx(fp32, Path(tmp) / file.name, calib, **kw)
        return atomic_copy(int8, file)


def _changed_args(args: IterableSimpleNamespace) -> dict:
    """The arguments whose values differ from cfg/default.yaml: what the user actually asked for."""
    return {k: v for k, v in vars(args).items() if k in DEFAULT_CFG_DICT and v != DEFAULT_CFG_DICT[k]}


def _format_args(args: IterableSimpleNamespace) -> dict:
    """The export arguments upstream records in metadata ('args' key)."""
    keys = ("batch", "data", "dynamic", "quantize", "half", "int8", "opset", "simplify", "workspace", "nms", "fraction")
    out = {k: getattr(args, k) for k in keys}
    out["quantize"] = args.precision if args.precision != 32 else None
    return out


def _torchscript_kwargs(args: IterableSimpleNamespace, device: torch.device) -> dict:
    """What export/torchscript.py needs; the metadata args upstream records for this format."""
    if args.precision == 8:  # dynamic=True is refused earlier, by the format table's argument check
        raise ConfigError("TorchScript export is FP32/FP16: drop int8, or use format=onnx")
    meta_args = {
        "batch": int(args.batch or 1),
        "quantize": 16 if args.precision == 16 else None,
        "nms": args.nms,
        "dynamic": False,
    }
    return dict(
        imgsz=tuple(args.imgsz), batch=int(args.batch or 1), half=args.precision == 16, device=device, args=meta_args
    )
