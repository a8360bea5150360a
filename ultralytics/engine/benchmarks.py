"""`yolo benchmark`: export a .pt to every format this machine can run, then measure each one.

One row per (format, precision): file size, mAP50-95/mAP50 from a full `val`, end-to-end and
inference-only milliseconds per image, or, for what could not run, why. Rows that cannot run here
are listed with the reason instead of being left out, so the table always shows the whole picture.

Exports go into the run folder (a copy of the weights sits in one subfolder per row), never next to
the user's weights, so nothing the user has is overwritten. Every row is validated with batch 1 and
a square letterbox (as upstream's benchmark does), so the speeds compare.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ultralytics.cfg import get_cfg
from ultralytics.utils import DEFAULT_CFG_DICT, LOGGER, IterableSimpleNamespace
from ultralytics.utils.atomic_file import atomic_open, atomic_write
from ultralytics.utils.files import run_dir
from ultralytics.utils.formats import FormatError, benchmark_formats, find_format, format_titles
from ultralytics.utils.torch_utils import select_device

FORMATS = benchmark_formats()  # from the one format table (utils/formats.py)
PRECISIONS = (32, 16, 8)
PRECISION_NAMES = {32: "FP32", 16: "FP16", 8: "INT8"}
FORMAT_NAMES = format_titles()
COLUMNS = (
    "format",
    "precision",
    "status",
    "size_mb",
    "mAP50-95",
    "mAP50",
    "e2e_ms",
    "inference_ms",
    "fps",
    "file",
    "reason",
)


def run_benchmark(
    model: Any,
    cfg: IterableSimpleNamespace | dict[str, Any] | None = None,
    *,
    formats: list[str] | tuple[str, ...] | None = None,
    precisions: list[int] | tuple[int, ...] | None = None,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Benchmark `model` (a YOLO or a .pt path; only its path is used); prints the table, writes benchmark.csv/.json, returns the rows.

    Config keys (in `cfg` or as keywords): data (required), imgsz, device, split (val split), project,
    name, verbose. `format=` (onnx/engine/pt) limits the formats and `quantize=`/`half=`/`int8=` the
    precision, like upstream; `formats=`/`precisions=` do the same explicitly (e.g. for a quick run).
    """
    args = _benchmark_args(cfg, overrides)
    if not args.data:
        raise ValueError("benchmark needs a labelled dataset for mAP: pass data=<dataset.yaml>")
    weights = _weights_path(model)
    device = select_device(args.device)
    formats, precisions = _selection(args, formats, precisions)
    save_dir = run_dir(args.project, args.name, "benchmark", bool(args.exist_ok))
    save_dir.mkdir(parents=True, exist_ok=True)
    imgsz = args.imgsz
    if imgsz is None:
        from ultralytics.nn.checkpoint import checkpoint_imgsz, load_checkpoint

        imgsz = checkpoint_imgsz(load_checkpoint(weights)[1]) or 640
    calib_split = _calibration_split(args.data, args.split or "val")
    LOGGER.info(f"Benchmarking {weights.name} on {Path(args.data).name} at imgsz={imgsz}, device={device}")
    rows = []
    plan = [(fmt, precision) for fmt in formats for precision in precisions]
    # One bar over the rows: each is an export (seconds to minutes for an engine) plus a full val.
    with tqdm(plan, desc="benchmark", unit="row", leave=False) as bar:
        for fmt, precision in bar:
            bar.set_postfix_str(f"{FORMAT_NAMES[fmt]} {PRECISION_NAMES[precision]}")
            with _quiet(not args.verbose):
                row = _benchmark_one(weights, fmt, precision, args, device, imgsz, save_dir, calib_split)
            rows.append(row)
            with bar.external_write_mode():
                LOGGER.info(_row_line(row))
    table = format_table(rows)
    LOGGER.info(
        f"\nBenchmarks complete for {weights.name} on {Path(args.data).name} at imgsz={imgsz} ({device_name(device)})\n{table}"
    )
    _write(
        rows, save_dir, {"model": str(weights), "data": str(args.data), "imgsz": imgsz, "device": device_name(device)}
    )
    LOGGER.info(f"Results saved to {save_dir / 'benchmark.csv'} and {save_dir / 'benchmark.json'}")
    return rows


