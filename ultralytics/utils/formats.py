"""The one table of model formats: name, file suffix, aliases, the export arguments each uses, device.

Why one table: alias matching (`format=trt`), the per-format argument check (an argument the chosen
format does not use is refused, naming the formats that do use it), AutoBackend's suffix → backend
map and benchmark's format list all read it, so adding a format is one row here plus its module
(`export/<target>.py`, `nn/backends/<name>.py`). Upstream's `export_formats()` + `validate_args()`
idea, in our style. This module imports nothing from the package, so every layer may read it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

# Export arguments that every exportable format understands (they shape the input or the calibration).
COMMON_EXPORT_ARGS = frozenset({"imgsz", "batch", "device", "half", "int8", "quantize", "data", "split", "fraction"})
# ONNX-level arguments, shared by everything that goes through an ONNX graph.
ONNX_ARGS = frozenset({"dynamic", "simplify", "opset", "calib_method", "nms", "end2end"})
# TensorRT-only arguments (our extensions, see cfg/default.yaml).
ENGINE_ARGS = frozenset(
    {
        "workspace",
        "timing_cache",
        "opt_level",
        "min_shape",
        "opt_shape",
        "max_shape",
        "fp32_io",
        "engine_layout",
        "builder",
    }
)


@dataclass(frozen=True)
class ModelFormat:
    """One model format: how users name it, what files it is, what exporting it accepts."""

    name: str  # canonical name: what `format=` resolves to
    title: str  # the name tables show
    suffix: str  # the suffix an export writes
    aliases: tuple[str, ...] = ()  # other `format=` spellings
    args: frozenset[str] = frozenset()  # export arguments this format uses (besides COMMON_EXPORT_ARGS)
    device: str = "cpu or cuda"  # where it runs
    backend: tuple[str, str] | None = None  # (module, class) AutoBackend loads it with
    load_suffixes: tuple[str, ...] = ()  # further suffixes the same backend loads
    exporter: str | None = None  # "module:function(model, file, args) -> Path"; None: not exportable / built in
    exportable: bool = True  # False for the source format (PyTorch)

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


FORMATS: tuple[ModelFormat, ...] = (
    ModelFormat(
        "pt",
        "PyTorch",
        ".pt",
        aliases=("pytorch", "torch"),
        backend=("ultralytics.nn.backends.pytorch", "PyTorchBackend"),
        load_suffixes=(".pth", ".yaml", ".yml"),
        exportable=False,
    ),
    ModelFormat(  # upstream's default export format; engine/exporter.py calls export/torchscript.py
        "torchscript",
        "TorchScript",
        ".torchscript",
        backend=("ultralytics.nn.backends.torchscript", "TorchScriptBackend"),
    ),
    ModelFormat(
        "onnx",
        "ONNX",
        ".onnx",
        args=ONNX_ARGS,
        backend=("ultralytics.nn.backends.onnxruntime", "OnnxRuntimeBackend"),
    ),
    ModelFormat(
        "engine",
        "TensorRT",
        ".engine",
        aliases=("tensorrt", "trt"),
        args=ONNX_ARGS | ENGINE_ARGS,
        device="cuda",
        backend=("ultralytics.nn.backends.tensorrt", "TensorRTBackend"),
        load_suffixes=(".plan",),
    ),
)

# Every argument some format in the table uses, plus upstream's export arguments none of ours use:
# these are refused when set for a format that ignores them, never silently dropped.
UPSTREAM_ONLY_EXPORT_ARGS = frozenset({"keras", "optimize"})
UPSTREAM_ONLY_REASONS = {
    "keras": "upstream uses it for TensorFlow SavedModel export, which this package does not make",
    "optimize": "upstream uses it to optimize TorchScript for mobile",
}


class FormatError(ValueError):
    """An unknown format, or an export argument the chosen format does not use."""


def export_formats() -> tuple[ModelFormat, ...]:
    """The formats `export` can write, in table order."""
    return tuple(f for f in FORMATS if f.exportable)


def format_names(exportable_only: bool = True) -> str:
    """'onnx, engine (aliases tensorrt, trt)' for messages."""
    parts = []
    for f in export_formats() if exportable_only else FORMATS:
        parts.append(f.name + (f" (aliases {', '.join(f.aliases)})" if f.aliases else ""))
    return ", ".join(parts)


def find_format(fmt: str, exportable: bool = True) -> ModelFormat:
    """The format named `fmt` (any alias, any case, leading dot allowed); FormatError otherwise.

    With `exportable` (the default, for `export`), the source format (PyTorch) is refused too.
    """
    key = str(fmt).strip().lower().lstrip(".")
    for f in FORMATS:
        if key in f.spellings or key == f.suffix.lstrip("."):
            if exportable and not f.exportable:
                raise FormatError(
                    f"format={fmt} is the model's own format, nothing to export; choose one of: {format_names()}"
                )
            return f
    spellings = [s for f in export_formats() for s in f.spellings]
    close = difflib.get_close_matches(key, spellings, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise FormatError(f"export format '{fmt}' is not supported here.{hint} Supported: {format_names()}")


def formats_using(arg: str) -> list[str]:
    """Names of the exportable formats that use the export argument `arg`."""
    return [f.name for f in export_formats() if arg in f.args or arg in COMMON_EXPORT_ARGS]


def all_export_args() -> frozenset[str]:
    """Every format-specific export argument (the ones the per-format check looks at)."""
    found: set[str] = set(UPSTREAM_ONLY_EXPORT_ARGS)
    for f in export_formats():
        found |= f.args
    return frozenset(found)


def check_export_args(fmt: ModelFormat, given: dict[str, object]) -> None:
    """Refuse (one line) any set argument in `given` that `fmt` does not use, naming the formats that do."""
    for arg in sorted(given):
        if arg in COMMON_EXPORT_ARGS or arg in fmt.args or arg not in all_export_args():
            continue
        if given[arg] is None or given[arg] is False:  # switched off: asks for nothing (e.g. nms=False)
            continue
        users = formats_using(arg)
        if users:
            where = f"it applies to format={' / format='.join(users)}"
        else:
            where = UPSTREAM_ONLY_REASONS.get(arg, "no format in this build uses it")
        raise FormatError(
            f"'{arg}={given[arg]}' is not used by format={fmt.name} ({where}); remove it or change format="
        )


def loadable_suffixes() -> dict[str, tuple[str, str]]:
    """suffix → (module, class) for every format AutoBackend can load."""
    table: dict[str, tuple[str, str]] = {}
    for f in FORMATS:
        if f.backend:
            for suffix in (f.suffix, *f.load_suffixes):
                table[suffix] = f.backend
    return table


def benchmark_formats() -> tuple[str, ...]:
    """The formats `yolo benchmark` measures, in table order."""
    return tuple(f.name for f in FORMATS if f.backend)


def format_titles() -> dict[str, str]:
    """name → title ('engine' → 'TensorRT')."""
    return {f.name: f.title for f in FORMATS}


def check_model_file(path: str | Path) -> None:
    """Refuse an exported model that cannot be a model (empty, or an ONNX file that does not parse) at load time.

    Without this a truncated download or copy loads into `YOLO()` fine and fails only at the first predict.
    Files whose format has no cheap check (TensorRT plans need TensorRT) only need to be non-empty here.
    """
    path = Path(path)
    redo = "copy it again or export it again (yolo export model=<weights>.pt format=...)"
    if path.stat().st_size == 0:
        raise ValueError(f"model file '{path}' is empty (0 bytes): {redo}")
    if path.suffix.lower() != ".onnx":
        return
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as e:  # protobuf's DecodeError and friends: the bytes are not an ONNX model
        raise ValueError(f"model file '{path}' is not a valid ONNX model ({type(e).__name__}): {redo}") from None
    if not graph.node or not graph.input or not graph.output:
        raise ValueError(f"model file '{path}' holds no ONNX graph (no nodes, inputs or outputs): {redo}")
