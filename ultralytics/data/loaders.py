"""Prediction sources → batches of (paths, BGR images, log lines).

`load_inference_source` accepts what upstream's `predict(source=...)` accepts for files and memory:
an image/video path, a directory, a glob, a list of those, numpy arrays, PIL images, or a torch
tensor. Every batch is `(paths: list[str], images, infos: list[str])` where `images` is a list of
HWC BGR uint8 arrays, except for tensor sources: then `images` is the BCHW RGB 0..1 tensor itself,
already network-ready, and the predictor skips letterboxing because `isinstance(images, Tensor)`.

Decoding happens lazily inside iteration: image files go through a bounded, order-preserving pool of
decode threads (data/decode.py), videos are read in a thread of their own, and a background thread
(data/prefetch.py) assembles and uploads the next batch while the current one runs. A file that cannot
be decoded is skipped with one warning naming it; every other image still gets its result.

A list made only of images (arrays, PIL images, image paths) is one batch, whatever `batch` says, as
upstream runs it; other sources are cut into batches of `batch`.
"""

from __future__ import annotations

import glob as globlib
import math
import os
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ultralytics.data.decode import decode_pool
from ultralytics.data.decode import resolved_future as _resolved
from ultralytics.data.frame_pool import frame_pool
from ultralytics.data.prefetch import Prefetcher
from ultralytics.utils import LOGGER

