"""Configuration: merge user overrides over default.yaml, validate them, and run the `yolo` CLI.

Validation happens here, once, so every mode can trust its arguments: an unknown key names the
closest valid one, and a value of the wrong kind says which kind was expected.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

from ultralytics.utils import (
    ASSETS,
    DEFAULT_CFG_DICT,
    DEFAULT_CFG_KEYS,
    LOGGER,
    IterableSimpleNamespace,
    yaml_load,
)

MODES = ("predict", "export", "val", "benchmark", "compare")
TASKS = ("detect",)

# Keys whose values are fractions in [0, 1].
FRACTION_KEYS = frozenset({"conf", "iou", "fraction"})
# Keys whose values are whole numbers.
INT_KEYS = frozenset({"batch", "max_det", "vid_stride", "workers", "opset", "opt_level", "line_width"})
# Keys whose values are booleans.
BOOL_KEYS = frozenset(k for k, v in DEFAULT_CFG_DICT.items() if isinstance(v, bool))
FLOAT_KEYS = frozenset({"workspace"})

# Upstream's `quantize` spellings (cfg/__init__.py of 8.4.x): numbers, precisions and weight/activation names.
QUANTIZE_ALIASES: dict[str, int] = {
    "8": 8,
    "int8": 8,
    "w8a8": 8,
    "16": 16,
    "fp16": 16,
    "half": 16,
    "w16a16": 16,
    "32": 32,
    "fp32": 32,
    "float32": 32,
}
UNSUPPORTED_QUANTIZE = ("w8a16", "w8a32")  # weight-only quantization: not implemented here

ENGINE_FORMATS = ("engine", "tensorrt", "trt")
EXPORT_FORMATS = ("onnx", "torchscript", *ENGINE_FORMATS)


class ConfigError(ValueError):
    """A bad key or value in the user's configuration."""


def _closest_key(key: str) -> str:
    match = difflib.get_close_matches(key, sorted(DEFAULT_CFG_KEYS), n=1, cutoff=0.4)
    return f" Did you mean '{match[0]}'?" if match else ""


def check_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """Raise ConfigError for unknown keys or values of the wrong kind; normalise a few spellings."""
    for key in cfg:
        if key not in DEFAULT_CFG_KEYS:
            raise ConfigError(f"'{key}' is not a valid argument.{_closest_key(key)} See ultralytics/cfg/default.yaml.")
    for key, value in cfg.items():
        if value is None:
            continue
        if key in FRACTION_KEYS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"'{key}={value!r}' must be a number between 0.0 and 1.0")
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"'{key}={value}' is outside [0.0, 1.0]; valid values are between 0.0 and 1.0")
            cfg[key] = float(value)
        elif key in INT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
                raise ConfigError(f"'{key}={value!r}' must be a whole number, e.g. '{key}=8'")
            cfg[key] = int(value)
        elif key in FLOAT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"'{key}={value!r}' must be a number")
            cfg[key] = float(value)
        elif key in BOOL_KEYS:
            if not isinstance(value, bool):
                if value in (0, 1):
                    cfg[key] = bool(value)
                else:
                    raise ConfigError(f"'{key}={value!r}' must be a bool, i.e. '{key}=True' or '{key}=False'")
    if cfg.get("imgsz") is not None:
        cfg["imgsz"] = check_imgsz_value(cfg["imgsz"])
    return cfg


def check_imgsz_value(imgsz: Any) -> int | list[int]:
    """Accept an int, or a 1- or 2-element list/tuple of ints ([h, w])."""
    if isinstance(imgsz, str) and imgsz.strip().lstrip("[(").rstrip("])"):
        parts = [p for p in imgsz.strip("[]() ").replace(",", " ").split() if p]
        try:
            imgsz = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"imgsz={imgsz!r} must be an integer or [height, width]") from None
    if isinstance(imgsz, bool):
        raise ConfigError(f"imgsz={imgsz!r} must be an integer or [height, width]")
    if isinstance(imgsz, int | float):
        if imgsz <= 0 or int(imgsz) != imgsz:
            raise ConfigError(f"imgsz={imgsz} must be a positive integer")
        return int(imgsz)
    if isinstance(imgsz, list | tuple) and 1 <= len(imgsz) <= 2 and all(isinstance(v, int | float) for v in imgsz):
        if any(v <= 0 or int(v) != v for v in imgsz):
            raise ConfigError(f"imgsz={list(imgsz)} must hold positive integers")
        return [int(v) for v in imgsz]
    raise ConfigError(f"imgsz={imgsz!r} must be an integer or [height, width]")


def get_cfg(overrides: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None) -> IterableSimpleNamespace:
    """Defaults (default.yaml, or `defaults`), then the user's overrides, validated."""
    merged = dict(DEFAULT_CFG_DICT if defaults is None else defaults)
    overrides = check_cfg(dict(overrides or {}))
    merged.update(overrides)
    return IterableSimpleNamespace(**merged)


