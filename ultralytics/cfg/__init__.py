"""Configuration: merge user overrides over default.yaml, validate them, and run the `yolo` CLI
(whose dispatcher, which needs `YOLO`, is `engine/cli.py`).

Validation happens here, once, so every mode can trust its arguments: an unknown key names the
closest valid one, a value of the wrong kind says which kind was expected, and upstream keys that do
nothing in a deployment package (training, tracking) say so in one line instead of vanishing.
"""

from __future__ import annotations

import difflib
import importlib
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
from ultralytics.utils.formats import FormatError, find_format, format_names

MODES = ("predict", "export", "val", "benchmark", "compare")
TASKS = ("detect",)
# Upstream modes and tasks this package does not have: a one-line reason instead of "unknown argument".
UPSTREAM_ONLY_MODES = {
    "train": "training is not part of this package (it deploys trained models); train with upstream Ultralytics",
    "track": "tracking is not part of this package; run predict and track the boxes yourself",
}
UPSTREAM_ONLY_TASKS = ("segment", "semantic", "depth", "classify", "pose", "obb")
COMMANDS = ("help", "version", "checks", "settings", "cfg", "copy-cfg")

# Keys whose values are fractions in [0, 1].
FRACTION_KEYS = frozenset({"conf", "iou", "fraction"})
# Keys whose values are whole numbers, and the smallest value that makes sense (as upstream's CFG_INT_MIN).
INT_KEYS = frozenset({"batch", "max_det", "vid_stride", "workers", "opset", "opt_level", "line_width"})
INT_MIN = {"batch": 1, "max_det": 1, "vid_stride": 1, "workers": 0, "line_width": 1, "opt_level": 0}
# Keys whose values are booleans.
BOOL_KEYS = frozenset(k for k, v in DEFAULT_CFG_DICT.items() if isinstance(v, bool))
FLOAT_KEYS = frozenset({"workspace"})

# Upstream keys accepted so existing command lines keep working, with why they change nothing here.
TRAINING_REASON = "it is a training argument, and this package runs trained models (it does not train)"
TRAINING_KEYS = frozenset(
    """epochs time patience save_period pretrained cls_remap optimizer seed deterministic cos_lr close_mosaic
    resume amp freeze multi_scale overlap_mask mask_ratio dropout val lr0 lrf momentum weight_decay warmup_epochs
    warmup_momentum warmup_bias_lr distill_model dis box cls cls_pw dfl pose kobj rle angle dlog dgrad dlam nbs
    hsv_h hsv_s hsv_v degrees translate scale shear perspective flipud fliplr bgr mosaic mixup cutmix copy_paste
    copy_paste_mode auto_augment erasing profile""".split()
)
INERT_KEYS: dict[str, str] = {
    **{k: TRAINING_REASON for k in TRAINING_KEYS},
    "tracker": "it configures `yolo track`, and tracking is not part of this package",
    "cache": "val reads each image from disk once per run here, so there is nothing to cache",
    "dnn": "ONNX models always run with ONNX Runtime here (OpenCV DNN is not used)",
    "compile": "torch.compile is not used here; for speed, export to TensorRT (format=engine)",
    "channels_last": (
        "the layout is the package's: torch's default, or channels-last for FP16 PyTorch models on CUDA with "
        "ULTRALYTICS_GPU_CHANNELS_LAST=1 (opt-in: FP16 boxes may move by an FP16 step or two)"
    ),
    "retina_masks": "it is a segmentation argument, and this package detects boxes only",
}
# Upstream features not implemented here: refused (when switched on) with the reason, never ignored.
REFUSED_KEYS: dict[str, str] = {
    "augment": "test-time augmentation (augment=True) is not implemented here; remove it",
    "visualize": "feature-map visualization (visualize=True) is not implemented here; remove it",
    "embed": "feature embeddings (embed=) are not implemented here; remove it",
    "single_cls": "single_cls=True (all classes as one) is not implemented for val here; remove it",
    "save_frames": "save_frames=True (every video frame as an image) is not implemented here; use save=True",
}
_explained: set[str] = set()  # inert keys already explained in this process (one line each, not one per call)

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


class ConfigError(ValueError):
    """A bad key or value in the user's configuration."""