IMG_FORMATS = frozenset({"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"})
VID_FORMATS = frozenset({"asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "wmv", "webm"})

Batch = tuple[list[str], list[np.ndarray] | torch.Tensor, list[str]]


@dataclass(frozen=True)
class _Entry:
    """One thing to read: an image file, a video file, or an image already in memory."""

    kind: str  # "image" | "video" | "array"
    path: str
    array: np.ndarray | None = None
    converted: bool = False  # an array made here from the caller's PIL image


def is_tensor_source(source: Any) -> bool:
    """True when the source is a torch tensor, which bypasses decoding and letterboxing."""
    return isinstance(source, torch.Tensor)


def imread(path: str | Path) -> np.ndarray:
    """Decode an image file to BGR uint8 HWC; works with non-ASCII paths; raises on failure."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}. Check the path (relative paths are from {Path.cwd()})")
    return decode_image_bytes(np.fromfile(str(path), dtype=np.uint8), path)


def decode_image_bytes(data: bytes | np.ndarray, name: str | Path) -> np.ndarray:
    """Decode a file's bytes exactly as `imread` does (OpenCV, EXIF orientation applied), so a caller that
    already holds the bytes (the GPU JPEG path's rejects) need not read the file again; raises on failure."""
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if image is None:
        raise ValueError(
            f"could not decode image {name} ({buffer.size} bytes): the file is corrupt or in a format OpenCV "
            f"cannot read; re-save it as JPEG or PNG"
        )
    return image


def video_properties(cap: cv2.VideoCapture) -> tuple[int, float]:
    """(frame count, fps) of an opened video as OpenCV reports them: the numbers the log lines count with
    and a saved video plays at; fps is 0 when the container does not say."""
    fps = cap.get(cv2.CAP_PROP_FPS)
    return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(fps) if fps and math.isfinite(fps) and fps > 0 else 0.0


def to_bgr(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Normalise an in-memory numpy image to HWC BGR uint8 (gray → 3 channels, BGRA → BGR)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"{name}: numpy images must be uint8 (0..255, BGR, HWC), got dtype {image.dtype}; "
            f"convert with (img * 255).clip(0, 255).astype(np.uint8) if it is 0..1 floats"
        )
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        image = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(
            f"{name}: numpy images must be HxW (gray), HxWx3 (BGR) or HxWx4 (BGRA), got shape {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name}: image is empty (shape {image.shape})")
    return np.ascontiguousarray(image)


def _pil_to_bgr(image: Any) -> np.ndarray:
    """PIL → BGR uint8 HWC. cvtColor swaps the channels in one fast pass; numpy's reversed-stride copy
    of a 720p frame (`rgb[..., ::-1]`) took several milliseconds. Same bytes either way. The result is
    written into an array of the frame pool (data/frame_pool.py), memory already faulted in by an earlier
    call: in a process that had run only PIL calls, `model(pil_image)` went 9.4 → 3.9 ms on the H200 host
    (page faults 1863 → 0 per image, benchmarks/NOTES.md, session 9, probe Q); where earlier calls had left
    the allocator's memory mapped, the api_speed rows did not move."""
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=frame_pool().take(rgb.shape))


def _pils_to_bgr(images: list[Any]) -> list[np.ndarray]:
    """Several PIL images → BGR arrays, in order, on the decode pool's threads (PIL's copy out and OpenCV's
    channel swap release the GIL). One after another, 32 720p images took 1.3 ms each on the 2-core dev
    machine before the first could be staged; with 2 workers there 1.07-1.35 (session 8; not measured on
    the GPU host, where the pool has up to 14)."""
    if len(images) < 2 or decode_pool().workers <= 1:
        return [_pil_to_bgr(image) for image in images]
    # each object converted once, by one thread: a lazily opened image listed twice would load in two at once
    distinct = list({id(image): image for image in images}.values())
    converted = dict(zip(map(id, distinct), decode_pool().executor().map(_pil_to_bgr, distinct)))
    handed: set[int] = set()
    out = []
    for image in images:  # a repeat gets its own copy, as it got its own conversion before
        out.append(converted[id(image)] if id(image) not in handed else converted[id(image)].copy())
        handed.add(id(image))
    return out


def _is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(x, Image.Image)


_KINDS: dict[str, str] = {ext: "video" for ext in VID_FORMATS} | {ext: "image" for ext in IMG_FORMATS}


def _suffix(name: str) -> str:
    """A file name's suffix without its dot, lower-case, read as pathlib reads it (`..jpg` has one; `.jpg`
    and `a.` have none), without making a Path: a folder call reads every file's."""
    i = name.rfind(".")
    return name[i + 1 :].lower() if 0 < i < len(name) - 1 else ""


def _file_entry(path: Path) -> _Entry:
    kind = _KINDS.get(_suffix(path.name))
    if kind is None:
        raise ValueError(
            f"unsupported file type '{path.suffix}' for {path}; images: {', '.join(sorted(IMG_FORMATS))}; "
            f"videos: {', '.join(sorted(VID_FORMATS))}"
        )
    return _Entry(kind, str(path))


def _media_in(paths: list[Path]) -> list[_Entry]:
    return [_file_entry(p) for p in sorted(paths) if p.is_file() and _suffix(p.name) in _KINDS]


def _media_in_directory(path: Path) -> list[_Entry]:
    """The images and videos directly in a directory, sorted by path as `_media_in` sorts them.

    With `os.scandir` and string suffixes: a Path object, a stat and two suffix parses per file took
    1.6 ms for 128 files on the 2-core dev machine (0.9 ms this way), before a folder call's first decode."""
    found = []
    with os.scandir(path) as listing:
        for item in listing:
            kind = _KINDS.get(_suffix(item.name))
            if kind is not None and item.is_file():
                found.append((Path(item.path), kind))
    found.sort(key=lambda pair: pair[0])
    return [_Entry(kind, str(p)) for p, kind in found]


def _path_entries(source: str | Path) -> list[_Entry]:
    text = str(source)
    if text.lower().startswith(("http://", "https://", "rtsp://", "rtmp://", "tcp://")):
        raise ValueError(f"URL and stream sources are not supported: {text}; download the file and pass its path")
    if any(ch in text for ch in "*?["):
        entries = _media_in([Path(p) for p in globlib.glob(text, recursive=True)])
        if not entries:
            raise FileNotFoundError(f"no images or videos match the pattern {text}")
        return entries
    path = Path(text).expanduser()
    if path.is_dir():
        entries = _media_in_directory(path)
        if not entries:
            raise FileNotFoundError(
                f"directory {path} contains no images or videos (looked for .{', .'.join(sorted(IMG_FORMATS | VID_FORMATS))})"
            )
        return entries
    if path.is_file():
        return [_file_entry(path)]
    raise FileNotFoundError(f"source not found: {path}. Check the path (relative paths are from {Path.cwd()})")


def _entries(source: Any) -> list[_Entry]:
    if isinstance(source, str | Path):
        return _path_entries(source)
    if isinstance(source, np.ndarray):
        return [_Entry("array", "image0.jpg", to_bgr(source, "image0.jpg"))]
    if _is_pil(source):
        return [_Entry("array", _pil_name(source, 0), _pil_to_bgr(source), converted=True)]
    if isinstance(source, list | tuple):
        if not source:
            raise ValueError("the source list is empty; pass at least one image, video or path")
        entries: list[_Entry] = []
        pils: list[tuple[int, str, Any]] = []  # (place in entries, name, image): converted together below
        for i, item in enumerate(source):
            if isinstance(item, str | Path):
                entries += _path_entries(item)
            elif isinstance(item, np.ndarray):
                entries.append(_Entry("array", f"image{i}.jpg", to_bgr(item, f"image{i}.jpg")))
            elif _is_pil(item):
                pils.append((len(entries), _pil_name(item, i), item))
                entries.append(_Entry("array", pils[-1][1]))  # its array comes below
            else:
                raise TypeError(f"source item {i} has unsupported type {type(item).__name__}; use paths, numpy or PIL")
        for (place, name, _), bgr in zip(pils, _pils_to_bgr([image for _, _, image in pils])):
            entries[place] = _Entry("array", name, bgr, converted=True)
        return entries
    if source is None:
        raise ValueError("no source given; pass an image/video path, directory, glob, array, PIL image or tensor")
    if isinstance(source, int) or (isinstance(source, str) and source.isnumeric()):
        raise ValueError(f"webcam sources ({source!r}) are not supported; pass image or video files")
    raise TypeError(
        f"unsupported source type {type(source).__name__}; use a path, list, numpy array, PIL image or tensor"
    )


def _pil_name(image: Any, index: int) -> str:
    return getattr(image, "filename", "") or f"image{index}.jpg"


def check_tensor_source(tensor: torch.Tensor, stride: int = 32) -> torch.Tensor:
    """Validate a BCHW (or CHW) RGB 0..1 float tensor; returns it as BCHW."""
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise ValueError(
            f"tensor sources must be BCHW or CHW with 3 RGB channels, got shape {tuple(tensor.shape)}; "
            f"for HWC images use a numpy array instead"
        )
    if not tensor.is_floating_point():
        raise ValueError(f"tensor sources must be float RGB in 0..1, got dtype {tensor.dtype}; divide by 255")
    if tensor.shape[2] % stride or tensor.shape[3] % stride:
        raise ValueError(
            f"tensor source height and width must be multiples of the model stride {stride}, got "
            f"{tuple(tensor.shape[2:])}; letterbox it first or pass numpy images"
        )
    if tensor.numel() and (float(tensor.min()) < 0 or float(tensor.max()) > 1.0 + 1e-3):
        raise ValueError(
            f"tensor sources must be scaled to 0..1, got values in {float(tensor.min()):.3g}..{float(tensor.max()):.3g}; "
            f"divide 0..255 data by 255"
        )
    return tensor


class InferenceSource:
    """Iterable of batches; each `iter()` starts over, so the object holds no reading state (only what
    reading learnt: each video's fps, in `fps`)."""

    def __init__(
        self, source: Any, batch: int = 1, vid_stride: int = 1, stride: int = 32, list_as_one_batch: bool = True
    ):
        if int(batch) < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        if int(vid_stride) < 1:
            raise ValueError(f"vid_stride must be at least 1, got {vid_stride}")
        self.batch = int(batch)
        self.vid_stride = int(vid_stride)
        self.fps: dict[str, float] = {}  # each video's fps, recorded by whatever opens it for reading
        self.tensor = check_tensor_source(source, stride) if is_tensor_source(source) else None
        self.entries = [] if self.tensor is not None else _entries(source)
        if not list_as_one_batch:  # batches of `batch` whatever the source (benchmarks, long runs)
            return
        if self.tensor is not None:
            self.batch = max(1, self.tensor.shape[0])  # a tensor is one batch, as upstream runs it
        if isinstance(source, list | tuple) and self.entries and all(e.kind != "video" for e in self.entries):
            if all(not isinstance(item, str | Path) or Path(item).is_file() for item in source):
                self.batch = len(self.entries)  # a list of images is one batch, as upstream runs it

    @property
    def in_memory(self) -> bool:
        """True when nothing is left to decode (arrays, PIL images, a tensor)."""
        return self.tensor is not None or all(e.kind == "array" for e in self.entries)

    @property
    def callers_own_arrays(self) -> bool:
        """True when every frame is an array or tensor the caller passed in: nothing decoded or converted here."""
        return self.tensor is not None or all(e.kind == "array" and not e.converted for e in self.entries)

    @property
    def n_batches(self) -> int | None:
        """Batches the source yields, when known before reading it (no videos)."""
        if self.tensor is not None:
            return -(-self.tensor.shape[0] // self.batch)
        if any(e.kind == "video" for e in self.entries):
            return None
        return -(-len(self.entries) // self.batch)

    @property
    def is_tensor(self) -> bool:
        return self.tensor is not None

    def video_fps(self, path: str, default: float = 30.0) -> float:
        """The fps a video of this source was read at (a saved video plays at the source's speed);
        `default` (upstream's 30) when the container did not say or the video was not opened yet."""
        return self.fps.get(path) or default

    def __iter__(self) -> Iterator[Batch]:
        if self.tensor is not None:
            for start in range(0, self.tensor.shape[0], self.batch):
                chunk = self.tensor[start : start + self.batch]
                paths = [f"image{start + i}.jpg" for i in range(chunk.shape[0])]
                yield paths, chunk, [f"image {start + i + 1}/{self.tensor.shape[0]} {p}: " for i, p in enumerate(paths)]
            return
        paths: list[str] = []
        images: list[np.ndarray] = []
        infos: list[str] = []
        for path, image, info in self._frames():
            paths.append(path)
            images.append(image)
            infos.append(info)
            if len(images) == self.batch:
                yield paths, images, infos
                paths, images, infos = [], [], []
        if images:
            yield paths, images, infos

    def _frames(self) -> Iterator[tuple[str, np.ndarray, str]]:
        """Every frame in the entries' order: image files decoded in the pool, videos in a thread."""
        total = len(self.entries)
        failures: list[Exception] = []
        produced = 0
        numbered = list(enumerate(self.entries, 1))
        k = 0
        while k < len(numbered):
            n, entry = numbered[k]
            if entry.kind == "video":
                for frame in Prefetcher(self._video(entry.path, n, total), depth=8):
                    produced += 1
                    yield frame
                k += 1
                continue
            run_end = k
            while run_end < len(numbered) and numbered[run_end][1].kind != "video":
                run_end += 1
            run = [entry for _, entry in numbered[k:run_end]]
            if all(e.kind == "array" for e in run):  # in memory: no future per frame (256 frames 0.74 -> 0.11 ms)
                for n, entry in numbered[k:run_end]:
                    produced += 1
                    yield entry.path, entry.array, f"image {n}/{total} {entry.path}: "
                k = run_end
                continue
            decoded = _decoded_in_order(run, ahead=decode_window(self.batch))
            for n, entry in numbered[k:run_end]:
                try:
                    image = next(decoded).result()
                except (ValueError, OSError) as e:  # unreadable file: one warning, the others go on
                    failures.append(e)
                    LOGGER.warning(f"WARNING skipping an unreadable image: {e}")
                    continue
                produced += 1
                yield entry.path, image, f"image {n}/{total} {entry.path}: "
            k = run_end
        if failures and not produced:
            raise failures[0]

    def _video(self, path: str, k: int, total: int) -> Iterator[tuple[str, np.ndarray, str]]:
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise ValueError(
                f"could not open video {path}: the file is corrupt or its codec is not supported by OpenCV"
            )
        try:
            count, self.fps[path] = video_properties(cap)
            n_frames = int(count / self.vid_stride)
            frame = 0
            shape: tuple[int, ...] | None = None  # what the decoder produced last
            while True:
                for _ in range(self.vid_stride - 1):  # skip without decoding
                    if not cap.grab():
                        return
                ok, image = read_frame(cap, shape)
                if not ok:
                    if frame == 0:
                        raise ValueError(f"video {path} has no readable frames")
                    return
                shape = image.shape
                frame += 1
                yield path, image, f"video {k}/{total} (frame {frame}/{max(n_frames, frame)}) {path}: "
        finally:
            cap.release()

    def __len__(self) -> int:
        """Number of files/images (videos count once), like upstream's dataset length."""
        return self.tensor.shape[0] if self.tensor is not None else len(self.entries)


def read_frame(cap: cv2.VideoCapture, shape: tuple[int, ...] | None) -> tuple[bool, np.ndarray | None]:
    """`cap.read()`, into an array of `shape` (the previous frame's) from the frame pool when that is known.

    The pool's arrays are reused across calls, so a video's frames are not page-faulted in again at every
    call (data/frame_pool.py). A frame of another size is allocated by OpenCV as before (it does not write
    into an array of the wrong size)."""
    if shape is None:
        return cap.read()
    return cap.read(frame_pool().take(shape))


def _read_entry(entry: _Entry) -> np.ndarray:
    return entry.array if entry.kind == "array" else imread(entry.path)


DECODE_AHEAD_EXTRA_MAX = 32  # frames, on top of 2 per worker: ~88 MB of 720p frames, ~800 MB at 4K


def decode_window(batch: int) -> int:
    """Files decoded ahead of the consumer: 2 per worker, plus a batch of at most DECODE_AHEAD_EXTRA_MAX.

    The pool sat idle ~40% of a CUDA folder call at batch 32 with only 2 per worker ahead, while a batch
    was gathered and staged; a batch more measured 1.39 against 1.47 ms/img (H200 host, benchmarks/NOTES.md,
    session 8, probes 8 and 9). The cap keeps a huge `batch` from holding that many more decoded frames."""
    return 2 * decode_pool().workers + min(max(1, int(batch)), DECODE_AHEAD_EXTRA_MAX)


def _decoded_in_order(entries: list[_Entry], ahead: int | None = None) -> Iterator[Future]:
    """Futures of the entries' images in order: files through the decode pool when there are several."""
    if sum(e.kind == "image" for e in entries) > 1:
        return decode_pool().ordered_map(_read_entry, entries, ahead=ahead)
    return (_resolved(_read_entry, e) for e in entries)


def load_inference_source(source: Any, *, batch: int = 1, vid_stride: int = 1, stride: int = 32) -> InferenceSource:
    """Resolve `source` now (so missing files fail immediately) and decode lazily while iterating."""
    return InferenceSource(source, batch=batch, vid_stride=vid_stride, stride=stride)