# ----------------------------------------------------------------------------------- selection
def _benchmark_args(cfg, overrides: dict[str, Any]) -> IterableSimpleNamespace:
    base = dict(vars(cfg)) if isinstance(cfg, IterableSimpleNamespace) else dict(cfg or {})
    base.update(overrides)
    base["mode"] = "benchmark"
    return get_cfg(base) if not isinstance(cfg, IterableSimpleNamespace) else IterableSimpleNamespace(**base)


def _weights_path(model: Any) -> Path:
    path = Path(getattr(model, "model_path", model))
    if path.suffix.lower() not in (".pt", ".pth"):
        raise ValueError(
            f"benchmark exports from a PyTorch checkpoint, got '{path.name}'. Pass the .pt it was exported from, "
            f"or use 'yolo val model={path.name} data=...' to measure this file alone"
        )
    if not path.is_file():
        raise FileNotFoundError(f"model file '{path}' does not exist")
    return path


def _selection(args, formats, precisions) -> tuple[list[str], list[int]]:
    if formats is None:
        fmt = args.format
        if fmt in (None, "", DEFAULT_CFG_DICT["format"]):  # upstream's default format means: every format
            formats = list(FORMATS)
        else:
            try:
                formats = [find_format(fmt, exportable=False).name]
            except FormatError as e:
                raise ValueError(f"benchmark: {e}") from None
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"benchmark formats {unknown} are not supported; choose from {', '.join(FORMATS)}")
    if precisions is None:
        from ultralytics.cfg import resolve_precision

        explicit = args.quantize not in (None, "") or args.half or args.int8
        precisions = [resolve_precision(args.half, args.int8, args.quantize)] if explicit else list(PRECISIONS)
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ValueError(f"benchmark precisions {bad} are not valid; use 32, 16 or 8")
    return list(formats), list(precisions)


def _calibration_split(data: str, val_split: str) -> str:
    """INT8 calibrates on `train` when the dataset has it, so the accuracy is not measured on calibration images."""
    from ultralytics.data.dataset import load_dataset_yaml

    info = load_dataset_yaml(data)
    return "train" if info.get("train") and val_split != "train" else val_split


def _unavailable(fmt: str, precision: int, device: torch.device) -> str | None:
    """Why this row cannot run on this machine, or None."""
    if fmt == "pt":
        if precision == 8:
            return "PyTorch INT8 is not supported (use onnx or engine)"
        if precision == 16 and device.type == "cpu":
            return "PyTorch FP16 needs a CUDA device"
        return None
    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed"
        return None
    if fmt != "engine":  # a format added to the table runs wherever torch runs unless it says otherwise
        return None
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install tensorrt)"
    if not torch.cuda.is_available():
        return "TensorRT needs a CUDA GPU; none is available"
    if device.type != "cuda":
        return "TensorRT runs on CUDA only; pass device=0"
    return None


