"""Export a DetectionModel to a TensorRT engine: ONNX → parser → builder config → plan → `.engine`.

Precision is carried by the ONNX wherever TensorRT allows it, which is what makes one pipeline
work from 8.6 to 11.x:
- FP32: an FP32 ONNX.
- FP16 (`half=True`): an FP16 ONNX (FP16 inputs and outputs), plus `BuilderFlag.FP16` where it
  exists (<= 10.x, weak typing); 11.x is strongly typed, so the ONNX's types alone make it FP16.
- FP16 with `fp32_io=True`: an ONNX that is FP16 inside with FP32 inputs/outputs, for tools that
  expect FP32 bindings (upstream's engines look like this).
- INT8: a calibrator where TensorRT still has one (<= 10.x), else our Q/DQ ONNX (11.x).
The intermediate ONNX lives in a temporary folder, so an existing `<stem>.onnx` is never overwritten.

`builder="network"` skips the ONNX: `export/network_builder.py` adds the layers from the model's weights
(FP32 or FP16, no INT8; see `export/network_route.py`), and everything after that is shared.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from types import ModuleType

import torch

from ultralytics.data.augment import imgsz_pair
from ultralytics.export.engine_file import ENGINE_LAYOUTS, write_engine_file
from ultralytics.export.network_route import check_builder, check_network_route, network_populate
from ultralytics.export.nms import check_nms_model, nms_settings
from ultralytics.trt.build import BuildOptions, build_plan
from ultralytics.trt.config import check_opt_level, check_workspace, timing_cache_path
from ultralytics.trt.device import require_cuda
from ultralytics.trt.loader import INSTALL_HINT, import_tensorrt, tensorrt_installed, tensorrt_version
from ultralytics.trt.network import always_strongly_typed
from ultralytics.trt.precision import enable_fp16, enable_int8, int8_route
from ultralytics.trt.profile import resolve_profile
from ultralytics.utils import LOGGER

PRECISION_NAMES = {32: "fp32", 16: "fp16", 8: "int8"}
# Default opset of the intermediate ONNX: the newest every supported parser reads. NVIDIA's support
# matrix gives TensorRT 8.6's parser opsets up to 17 (11.x: 9 to 25); nothing YOLOv8 uses differs
# between 17 and 18, so 17 costs nothing and keeps 8.6 working. An explicit `opset=` is kept as given.
ENGINE_OPSET = 17
# The export arguments upstream records in an engine's metadata ("args"), plus the older half/int8.
METADATA_ARG_KEYS = ("batch", "data", "dynamic", "quantize", "half", "int8", "opset", "simplify", "workspace", "nms")


def _precision(cfg) -> int:
    if getattr(cfg, "precision", None) in (8, 16, 32):
        return int(cfg.precision)
    from ultralytics.cfg import resolve_precision

    return resolve_precision(cfg.half, cfg.int8, cfg.quantize)


def _model_device(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _engine_path(file: str | Path) -> Path:
    file = Path(file)
    return file if file.suffix in (".engine", ".plan") else file.with_suffix(".engine")


def export_engine(model: torch.nn.Module, file: str | Path, cfg, *, onnx_file: str | Path | None = None) -> Path:
    """Build `<file>.engine` from `model` with the export arguments in `cfg`; return its path.

    `onnx_file` reuses an ONNX already exported with the same settings (precision, dynamic, imgsz,
    batch) instead of exporting one; the tests use it to share ONNX files between TensorRT versions.
    """
    engine_path = _engine_path(file)
    precision = _precision(cfg)
    imgsz = imgsz_pair(cfg.imgsz, default=640)
    batch = int(cfg.batch or 1)
    dynamic = bool(cfg.dynamic)
    fp32_io = bool(cfg.fp32_io)
    layout = cfg.engine_layout or "ultralytics"
    route = check_builder(getattr(cfg, "builder", None))
    device = _model_device(model)
    nms = nms_settings(cfg)  # NMS inside the engine (INMSLayer): output (batch, max_det, 6)

    # Check everything cheap before the slow ONNX export and build.
    if layout not in ENGINE_LAYOUTS:
        raise ValueError(f"engine_layout={layout!r} is not valid; use one of {', '.join(ENGINE_LAYOUTS)}")
    if fp32_io and precision != 16:
        raise ValueError("fp32_io=True keeps FP32 inputs/outputs on an FP16 engine; it needs half=True (quantize=16)")
    shapes = (cfg.min_shape, cfg.opt_shape, cfg.max_shape)
    if not dynamic and any(s is not None for s in shapes):
        raise ValueError("min_shape/opt_shape/max_shape describe a dynamic engine; add dynamic=True or remove them")
    channels = int(getattr(model, "yaml", {}).get("ch", 3)) if isinstance(getattr(model, "yaml", None), dict) else 3
    if nms is not None:
        check_nms_model(model)
        if precision == 8:
            raise ValueError("nms=True is not available with INT8 engines yet; export FP32 or FP16 (half=True)")
    if route == "network":
        check_network_route(model, precision=precision, onnx_file=onnx_file)
    profile = resolve_profile(batch, channels, imgsz, *shapes) if dynamic else None
    check_workspace(cfg.workspace)
    check_opt_level(cfg.opt_level)
    if not engine_path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {engine_path}: the folder {engine_path.parent} does not exist")
    if not tensorrt_installed():
        raise ModuleNotFoundError(INSTALL_HINT)
    require_cuda(device, "Building a TensorRT engine")

    metadata = _metadata(model, cfg, imgsz, batch, precision)
    with tempfile.TemporaryDirectory(prefix="ultralytics-trt-") as tmp:
        if onnx_file is None and route == "onnx":
            onnx_file = _export_onnx(
                model, Path(tmp) / f"{engine_path.stem}.onnx", cfg, imgsz, batch, precision, metadata, nms
            )
        # Import after the ONNX export: importing TensorRT first has broken torch's exporter (upstream #7016).
        trt = import_tensorrt()
        options = BuildOptions(
            fp16=precision == 16,
            profile=profile,
            workspace=cfg.workspace,
            opt_level=cfg.opt_level,
            timing_cache=timing_cache_path(cfg.timing_cache, engine_path),
            verbose=bool(cfg.verbose),
        )
        if route == "network":
            options.populate = network_populate(
                model, imgsz=imgsz, batch=batch, profile=profile, half=precision == 16, fp32_io=fp32_io, nms=nms
            )
        if precision == 8:
            onnx_file = _prepare_int8(trt, Path(onnx_file), Path(tmp), engine_path, cfg, imgsz, batch, options)
        how = PRECISION_NAMES[precision] + (", builder=network" if route == "network" else "")
        LOGGER.info(f"TensorRT {tensorrt_version(trt)}: building {engine_path.name} ({how})...")
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            built = build_plan(trt, Path(onnx_file) if route == "onnx" else None, options)
    metadata.update(
        tensorrt=tensorrt_version(trt),
        precision=PRECISION_NAMES[precision],
        input_dtypes=built.inputs,
        output_dtypes=built.outputs,
        dynamic=built.dynamic,
        plan_size=len(built.plan),
    )
    if profile is not None:
        metadata["profile"] = {"min": list(profile[0]), "opt": list(profile[1]), "max": list(profile[2])}
    return write_engine_file(engine_path, built.plan, metadata, layout)


def _metadata(model: torch.nn.Module, cfg, imgsz: tuple[int, int], batch: int, precision: int) -> dict:
    from ultralytics.export.metadata import build_metadata

    args = {k: getattr(cfg, k, None) for k in METADATA_ARG_KEYS}
    args["quantize"] = precision if precision != 32 else None
    args["fraction"] = cfg.fraction
    return build_metadata(model, imgsz=imgsz, batch=batch, args=args)


def _export_onnx(model, path: Path, cfg, imgsz, batch: int, precision: int, metadata: dict, nms=None) -> Path:
    """The ONNX the engine is built from: FP16 I/O when half, FP16 inside + FP32 I/O with fp32_io."""
    from ultralytics.export.onnx import export_onnx

    return export_onnx(
        model,
        path,
        imgsz=imgsz,
        batch=batch,
        dynamic=bool(cfg.dynamic),
        simplify=bool(cfg.simplify) if cfg.simplify is not None else True,
        opset=cfg.opset or ENGINE_OPSET,
        half=precision == 16,
        keep_io_types=bool(cfg.fp32_io),
        device=_model_device(model),
        metadata=metadata,
        nms=nms,
    )


def _prepare_int8(
    trt: ModuleType, onnx_file: Path, tmp: Path, engine_path: Path, cfg, imgsz, batch: int, options: BuildOptions
) -> Path:
    """Pick the INT8 route by capability and return the ONNX to build from.

    <= 10.x: `BuilderFlag.INT8` and the calibrator classes exist → calibrate during the build (FP16
    allowed as fallback for layers that are not quantized). 11.0 removed both → explicit Q/DQ ONNX.
    """
    try:
        from ultralytics.export.calibration import CalibrationSet
    except ImportError as e:
        raise RuntimeError(f"INT8 export is not available in this installation ({e}); export FP16 instead") from e
    if not cfg.data:
        raise ValueError("INT8 export needs calibration images: pass data=<dataset.yaml> (and split=)")
    calib = CalibrationSet(
        cfg.data, split=cfg.split or "val", imgsz=imgsz, fraction=float(cfg.fraction or 1.0), batch=batch
    )
    method = {"method": cfg.calib_method} if cfg.calib_method else {}
    if int8_route(trt) == "calibrator":
        from ultralytics.export.calibrator import constrain_sensitive_layers, make_int8_calibrator

        cache = engine_path.with_name(f"{engine_path.stem}.int8.cache")
        calibrator = make_int8_calibrator(trt, calib, cache, model=onnx_file, **method)

        def configure(trt: ModuleType, builder, network, config, profile) -> None:
            enable_int8(trt, config)
            enable_fp16(trt, config)
            if hasattr(trt.IBuilderConfig, "int8_calibrator"):
                config.int8_calibrator = calibrator
            constrain_sensitive_layers(trt, network, config)

        options.configure = configure
        options.keep_alive = calibrator  # TensorRT holds only a raw pointer to the calibrator
        # A dynamic network is calibrated at its own profile, exactly the shape of the batches we feed.
        channels = int(options.profile[1][1]) if options.profile else 3
        options.calibration_shape = (calib.batch, channels, *calib.imgsz)
        return onnx_file
    # 11.x: no calibrator API; our post-training quantization writes the scales into Q/DQ nodes.
    from ultralytics.export.quantize import quantize_onnx

    # Strongly typed TensorRT runs every float part in the ONNX's type: FP16 float parts (head and decode
    # kept FP32) make the layers between the Q/DQ pairs FP16 instead of FP32 (docs/int8.md).
    float16 = always_strongly_typed(trt)
    qdq = quantize_onnx(onnx_file, tmp / f"{engine_path.stem}.int8.onnx", calib, float16=float16, **method)

    def configure_qdq(trt: ModuleType, builder, network, config, profile) -> None:
        enable_int8(trt, config)  # no-ops on 11.x, where the Q/DQ types are the precision
        enable_fp16(trt, config)

    options.configure = configure_qdq
    return Path(qdq)
