"""Model metadata in upstream Ultralytics' keys and value formats.

Exported models carry their class names, stride, input size and export arguments with them, so that
a `.onnx` or `.engine` predicts correctly without the `.pt`. We write the keys upstream writes and
read them the way upstream reads them, so an upstream export loads here and ours loads there:

- ONNX `metadata_props` hold strings: ints as `str(int)`, and lists, dicts and booleans as Python
  literals (`"[320, 320]"`, `"{0: 'circle'}"`, `"False"`), which upstream parses with
  `ast.literal_eval`.
- An engine header holds JSON, where dict keys turn into strings (`{"0": "circle"}`).

`parse_metadata` accepts both, so every backend gets the same typed dict.
"""

from __future__ import annotations

import ast
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch import nn

import ultralytics

AUTHOR = "Ultralytics"
LICENSE = "AGPL-3.0 License (https://ultralytics.com/license)"
DOCS = "https://docs.ultralytics.com"

# Upstream casts these with int() when reading.
INT_KEYS = ("stride", "batch", "channels")
# Upstream parses these string values with ast.literal_eval when reading.
LITERAL_KEYS = ("imgsz", "names", "args", "end2end", "kpt_shape", "kpt_names", "dynamic", "half", "int8")


def _model_stride(model: nn.Module) -> int:
    stride = getattr(model, "stride", None)
    if stride is None:
        return 32
    try:
        return int(max(stride))
    except TypeError:  # a plain number
        return int(stride)


def _model_channels(model: nn.Module) -> int:
    spec = getattr(model, "yaml", None)
    if isinstance(spec, dict):
        for key in ("channels", "ch"):
            if spec.get(key) is not None:
                return int(spec[key])
    return 3


def _pretty_name(model: nn.Module) -> str:
    """'YOLOv8n' from the model's yaml file name, as upstream's description shows it."""
    spec = getattr(model, "yaml", None)
    yaml_file = spec.get("yaml_file") if isinstance(spec, dict) else None
    if not yaml_file:
        return "YOLO"
    return Path(str(yaml_file)).stem.replace("yolo", "YOLO")


def build_metadata(
    model: nn.Module, *, imgsz: tuple[int, int] | list[int], batch: int, args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The metadata dict of an export, typed (ints, lists, dicts); writers turn it into strings or JSON.

    `args` is the subset of export arguments upstream records for the format (batch, data, dynamic,
    quantize, opset, simplify, ...); it is stored as given.
    """
    args = dict(args or {})
    data = args.get("data")
    names = getattr(model, "names", None)
    if not names:
        raise ValueError("the model has no class names (model.names); cannot write export metadata without them")
    if not isinstance(names, dict):
        names = dict(enumerate(names))
    head = model.model[-1] if hasattr(model, "model") and len(getattr(model, "model", [])) else None
    return {
        "description": f"Ultralytics {_pretty_name(model)} model {f'trained on {data}' if data else ''}".rstrip(),
        "author": AUTHOR,
        "date": datetime.now(timezone.utc).isoformat(),
        "version": ultralytics.__version__,
        "license": LICENSE,
        "docs": DOCS,
        "stride": _model_stride(model),
        "task": "detect",
        "head": type(head).__name__ if head is not None else "Detect",
        "batch": int(batch),
        "imgsz": [int(v) for v in imgsz],
        "names": {int(k): str(v) for k, v in names.items()},
        "args": args,
        "channels": _model_channels(model),
        "end2end": bool(getattr(model, "end2end", False)),
    }


def to_onnx_props(metadata: dict[str, Any]) -> dict[str, str]:
    """String values for ONNX `metadata_props`: `str()` of each value, as upstream writes them.

    `str()` of ints, lists, dicts, None and booleans is a Python literal, which is what upstream's
    reader (`int()` / `ast.literal_eval`) expects.
    """
    return {str(k): str(v) for k, v in metadata.items()}


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The raw `metadata_props` of an ONNX file as a {key: string} dict ({} when there are none)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file '{path}' does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError, onnx raises ValueError/OSError
        raise ValueError(f"'{path}' is not a readable ONNX file ({type(e).__name__}: {e})") from e
    return {p.key: p.value for p in model.metadata_props}


def _literal(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"metadata key {key!r} has the value {value!r}, which is not a Python literal") from e


def parse_metadata(raw: dict[str, Any]) -> dict[str, Any]:
    """Typed metadata from ONNX strings or engine JSON: stride/batch/channels int, imgsz [h, w],
    names {int: str}, args dict, end2end bool. Unknown keys pass through unchanged."""
    meta: dict[str, Any] = dict(raw)
    for key in INT_KEYS:
        if meta.get(key) is not None:
            try:
                meta[key] = int(meta[key])
            except (TypeError, ValueError) as e:
                raise ValueError(f"metadata key {key!r} should be an integer, got {meta[key]!r}") from e
    for key in LITERAL_KEYS:
        if key in meta:
            meta[key] = _literal(key, meta[key])
    if meta.get("imgsz") is not None:
        imgsz = meta["imgsz"]
        meta["imgsz"] = [int(imgsz), int(imgsz)] if isinstance(imgsz, int) else [int(v) for v in imgsz]
    names = meta.get("names")
    if names is not None:
        if isinstance(names, (list, tuple)):
            names = dict(enumerate(names))
        if not isinstance(names, dict):
            raise ValueError(f"metadata 'names' should be a dict of class index to name, got {type(names).__name__}")
        meta["names"] = {int(k): str(v) for k, v in names.items()}
    if "end2end" in meta and meta["end2end"] is not None:
        meta["end2end"] = bool(meta["end2end"])
    return meta