# --------------------------------------------------------------------------------------- one row
def _benchmark_one(weights: Path, fmt, precision, args, device, imgsz, save_dir: Path, calib_split: str) -> dict:
    row: dict[str, Any] = {k: None for k in COLUMNS}
    row.update(format=FORMAT_NAMES[fmt], precision=PRECISION_NAMES[precision])
    reason = _unavailable(fmt, precision, device)
    if reason:
        row.update(status="skipped", reason=reason)
        return row
    from ultralytics.engine.exporter import export_file
    from ultralytics.engine.validator import DetectionValidator

    try:
        if fmt == "pt":
            target: Any = weights
            file = weights
        else:
            folder = save_dir / f"{fmt}-{PRECISION_NAMES[precision].lower()}"
            folder.mkdir(parents=True, exist_ok=True)
            copy = folder / weights.name
            shutil.copy2(weights, copy)
            export_args: dict[str, Any] = {"format": fmt, "imgsz": imgsz, "batch": 1, "verbose": False}
            if args.device not in (None, ""):
                export_args["device"] = args.device
            if precision == 16:
                export_args["half"] = True
            if precision == 8:
                export_args.update(int8=True, data=args.data, split=calib_split)
            t0 = time.time()
            file = Path(export_file(copy, export_args))
            copy.unlink(missing_ok=True)
            LOGGER.info(f"exported {file.name} in {time.time() - t0:.1f}s")
            target = file
        val_args = {
            "data": args.data,
            "imgsz": imgsz,
            "batch": 1,
            "rect": False,
            "conf": 0.001,
            "iou": 0.7,
            "device": args.device,
            "split": args.split or "val",
            "verbose": False,
            "half": fmt == "pt" and precision == 16,
        }
        metrics = DetectionValidator(val_args).run(target)
    except Exception as e:  # one format failing must not hide the others
        row.update(status="failed", reason=f"{type(e).__name__}: {e}".splitlines()[0][:300])
        LOGGER.warning(f"WARNING benchmark {row['format']} {row['precision']} failed: {row['reason']}")
        return row
    s = metrics.speed
    e2e = s["preprocess"] + s["inference"] + s["postprocess"]
    row.update(
        status="ok",
        size_mb=round(Path(file).stat().st_size / 1e6, 1),
        file=str(file),
        fps=round(1000 / e2e, 1) if e2e > 0 else None,
        e2e_ms=round(e2e, 2),
        inference_ms=round(s["inference"], 2),
        reason="",
        **{"mAP50-95": round(metrics.box.map, 4), "mAP50": round(metrics.box.map50, 4)},
    )
    return row


# ------------------------------------------------------------------------------------- reporting
@contextlib.contextmanager
def _quiet(enabled: bool):
    """Hide the export/val chatter of each row (warnings still show) unless verbose=True."""
    level = LOGGER.level
    if enabled:
        LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def _fmt(value: Any, spec: str = "") -> str:
    if value is None or value == "":
        return "-"
    return format(value, spec) if spec else str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: format, precision, size, accuracy, speeds, and why a row did not run."""
    header = (
        "Format",
        "Precision",
        "Status",
        "Size (MB)",
        "mAP50-95",
        "mAP50",
        "e2e ms/im",
        "infer ms/im",
        "FPS",
        "Note",
    )
    lines = [
        (
            r["format"],
            r["precision"],
            r["status"],
            _fmt(r["size_mb"], ".1f"),
            _fmt(r["mAP50-95"], ".4f"),
            _fmt(r["mAP50"], ".4f"),
            _fmt(r["e2e_ms"], ".2f"),
            _fmt(r["inference_ms"], ".2f"),
            _fmt(r["fps"], ".1f"),
            r["reason"] or "",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    widths[-1] = 0  # the note is last and left unpadded

    def render(cells) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([render(header), render("-" * w for w in widths[:-1]), *map(render, lines)])


def _row_line(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"{row['format']} {row['precision']}: {row['status']} ({row['reason']})"
    return (
        f"{row['format']} {row['precision']}: mAP50-95 {row['mAP50-95']:.4f}, {row['e2e_ms']:.2f} ms/im end-to-end, "
        f"{row['inference_ms']:.2f} ms/im inference"
    )


def _write(rows: list[dict[str, Any]], save_dir: Path, info: dict[str, Any]) -> None:
    with atomic_open(save_dir / "benchmark.csv", "w", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    payload = {**info, "torch": torch.__version__, "rows": rows}
    atomic_write(save_dir / "benchmark.json", json.dumps(payload, indent=1))