def resolve_precision(half: Any = False, int8: Any = False, quantize: Any = None) -> int:
    """Return 32, 16 or 8 from upstream's three spellings.

    Upstream's rules (8.4.x `_handle_deprecation`): an explicit `quantize` overrides both legacy flags;
    otherwise `int8` wins over `half`; a false value asks for nothing.
    """
    if quantize not in (None, "", False):
        key = str(quantize).strip().lower()
        if key in UNSUPPORTED_QUANTIZE:
            raise ConfigError(f"quantize={quantize!r} (weight-only quantization) is not supported; use 8, 16 or 32")
        if key not in QUANTIZE_ALIASES:
            raise ConfigError(f"quantize={quantize!r} is not valid; use 8, 16 or 32 (or int8, fp16, fp32)")
        return QUANTIZE_ALIASES[key]
    if int8:
        return 8
    if half:
        return 16
    return 32


def normalize_format(fmt: str) -> str:
    """Map the export format aliases to 'onnx' or 'engine'; clear error for anything else."""
    fmt = str(fmt).lower().lstrip(".")
    if fmt in ENGINE_FORMATS:
        return "engine"
    if fmt in ("onnx", "torchscript"):
        return fmt
    close = difflib.get_close_matches(fmt, EXPORT_FORMATS, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError(
        f"export format '{fmt}' is not supported here.{hint} Supported: onnx, torchscript, engine (aliases tensorrt, trt)"
    )


# ------------------------------------------------------------------------------------------- CLI
HELP = f"""
Usage: yolo [TASK] MODE [key=value ...]

  MODE   one of {", ".join(MODES)}, or: version, help
  TASK   detect (optional; the only task here)

Examples:
  yolo predict model=yolov8n.pt source=bus.jpg imgsz=640
  yolo export model=yolov8n.pt format=engine half=True       (or quantize=16)
  yolo export model=yolov8n.pt format=onnx dynamic=True
  yolo val model=yolov8n.engine data=coco8.yaml
  yolo benchmark model=yolov8n.pt data=data.yaml imgsz=640
  yolo compare model=yolov8n.pt other=yolov8n.engine source=images/

With no model, predict uses the bundled shapes model ({ASSETS.name}/shapes_yolov8n.pt) on the bundled images.
Every key and its default: ultralytics/cfg/default.yaml
"""


def parse_value(text: str) -> Any:
    """CLI value text → Python value: numbers, True/False/None, lists; anything else stays a string."""
    import yaml

    if text.lower() in ("none", "null", ""):
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, int | float | list | bool) else text


def parse_cli(argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """Split `yolo [TASK] MODE key=value ...` into the mode and the overrides."""
    mode = None
    overrides: dict[str, Any] = {}
    for arg in argv:
        if "=" in arg:
            key, _, text = arg.partition("=")
            key = key.strip().lstrip("-")
            if not key:
                raise ConfigError(f"'{arg}' has no key; use key=value")
            overrides[key] = parse_value(text.strip())
        elif arg in TASKS:
            overrides["task"] = arg
        elif arg in MODES or arg in ("version", "help", "-h", "--help"):
            mode = arg
        elif arg.lstrip("-") in BOOL_KEYS:  # bare flag, e.g. `yolo export half`
            overrides[arg.lstrip("-")] = True
        else:
            close = difflib.get_close_matches(arg, list(MODES) + sorted(DEFAULT_CFG_KEYS), n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"'{arg}' is not a valid mode, task or key=value pair.{hint} Run 'yolo help'.")
    return mode, overrides


def entrypoint(argv: list[str] | None = None) -> Any:
    """The `yolo` command."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        mode, overrides = parse_cli(argv)
        if mode in (None, "help", "-h", "--help"):
            print(HELP)
            return None
        if mode == "version":
            from ultralytics import __version__

            print(__version__)
            return __version__
        check_cfg(dict(overrides))
        return _run_mode(mode, overrides)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as e:
        LOGGER.error(f"Error: {e}")
        raise SystemExit(2) from e


def default_model() -> str:
    return str(ASSETS / "shapes_yolov8n.pt")


def _run_mode(mode: str, overrides: dict[str, Any]) -> Any:
    from ultralytics import YOLO

    model_path = overrides.pop("model", None) or default_model()
    if overrides.get("cfg"):
        overrides.update(yaml_load(overrides.pop("cfg")))
    model = YOLO(model_path)
    if mode == "predict":
        overrides.setdefault("save", True)  # the CLI saves annotated images by default, like upstream
        if overrides.get("source") is None:
            overrides["source"] = str(ASSETS)
            LOGGER.warning(f"WARNING source is missing, using the bundled images in {ASSETS}")
        results = model.predict(**overrides)
        return results
    if mode == "export":
        return model.export(**overrides)
    if mode == "val":
        return model.val(**overrides)
    if mode == "benchmark":
        return model.benchmark(**overrides)
    if mode == "compare":
        other = overrides.pop("other", None)
        if not other:
            raise ConfigError(
                "compare needs other=<second model>, e.g. yolo compare model=a.pt other=a.onnx source=img/"
            )
        return model.compare(other, **overrides)
    raise ConfigError(f"unknown mode '{mode}'")


def cfg_path(name: str) -> Path:
    """Where a bundled yaml lives (model architectures)."""
    return Path(__file__).parent / name


if __name__ == "__main__":
    entrypoint()