def _closest_key(key: str) -> str:
    match = difflib.get_close_matches(key, sorted(DEFAULT_CFG_KEYS), n=2, cutoff=0.4)
    return f" Did you mean {' or '.join(repr(m) for m in match)}?" if match else ""


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
                raise ConfigError(f"'{key}={value}' must be a number between 0.0 and 1.0")
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"'{key}={value}' is outside [0.0, 1.0]; valid values are between 0.0 and 1.0")
            cfg[key] = float(value)
        elif key in INT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
                raise ConfigError(f"'{key}={value}' must be a whole number, e.g. '{key}=8'")
            cfg[key] = int(value)
            if key in INT_MIN and cfg[key] < INT_MIN[key]:
                hint = " (upstream's batch=-1 AutoBatch is a training feature)" if key == "batch" else ""
                raise ConfigError(f"'{key}={value}' is an invalid value: '{key}' must be >= {INT_MIN[key]}{hint}")
        elif key in FLOAT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"'{key}={value}' must be a number")
            cfg[key] = float(value)
        elif key in BOOL_KEYS:
            if not isinstance(value, bool):
                if value in (0, 1):
                    cfg[key] = bool(value)
                else:
                    raise ConfigError(f"'{key}={value}' must be a bool, i.e. '{key}=True' or '{key}=False'")
    if cfg.get("imgsz") is not None:
        cfg["imgsz"] = check_imgsz_value(cfg["imgsz"])
    if cfg.get("classes") is not None:
        cfg["classes"] = check_classes(cfg["classes"])
    for key, reason in REFUSED_KEYS.items():
        if cfg.get(key) not in (None, False, DEFAULT_CFG_DICT.get(key)):
            raise ConfigError(f"'{key}={cfg[key]}': {reason}")
    return cfg


def check_classes(classes: Any) -> list[int]:
    """`classes=` as a list of class ids: an int, a list of ints, or '0,2' text; anything else is refused."""
    hint = "must be a class id or a list of class ids, e.g. classes=0 or classes=[0,2]"
    if isinstance(classes, str):
        parts = [p for p in classes.strip("[]() ").replace(",", " ").split() if p]
        try:
            classes = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"'classes={classes}' {hint}") from None
    values = list(classes) if isinstance(classes, list | tuple) else [classes]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v or v < 0:
            raise ConfigError(f"'classes={classes}' {hint} (whole numbers >= 0; got {v!r})")
    return [int(v) for v in values]


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
    """Defaults (default.yaml, or `defaults`), then `cfg=<yaml>`'s keys, then the user's overrides, validated."""
    merged = dict(DEFAULT_CFG_DICT if defaults is None else defaults)
    overrides = dict(overrides or {})
    if overrides.get("cfg"):
        overrides = {**load_cfg_file(overrides.pop("cfg")), **overrides}
    overrides = check_cfg(overrides)
    explain_inert_keys(overrides)
    merged.update(overrides)
    return IterableSimpleNamespace(**merged)


def load_cfg_file(path: str | Path) -> dict[str, Any]:
    """The overrides in a `cfg=my.yaml` file (upstream's meaning): keys equal to the defaults are dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cfg={path}: the file does not exist; 'yolo copy-cfg' writes one to start from")
    try:
        data = yaml_load(path)
    except Exception as e:  # yaml.YAMLError and decoding errors: say which file, in one line
        raise ConfigError(f"cfg={path} is not valid YAML ({type(e).__name__}); fix it or run 'yolo copy-cfg'") from e
    if not isinstance(data, dict):
        raise ConfigError(f"cfg={path} must hold key: value lines (a mapping), got {type(data).__name__}")
    data.pop("cfg", None)
    return {k: v for k, v in data.items() if k == "mode" or not (k in DEFAULT_CFG_DICT and DEFAULT_CFG_DICT[k] == v)}


def explain_inert_keys(cfg: dict[str, Any]) -> None:
    """One warning line per upstream key that was set but does nothing here (once per process)."""
    for key, reason in INERT_KEYS.items():
        if key in cfg and cfg[key] != DEFAULT_CFG_DICT.get(key) and key not in _explained:
            _explained.add(key)
            LOGGER.warning(f"WARNING '{key}={cfg[key]}' has no effect here: {reason}")


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
    """The canonical export format name for any alias ('trt' → 'engine'); ConfigError for anything else."""
    try:
        return find_format(fmt).name
    except FormatError as e:
        raise ConfigError(str(e)) from None


# ------------------------------------------------------------------------------------------- CLI
HELP = f"""
Usage: yolo [TASK] MODE [key=value ...]

  MODE   one of {", ".join(MODES)}
  TASK   detect (optional; the only task here)
  or one of the commands: {", ".join(COMMANDS)} (and 'yolo checks tensorrt')

Examples:
  yolo predict model=yolov8n.pt source=bus.jpg imgsz=640
  yolo export model=yolov8n.pt format=engine half=True       (or quantize=16)
  yolo export model=yolov8n.pt format=onnx dynamic=True
  yolo val model=yolov8n.engine data=coco8.yaml
  yolo benchmark model=yolov8n.pt data=data.yaml imgsz=640
  yolo compare model=yolov8n.pt other=yolov8n.engine source=images/
  yolo predict cfg=my.yaml                                    (a yaml of key: value overrides)

