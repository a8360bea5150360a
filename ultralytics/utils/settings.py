"""The package's environment switches, read in one place.

Every `ULTRALYTICS_GPU_*` switch (and the decode pool's size) is read here and nowhere else, so a
reader can find them all and their defaults in one table. They are read from the environment at each
call, not once at import: tests and benchmarks flip them at run time, and reading a few variables costs
microseconds next to a predict call.

| variable | values | what it changes |
|---|---|---|
| `ULTRALYTICS_GPU_RESIZE` | `exact` (default) / `fast` | GPU letterbox resize: OpenCV's bit-exact arithmetic, or float bilinear |
| `ULTRALYTICS_GPU_TRITON` | `1` (default) / `0` | `0` keeps the torch letterbox where the fused Triton kernel could run |
| `ULTRALYTICS_GPU_HOST_LETTERBOX` | `auto` (default) / `1` / `0` | resize frames on the host (threads) before the upload, or upload full frames |
| `ULTRALYTICS_GPU_CHUNK` | integer, default 32; `0` = off | frames per chunk of a larger batch on CUDA (the upload of one chunk overlaps the network of the previous) |
| `ULTRALYTICS_DECODE_WORKERS` | integer, `0` = auto (default) | threads decoding image files (auto: cores − 2, 1..16) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass

RESIZE_ENV = "ULTRALYTICS_GPU_RESIZE"
TRITON_ENV = "ULTRALYTICS_GPU_TRITON"
DECODE_WORKERS_ENV = "ULTRALYTICS_DECODE_WORKERS"
HOST_LETTERBOX_ENV = "ULTRALYTICS_GPU_HOST_LETTERBOX"
CHUNK_ENV = "ULTRALYTICS_GPU_CHUNK"
DEFAULT_CHUNK = 32


@dataclass(frozen=True)
class Settings:
    gpu_resize: str  # "exact" | "fast" (anything else is reported by the letterbox that uses it)
    gpu_triton: bool
    decode_workers: int  # 0: sized to the machine
    gpu_host_letterbox: str  # "auto" | "1" | "0"
    gpu_chunk: int  # frames per chunk of a larger batch; 0: no chunks


def settings() -> Settings:
    """The switches as the environment sets them now."""
    env = os.environ
    workers = _whole_number(DECODE_WORKERS_ENV, "0", "a whole number of threads (0 = auto)")
    chunk = _whole_number(CHUNK_ENV, str(DEFAULT_CHUNK), "a whole number of frames (0 = no chunks)")
    return Settings(
        gpu_resize=env.get(RESIZE_ENV, "exact").strip().lower(),
        gpu_triton=env.get(TRITON_ENV, "1").strip() != "0",
        decode_workers=workers,
        gpu_chunk=chunk,
        gpu_host_letterbox=env.get(HOST_LETTERBOX_ENV, "auto").strip().lower() or "auto",
    )


def _whole_number(name: str, default: str, what: str) -> int:
    text = os.environ.get(name, default).strip() or default
    if not text.isdigit():
        raise ValueError(f"{name}={text!r} is not valid: use {what}")
    return int(text)
