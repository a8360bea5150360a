"""JPEGs through the GPU's hardware JPEG decoders (nvImageCodec's hardware backend), near OpenCV's pixels.

Data-centre GPUs (A100, H100, H200, B200) carry fixed-function JPEG decoders beside the SMs. NVIDIA's
nvImageCodec (`pip install "nvidia-nvimgcodec-cu13[nvjpeg]"`, or `-cu12`; optional; the `[nvjpeg]` extra
brings the libnvjpeg it loads, unless the CUDA toolkit's is on the library path) reaches them through its
`HW_GPU_ONLY` backend. On the H200 (session 6, 32 720p q90 JPEGs, benchmarks/NOTES.md) it decoded a batch
at 0.114 ms/img into device memory, **within 1 grey level of OpenCV** (13 of 32 images identical), where
torchvision's CUDA nvJPEG took 0.12-0.16 ms/img and repeats 4:2:0 chroma (mean 0.35, up to 48 grey levels
away; gpu/jpeg_chroma.py rebuilds its interpolation to a mean of 0.006, up to 16). nvImageCodec's default
backend choice (its CUDA nvJPEG, hybrid) was slower (0.28 ms/img) and less exact (up to 3), so only the
hardware backend is asked for; on GPUs without the engines the decoder cannot be created and
gpu/decode.py keeps torchvision's nvJPEG (as it does for files the hardware decoder returns no image for,
e.g. progressive JPEGs).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import torch

from ultralytics.utils import LOGGER

_LOCK = threading.Lock()
_DECODERS: dict[int, HardwareJpegDecoder] = {}
_UNAVAILABLE: dict[int, str] = {}  # device index -> why there is no hardware decoder (asked once)


class HardwareJpegDecoder:
    """One nvImageCodec decoder restricted to the hardware backend, for one device; calls are serialised
    (predict calls in several threads may share it)."""

    def __init__(self, decoder: Any, device: torch.device):
        self.decoder = decoder
        self.device = device
        self._lock = threading.Lock()
        self.failure: str | None = None  # why it stopped being used (after one warning)

    def decode(self, datas: list[bytes]) -> list[torch.Tensor | None]:
        """HWC BGR uint8 tensors on the device, our own copies; None where the hardware decoder gave none.
        The decode and the copies are ordered on the current stream (on CUDA)."""
        if not datas:
            return []
        if self.failure is not None:
            return [None] * len(datas)
        stream = torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None
        try:
            with self._lock:
                images = self.decoder.decode(list(datas), cuda_stream=int(stream.cuda_stream) if stream else 0)
            frames = self._to_bgr(images, stream)
        except Exception as e:  # a library or driver this code was not run against: torchvision's path from now on
            self.failure = f"{type(e).__name__}: {e}"
            LOGGER.warning(f"WARNING the hardware JPEG decoder failed ({self.failure}); using nvJPEG from now on")
            return [None] * len(datas)
        return frames

    def _to_bgr(self, images: list[Any], stream: torch.cuda.Stream | None) -> list[torch.Tensor | None]:
        frames: list[torch.Tensor | None] = []
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            for image in images:
                rgb = None if image is None else torch.as_tensor(image, device=self.device)
                if rgb is None or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != torch.uint8:
                    frames.append(None)  # not an 8-bit 3-channel image: the caller decodes it otherwise
                    continue
                frames.append(rgb.flip(-1))  # RGB → BGR, a copy of ours
            if stream is not None:
                stream.synchronize()  # the copies are done before the decoder's Images (their buffers) are freed
        return frames


def hardware_jpeg_decoder(device: torch.device | str) -> HardwareJpegDecoder | None:
    """The device's hardware JPEG decoder, or None (no nvImageCodec, no hardware decoder on this GPU);
    decided once per device, with one debug line saying why not."""
    device = torch.device(device)
    index = -1 if device.type != "cuda" else (device.index if device.index is not None else torch.cuda.current_device())
    with _LOCK:
        if index in _DECODERS:
            return _DECODERS[index]
        if index in _UNAVAILABLE:
            return None
        try:
            from nvidia import nvimgcodec
        except ImportError as e:  # not installed: the usual case, no message
            _UNAVAILABLE[index] = f"{type(e).__name__}: {e}"
            return None
        try:
            hw = nvimgcodec.Backend(nvimgcodec.BackendKind.HW_GPU_ONLY)
            decoder = HardwareJpegDecoder(
                nvimgcodec.Decoder(device_id=max(index, 0), backends=[hw]),
                torch.device("cuda", index) if index >= 0 else device,
            )
            # a GPU without JPEG engines may still create the decoder and then return no image for anything
            if decoder.decode([_baseline_jpeg()])[0] is None:
                raise RuntimeError(decoder.failure or "it returned no image for a small baseline JPEG")
        except Exception as e:  # e.g. "Could not create decoder", or libnvjpeg missing (the [nvjpeg] extra)
            _UNAVAILABLE[index] = f"{type(e).__name__}: {e}"
            LOGGER.info(
                f"nvImageCodec is installed but has no hardware JPEG decoder on {device} ({_UNAVAILABLE[index]}); "
                "gpu_decode uses torchvision's nvJPEG"
            )
            return None
        _DECODERS[index] = decoder
        return decoder


def _baseline_jpeg() -> bytes:
    """A 128x128 colour baseline 4:2:0 JPEG (OpenCV's default encoding), the kind every hardware decoder
    takes: not so small that a decoder's minimum size could refuse it."""
    import cv2
    import numpy as np

    ramp = np.arange(128, dtype=np.uint8) * 2
    image = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 255 - ramp[None, :]), -1)
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return data.tobytes()


def forget_decoders() -> None:
    """Ask again on next use (tests install and remove stand-ins)."""
    with _LOCK:
        _DECODERS.clear()
        _UNAVAILABLE.clear()