Export formats: {format_names()}
With no model, predict uses the bundled shapes model ({ASSETS.name}/shapes_yolov8n.pt) on the bundled images.
Every key and its default: 'yolo cfg' (ultralytics/cfg/default.yaml). Errors are one line;
add verbose=True for the full traceback.
"""
# Errors a user can cause and fix: one line, exit 2. Anything else is a bug: one line too, exit 1.
EXPECTED_ERRORS = (ConfigError, ValueError, OSError, ImportError, RuntimeError, NotImplementedError)


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


def merge_equals_args(argv: list[str]) -> list[str]:
    """Join `key = value`, `key= value` and `key =value` (spaces around '=') into `key=value`, as upstream."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "=" and out and i + 1 < len(argv):
            out[-1] += "=" + argv[i + 1]
            i += 2
            continue
        if arg.endswith("=") and arg.count("=") == 1 and i + 1 < len(argv) and "=" not in argv[i + 1]:
            out.append(arg + argv[i + 1])
            i += 2
            continue
        if arg.startswith("=") and out and "=" not in out[-1]:
            out[-1] += arg
            i += 1
            continue
        out.append(arg)
        i += 1
    return out


def parse_cli(argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """Split `yolo [TASK] MODE key=value ...` into the mode (or command) and the overrides."""
    mode = None
    overrides: dict[str, Any] = {}
    for arg in merge_equals_args(argv):
        if "=" in arg:
            key, _, text = arg.partition("=")
            key = key.strip().lstrip("-")
            if not key:
                raise ConfigError(f"'{arg}' has no key; use key=value")
            value = parse_value(text.strip())
            if key == "mode" and value is not None:  # `yolo mode=predict ...` as upstream
                arg = str(value)
                if arg not in MODES and arg not in UPSTREAM_ONLY_MODES:
                    raise ConfigError(f"'mode={value}' is not a mode; use one of {', '.join(MODES)}")
            else:
                overrides[key] = value
                continue
        name = arg.lstrip("-") if arg.startswith("--") and arg.lstrip("-") in COMMANDS else arg
        if name in TASKS:
            overrides["task"] = name
        elif name in UPSTREAM_ONLY_TASKS:
            raise ConfigError(f"task '{name}' is not supported: this package implements detection only")
        elif name in UPSTREAM_ONLY_MODES:
            raise ConfigError(f"'yolo {name}': {UPSTREAM_ONLY_MODES[name]}")
        elif name in MODES or name in COMMANDS or name in ("-h", "--help"):
            if mode is not None and mode != name:
                raise ConfigError(f"two modes given ('{mode}' and '{name}'); run one at a time")
            mode = name
        elif name.lstrip("-") in BOOL_KEYS:  # bare flag, e.g. `yolo export half`
            overrides[name.lstrip("-")] = True
        else:
            close = difflib.get_close_matches(
                name, list(MODES) + list(COMMANDS) + sorted(DEFAULT_CFG_KEYS), n=1, cutoff=0.5
            )
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"'{arg}' is not a valid mode, task or key=value pair.{hint} Run 'yolo help'.")
    return mode, overrides


def _wants_traceback(argv: list[str]) -> bool:
    """Tracebacks only when the user asked for them with verbose=True on the command line."""
    joined = merge_equals_args(argv)
    return any(a.replace(" ", "").lower() in ("verbose=true", "verbose=1", "verbose") for a in joined)


def one_line(e: BaseException) -> str:
    """An error as one line: short multi-line messages joined, long ones cut with a pointer to the rest."""
    lines = [line.strip() for line in (str(e).strip() or type(e).__name__).splitlines() if line.strip()]
    text = " ".join(lines)
    if len(lines) > 3 or len(text) > 400:
        text = f"{lines[0]} (run with verbose=True for the full message)"
    if not isinstance(e, EXPECTED_ERRORS):
        text = f"{type(e).__name__}: {text} (unexpected: please report it; verbose=True shows the traceback)"
    return text


def cfg_path(name: str) -> Path:
    """Where a bundled yaml lives (model architectures)."""
    return Path(__file__).parent / name


# The `yolo` dispatcher needs `YOLO`, so it lives above the engine (engine/cli.py); upstream's paths
# (`ultralytics.cfg:entrypoint`, the console script of older installs) still resolve, lazily.
_CLI_NAMES = ("entrypoint", "run_cli", "default_model")


def __getattr__(name: str) -> Any:
    if name in _CLI_NAMES:
        return getattr(importlib.import_module("ultralytics.engine.cli"), name)
    raise AttributeError(f"module 'ultralytics.cfg' has no attribute {name!r}")
