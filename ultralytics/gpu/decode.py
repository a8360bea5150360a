"""Batched JPEG decode on a CUDA device, straight into uint8 BGR frames: the GPU's hardware JPEG decoder
through nvImageCodec where installed (gpu/jpeg_hw.py), torchvision's nvJPEG for the rest.

On the H200 host a 720p JPEG takes ~5.5 ms to decode with OpenCV, more than the rest of predict; on the
device a batch decodes at 0.11-0.16 ms an image, and the frames are born in device memory, where the GPU
letterbox reads them. torchvision is the fallback binding: the CUDA build of torch ships it, so it costs no
extra wheel.

nvJPEG is not bit-identical to libjpeg-turbo (a different IDCT and chroma upsampling: about half the
pixels differ by a grey level or two; nvJPEG repeats 4:2:0 chroma where libjpeg interpolates it, up to
~100 grey levels at colour edges), so this path is opt-in (`gpu_decode=True`). By default libjpeg's
chroma interpolation is rebuilt on the device for nvJPEG's frames (gpu/jpeg_chroma.py, in Triton kernels
on CUDA: gpu/jpeg_chroma_triton.py), which leaves a few grey levels at most; `ULTRALYTICS_GPU_JPEG_CHROMA=nvjpeg`
skips it. The hardware decoder's frames need no rebuild (within 1 grey level of OpenCV on the H200).

Files neither takes (not a JPEG, a rotated EXIF orientation that OpenCV would apply, a decode
error) are reported back to the caller, which decodes them with OpenCV instead.
"""

from __future__ import annotations

import io

import torch

from ultralytics.gpu.jpeg_chroma import chroma_mode, is_h2v2
from ultralytics.gpu.jpeg_chroma_triton import fancy_upsample
from ultralytics.gpu.jpeg_hw import HardwareJpegDecoder, hardware_jpeg_decoder
from ultralytics.utils.settings import jpeg_decoder

JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
_EXIF_ORIENTATION = 0x0112


def cuda_device_problem(device: torch.device) -> str | None:
    """Why `device` cannot run a GPU decoder (None: it is a usable CUDA device); shared with NVDEC."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"the model runs on {device}, not on a CUDA device"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    return None


def jpeg_decode_problem(device: torch.device) -> str | None:
    """Why JPEGs cannot be decoded on `device` (None: they can, by the hardware decoder or nvJPEG)."""
    if problem := cuda_device_problem(device):
        return problem
    if _hardware(device) is not None:
        return None
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return "torchvision (nvJPEG) is not installed; pip install torchvision matching your torch build"
    return None


def _hardware(device: torch.device) -> HardwareJpegDecoder | None:
    """The hardware JPEG decoder, unless `ULTRALYTICS_GPU_JPEG_DECODER=nvjpeg` asks for torchvision's."""
    return hardware_jpeg_decoder(device) if jpeg_decoder() == "auto" else None


def is_jpeg_bytes(data: bytes) -> bool:
    """JPEG by content (SOI marker), as OpenCV decides, not by suffix."""
    return data[:3] == b"\xff\xd8\xff"


def exif_rotated(data: bytes) -> bool:
    """True when the JPEG's EXIF orientation asks for a rotation/flip, which OpenCV's imread applies
    and nvJPEG does not; such files go to OpenCV so both paths see the same pixels."""
    if b"Exif" not in data[:65536]:
        return False
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return int(im.getexif().get(_EXIF_ORIENTATION, 1)) not in (0, 1)
    except Exception:  # unreadable EXIF: let OpenCV decide
        return True


def decode_jpegs(datas: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """Decode JPEG byte strings on `device` into HWC BGR uint8 tensors: the GPU's hardware JPEG decoder
    where there is one (gpu/jpeg_hw.py: near OpenCV's pixels as decoded), torchvision's batched nvJPEG for
    the rest (its chroma then rebuilt as libjpeg interpolates it, unless `ULTRALYTICS_GPU_JPEG_CHROMA=nvjpeg`).

    Entries neither takes come back as None (the caller decodes them on the CPU). Run it on the
    stream the frames should be ready on: the conversion to BGR HWC is enqueued on the current stream.
    """
    if not datas:
        return []
    frames: list[torch.Tensor | None] = [None] * len(datas)
    if (hardware := _hardware(device)) is not None:
        frames = hardware.decode(datas)  # on the current stream
    rest = [i for i, frame in enumerate(frames) if frame is None]
    if rest:
        for i, frame in zip(rest, _nvjpeg([datas[i] for i in rest], device)):
            frames[i] = frame
    return frames


def _nvjpeg(datas: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """torchvision's batched nvJPEG decode, BGR HWC, with the chroma rebuild (None where it fails)."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:  # the hardware decoder alone: what it left goes to the CPU
        return [None] * len(datas)

    inputs = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    try:
        decoded: list[torch.Tensor | None] = list(decode_jpeg(inputs, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:  # one bad file fails the whole batch: retry one by one to find it
        decoded = []
        for data in inputs:
            try:
                decoded.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                decoded.append(None)
    frames = [None if chw is None else rgb_chw_to_bgr_hwc(chw) for chw in decoded]
    if chroma_mode() == "fancy":
        _fancy_chroma(frames, datas)
    return frames


def _fancy_chroma(frames: list[torch.Tensor | None], datas: list[bytes]) -> None:
    """Replace 4:2:0 frames by libjpeg's fancy-upsampled colours, same sizes together (gpu/jpeg_chroma.py;
    the Triton kernels of gpu/jpeg_chroma_triton.py on CUDA, the same bytes from torch elsewhere)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (frame, data) in enumerate(zip(frames, datas)):
        if frame is not None and is_h2v2(data):
            groups.setdefault(tuple(frame.shape), []).append(i)
    for indices in groups.values():
        refined = fancy_upsample(torch.stack([frames[i] for i in indices]))
        for i, frame in zip(indices, refined):
            frames[i] = frame


def rgb_chw_to_bgr_hwc(chw: torch.Tensor) -> torch.Tensor:
    """CHW RGB → contiguous HWC BGR (the layout the OpenCV path and the GPU letterbox use)."""
    return chw.flip(0).permute(1, 2, 0).contiguous()
