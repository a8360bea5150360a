"""The `.engine` file layout: upstream's metadata header, or a plain TensorRT plan plus a sidecar JSON.

Upstream Ultralytics writes `int32 little-endian N | N bytes of JSON metadata | plan`, so that a
`.engine` file carries its class names and image size. Plain TensorRT loaders (trtexec, Triton,
C++ `deserializeCudaEngine`) cannot read that header, so `layout="plan"` writes the bare plan and
puts the metadata in `<stem>.json` next to it. Reading accepts both, and upstream's files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ultralytics.utils.atomic_file import atomic_write, atomic_write_group

HEADER_LENGTH_BYTES = 4  # the little-endian int32 length that precedes the JSON metadata
ENGINE_LAYOUTS = ("ultralytics", "plan")


@dataclass
class EngineFile:
    """What a `.engine` file holds once read."""

    plan: bytes
    metadata: dict = field(default_factory=dict)
    layout: str = "plan"  # "ultralytics" (header in the file) or "plan" (bare plan)
    sidecar: Path | None = None  # the `<stem>.json` the metadata came from, for plain plans


def sidecar_path(engine_path: str | Path) -> Path:
    """Where the metadata of a plain-plan engine lives: `<stem>.json` beside it."""
    return Path(engine_path).with_suffix(".json")


def encode_header(metadata: dict) -> bytes:
    """Upstream's header: the JSON (ASCII-escaped, so len == byte count) prefixed by its length."""
    text = json.dumps(metadata).encode("ascii")
    return len(text).to_bytes(HEADER_LENGTH_BYTES, "little", signed=True) + text


def split_header(data: bytes) -> tuple[dict, int]:
    """Return (metadata, plan offset); (`{}`, 0) when the bytes start with no readable header.

    Upstream's rule: the first 4 bytes are a length N; if 0 < N <= len - 4 and the next N bytes are
    JSON, that is the header. Anything else means a plain plan. We also require the JSON to be an
    object, so a plan whose first bytes happen to decode as a JSON number is not mistaken for one.
    """
    if len(data) < HEADER_LENGTH_BYTES:
        return {}, 0
    length = int.from_bytes(data[:HEADER_LENGTH_BYTES], "little", signed=False)
    if not 0 < length <= len(data) - HEADER_LENGTH_BYTES:
        return {}, 0
    try:
        metadata = json.loads(data[HEADER_LENGTH_BYTES : HEADER_LENGTH_BYTES + length].decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        return {}, 0
    if not isinstance(metadata, dict):
        return {}, 0
    return metadata, HEADER_LENGTH_BYTES + length


def write_engine_file(
    path: str | Path, plan: bytes | bytearray | memoryview, metadata: dict | None = None, layout: str = "ultralytics"
) -> Path:
    """Write a serialized plan as `layout` ("ultralytics": header + plan; "plan": plan + `<stem>.json`)."""
    if layout not in ENGINE_LAYOUTS:
        raise ValueError(f"engine_layout={layout!r} is not valid; use one of {', '.join(ENGINE_LAYOUTS)}")
    path = Path(path)
    plan = bytes(plan)
    if not plan:
        raise ValueError("refusing to write an empty TensorRT plan (the build produced no bytes)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {path.parent} does not exist")
    if layout == "ultralytics":
        atomic_write(path, encode_header(metadata or {}) + plan if metadata else plan)
    else:
        # the plan and its metadata are one unit: both land, or neither changes
        atomic_write_group({path: plan, sidecar_path(path): json.dumps(metadata or {}, indent=2)})
    return path


def _check_plan_size(path: Path, plan: bytes, metadata: dict) -> None:
    """Our metadata records the plan's size (`plan_size`), which turns a truncated copy into a clear error."""
    expected = metadata.get("plan_size")
    if isinstance(expected, int) and expected != len(plan):
        raise ValueError(
            f"{path} is damaged: its metadata says the TensorRT plan has {expected} bytes but the file holds "
            f"{len(plan)} (truncated or partly copied); copy or export the engine again"
        )


def read_engine_file(path: str | Path) -> EngineFile:
    """Read an engine in any layout we or upstream write; metadata is `{}` when there is none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TensorRT engine not found: {path}")
    data = path.read_bytes()
    if not data:
        raise ValueError(f"{path} is empty (0 bytes): the file was truncated or never written; export the engine again")
    metadata, offset = split_header(data)
    if offset:
        plan = data[offset:]
        if not plan:
            raise ValueError(
                f"{path} holds an Ultralytics metadata header but no TensorRT plan after it (truncated file); "
                "export the engine again"
            )
        _check_plan_size(path, plan, metadata)
        return EngineFile(plan=plan, metadata=metadata, layout="ultralytics")
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        try:
            side = json.loads(sidecar.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ValueError(f"the engine's metadata file {sidecar} is not valid JSON ({e}); fix or delete it") from e
        if isinstance(side, dict):
            _check_plan_size(path, data, side)
            return EngineFile(plan=data, metadata=side, layout="plan", sidecar=sidecar)
    return EngineFile(plan=data, metadata={}, layout="plan")
