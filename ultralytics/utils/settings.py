"""The package's environment switches, read in one place.

Every `ULTRALYTICS_GPU_*` switch (and the decode pool's size) is read here and nowhere else, so a
reader can find them all and their defaults in one table. They are read from the environment at each
call, not once at import: tests and benchmarks flip them at run time, and reading a few variables costs
microseconds next to a predict call.

The table is `SWITCHES` below (also what `yolo settings` prints).

Each switch with a fixed set of values is checked here, with a one-line error naming the valid ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

RESIZE_ENV = "ULTRALYTICS_GPU_RESIZE"
TRITON_ENV = "ULTRALYTICS_GPU_TRITON"
DECODE_WORKERS_ENV = "ULTRALYTICS_DECODE_WORKERS"
HOST_LETTERBOX_ENV = "ULTRALYTICS_GPU_HOST_LETTERBOX"
CHUNK_ENV = "ULTRALYTICS_GPU_CHUNK"
FUSED_ENV = "ULTRALYTICS_GPU_FUSED"
CHANNELS_LAST_ENV = "ULTRALYTICS_GPU_CHANNELS_LAST"
DEFAULT_CHUNK = 32
CHROMA_ENV = "ULTRALYTICS_GPU_JPEG_CHROMA"
JPEG_DECODER_ENV = "ULTRALYTICS_GPU_JPEG_DECODER"
READER_ENV = "ULTRALYTICS_NVDEC_READER"
SESSIONS_ENV = "ULTRALYTICS_NVDEC_SESSIONS"
REUSE_ENV = "ULTRALYTICS_NVDEC_REUSE"
DEFAULT_NVDEC_SESSIONS = 4
FRAME_POOL_ENV = "ULTRALYTICS_FRAME_POOL_MB"
DEFAULT_FRAME_POOL_MB = 384
HOST_MEMORY_ENV = "ULTRALYTICS_TRT_HOST_MEMORY"
TRITON_INTERPRET_ENV = "TRITON_INTERPRET"

# name -> (values, what it changes): the one list of switches, printed by `yolo settings`.
SWITCHES: dict[str, tuple[str, str]] = {
    "ULTRALYTICS_GPU_RESIZE": (
        "`exact` (default) / `fast`",
        "GPU letterbox resize: OpenCV's bit-exact arithmetic, or float bilinear",
    ),
    "ULTRALYTICS_GPU_TRITON": (
        "`1` (default) / `0`",
        "`0` keeps torch where a Triton kernel could run: the letterbox, the NMS, and fused Convs' bias + SiLU (that one read once per process)",
    ),
    "ULTRALYTICS_GPU_HOST_LETTERBOX": (
        "`auto` (default) / `1` / `0`",
        "resize frames on the host (threads) before the upload, or upload full frames",
    ),
    "ULTRALYTICS_GPU_CHUNK": (
        "integer, default 32; `0` = off",
        "frames per chunk of a larger batch on CUDA (the upload of one chunk overlaps the network of the previous)",
    ),
    "ULTRALYTICS_GPU_FUSED": (
        "`1` (default) / `0`",
        "same-size batches (up to 128 MB of frames): letterbox, network and NMS as one CUDA graph, or three",
    ),
    "ULTRALYTICS_GPU_CHANNELS_LAST": (
        "`0` (default) / `1`",
        "FP16 PyTorch models on CUDA: `1` runs weights and network input channels-last (NHWC; the network 15% "
        "faster at batch 32 on the H200, but FP16 boxes may move by an FP16 step or two), `0` torch's NCHW "
        "(read when a model's CUDA pipeline is first set up)",
    ),
    "ULTRALYTICS_DECODE_WORKERS": (
        "integer, `0` = auto (default)",
        "threads decoding image files (auto: cores − 2, 1..16)",
    ),
    "ULTRALYTICS_FRAME_POOL_MB": (
        "integer, default 384; `0` = off",
        "host memory kept for decoded video frames and converted PIL images, reused across calls (a fresh "
        "frame's page faults made a short clip's first batches read twice as slowly); it stays allocated "
        "after a call; 384 MB holds the ~130 frames in flight at 720p and batch 32",
    ),
    "ULTRALYTICS_GPU_JPEG_CHROMA": (
        "`fancy` (default) / `nvjpeg`",
        "`gpu_decode` JPEG chroma: libjpeg's fancy upsampling rebuilt (OpenCV's pixels within a few grey levels), or as nvJPEG decodes it",
    ),
    "ULTRALYTICS_GPU_JPEG_DECODER": (
        "`auto` (default) / `nvjpeg`",
        "`gpu_decode` JPEGs: the GPU's hardware JPEG decoder through nvImageCodec where installed and present "
        "(within 1 grey level of OpenCV on the H200), else torchvision's nvJPEG; `nvjpeg`: torchvision's only",
    ),
    "ULTRALYTICS_NVDEC_READER": (
        "`simple` (default) / `threaded`",
        "which of PyNvVideoCodec's sequential readers `gpu_decode` uses for videos (threaded: its own decode "
        "thread is outside the gate that keeps decoders off a CUDA graph capture)",
    ),
    "ULTRALYTICS_NVDEC_SESSIONS": (
        "integer ≥ 1, default 4; `1` = one sequential session",
        "NVDEC sessions per video for `gpu_decode` (each decodes its own segments in a thread; `simple` reader)",
    ),
    "ULTRALYTICS_NVDEC_REUSE": (
        "`1` (default) / `0`",
        "keep `gpu_decode`'s multi-session NVDEC decoders (videos over 64 frames) between videos and "
        "reconfigure them for the next one (4 sessions start in 67 instead of 280 ms on the H200; each holds "
        "~88 MB of device memory at 720p until exit or `gpu.nvdec_pool.release_all()`), or open fresh ones",
    ),
    "ULTRALYTICS_TRT_HOST_MEMORY": (
        "`1` / unset",
        "test hook: TensorRT buffers in host memory (the stand-in library only)",
    ),
    "YOLO_VERBOSE": (
        "`true` (default) / `false`",
        "upstream's switch: `false` hides the info lines (read once, at import)",
    ),
    "TORCH_FORCE_WEIGHTS_ONLY_LOAD": ("torch's switch", "when set, YOLO checkpoints cannot load (the loader says so)"),
    "DISPLAY": ("the desktop's", "whether `show=True` can open a window"),
    "WAYLAND_DISPLAY": ("the desktop's", "whether `show=True` can open a window"),
    "TRITON_INTERPRET": (
        "`1` / unset",
        "Triton's own switch: the Triton kernels may run on CPU tensors (interpreter; tests)",
    ),
}


@dataclass(frozen=True)
class Settings:
    gpu_resize: str  # "exact" | "fast" (anything else is reported by the letterbox that uses it)
    gpu_triton: bool
    decode_workers: int  # 0: sized to the machine
    gpu_host_letterbox: str  # "auto" | "1" | "0"
    gpu_chunk: int  # frames per chunk of a larger batch; 0: no chunks
    gpu_fused: bool = True  # same-size batches: letterbox + network + NMS in one CUDA graph
    gpu_channels_last: bool = False  # FP16 PyTorch models on CUDA run channels-last (opt-in)
    frame_pool_mb: int = DEFAULT_FRAME_POOL_MB  # host memory kept for video frames and PIL images; 0: none


_SETTINGS_ENV = (
    RESIZE_ENV,
    TRITON_ENV,
    DECODE_WORKERS_ENV,
    HOST_LETTERBOX_ENV,
    CHUNK_ENV,
    FUSED_ENV,
    CHANNELS_LAST_ENV,
    FRAME_POOL_ENV,
)
_PARSED: dict[tuple, Settings] = {}  # the environment's values of the switches → their parsed form
_ENCODED_ENV = tuple(os.environ.encodekey(name) for name in _SETTINGS_ENV) if hasattr(os.environ, "encodekey") else ()


def _switch_values() -> tuple:
    """The switches' raw values: str, or bytes on POSIX (only a cache key; `_parse_settings` reads `os.environ`).

    `os.environ.get` encodes each name and decodes each value in Python, ~1 us a switch, and the CUDA path asks
    ~5 times per `model(frame)`; `os.environ` keeps the encoded strings in its `_data` dict (CPython, every
    version since 3.2; it is what `os.environ[...]` reads), read here in one go."""
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict) and _ENCODED_ENV:
        return tuple(map(data.get, _ENCODED_ENV))
    return tuple(map(os.environ.get, _SETTINGS_ENV))


def settings() -> Settings:
    """The switches as the environment sets them now (read every call, parsed once per set of values:
    the CUDA path asks several times per predict call)."""
    key = _switch_values()
    parsed = _PARSED.get(key)
    if parsed is None:
        parsed = _parse_settings()
        if len(_PARSED) > 32:
            _PARSED.clear()
        _PARSED[key] = parsed
    return parsed


def _parse_settings() -> Settings:
    env = os.environ
    workers = _whole_number(DECODE_WORKERS_ENV, "0", "a whole number of threads (0 = auto)")
    chunk = _whole_number(CHUNK_ENV, str(DEFAULT_CHUNK), "a whole number of frames (0 = no chunks)")
    pool = _whole_number(FRAME_POOL_ENV, str(DEFAULT_FRAME_POOL_MB), "a whole number of megabytes (0 = off)")
    return Settings(
        gpu_resize=env.get(RESIZE_ENV, "exact").strip().lower(),
        gpu_triton=env.get(TRITON_ENV, "1").strip() != "0",
        decode_workers=workers,
        gpu_chunk=chunk,
        gpu_host_letterbox=env.get(HOST_LETTERBOX_ENV, "auto").strip().lower() or "auto",
        gpu_fused=_choice(FUSED_ENV, "1", ("1", "0")) == "1",
        gpu_channels_last=_choice(CHANNELS_LAST_ENV, "0", ("0", "1")) == "1",
        frame_pool_mb=pool,
    )


def _whole_number(name: str, default: str, what: str) -> int:
    text = os.environ.get(name, default).strip() or default
    if not text.isdigit():
        raise ValueError(f"{name}={text!r} is not valid: use {what}")
    return int(text)


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower() or default  # set but empty: the default
    if value not in choices:
        others = " or ".join(repr(c) for c in choices[1:])
        raise ValueError(f"{name}={value!r} is not valid: use {choices[0]!r} (the default) or {others}")
    return value


def jpeg_chroma() -> str:
    """`ULTRALYTICS_GPU_JPEG_CHROMA`: "fancy" (default: shapes val mAP50-95 within 0.0005 of OpenCV decoding,
    nvJPEG's own chroma 0.005-0.006 below; the Triton rebuild costs 0.01 ms/img on the H200) or "nvjpeg"."""
    return _choice(CHROMA_ENV, "fancy", ("nvjpeg", "fancy"))


def jpeg_decoder() -> str:
    """`ULTRALYTICS_GPU_JPEG_DECODER`: "auto" (the hardware JPEG decoder when there is one) or "nvjpeg"."""
    return _choice(JPEG_DECODER_ENV, "auto", ("auto", "nvjpeg"))


def nvdec_reader() -> str:
    """`ULTRALYTICS_NVDEC_READER`: "simple" or "threaded"."""
    return _choice(READER_ENV, "simple", ("simple", "threaded"))


def nvdec_sessions() -> int:
    """`ULTRALYTICS_NVDEC_SESSIONS`: decoder sessions per video (1: today's single sequential reader)."""
    sessions = _whole_number(SESSIONS_ENV, str(DEFAULT_NVDEC_SESSIONS), "a whole number of sessions, 1 or more")
    if sessions < 1:
        raise ValueError(f"{SESSIONS_ENV}='{sessions}' is not valid: use a whole number of sessions, 1 or more")
    return sessions


def nvdec_reuse() -> bool:
    """`ULTRALYTICS_NVDEC_REUSE`: keep NVDEC decoders between videos and reconfigure them (default "1"), or
    "0": a fresh decoder for every video (gpu/nvdec_pool.py)."""
    return _choice(REUSE_ENV, "1", ("1", "0")) == "1"


def check_gpu_decode_switches() -> None:
    """Read every `gpu_decode` switch once, so that a bad value is one line when predict starts, on any
    device, not an error in a decode thread (or nothing, where the CPU path never reads it)."""
    jpeg_chroma(), jpeg_decoder(), nvdec_reader(), nvdec_sessions(), nvdec_reuse()


def trt_host_memory() -> bool:
    """`ULTRALYTICS_TRT_HOST_MEMORY`: the stand-in's test hook asks for host buffers."""
    return os.environ.get(HOST_MEMORY_ENV, "").strip().lower() in ("1", "true", "yes")


def triton_interpret() -> bool:
    """`TRITON_INTERPRET=1`: Triton runs kernels in its interpreter (CPU tensors allowed)."""
    return os.environ.get(TRITON_INTERPRET_ENV, "0").strip() == "1"


def yolo_verbose() -> bool:
    """`YOLO_VERBOSE` (upstream's): anything but "true" hides the info lines."""
    return os.environ.get("YOLO_VERBOSE", "true").lower() == "true"


def torch_weights_only_forced() -> bool:
    """torch's `TORCH_FORCE_WEIGHTS_ONLY_LOAD`, which the checkpoint loader must refuse to work under."""
    return os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in ("1", "y", "yes", "true")


def display_available() -> bool:
    """A desktop to open a window on (X11 or Wayland); other platforms always have one."""
    import sys

    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def env_value(name: str, missing: str = "(unset)") -> str:
    """The raw value of one switch, for `yolo settings` to list."""
    return os.environ.get(name, missing)
