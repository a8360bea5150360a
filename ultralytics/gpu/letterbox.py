"""Letterbox in torch: resize + pad + BGR→RGB + /255 + NCHW, on whatever device the frames live.

The CPU path letterboxes with OpenCV and uploads a float tensor; here uint8 frames are uploaded once
and everything else runs on the device. The geometry (scale, rounded new size, padding split) comes
from the same function the CPU `LetterBox` uses, so both paths put every pixel at the same place.
The resize is `gpu/cv2_linear.py`: OpenCV's 8-bit INTER_LINEAR fixed-point scheme reproduced in torch,
so the GPU letterbox equals the CPU one bit for bit (a float bilinear resize differs by one grey level
on ~10% of pixels, enough to move low-confidence boxes). `ULTRALYTICS_GPU_RESIZE=fast` switches to the
float `F.interpolate` resize (within one grey level), kept for speed comparisons.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ultralytics.data.augment import PAD_VALUE, LetterboxParams
from ultralytics.gpu.cv2_linear import resize_linear_uint8_exact
from ultralytics.gpu.letterbox_triton import try_letterbox_triton
from ultralytics.utils.settings import RESIZE_ENV, settings  # noqa: F401 - RESIZE_ENV re-exported for callers

CHUNK_ELEMENTS = 64 * 1024 * 1024  # frame elements resized per interpolate call (256 MB as float32)


def resize_bilinear_uint8(frames: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """BHWC uint8 frames → BCHW float32 resized like cv2.INTER_LINEAR, rounded to whole grey levels."""
    x = frames.permute(0, 3, 1, 2).float()
    if tuple(x.shape[2:]) == tuple(size_hw):
        return x
    x = F.interpolate(x, size=size_hw, mode="bilinear", align_corners=False, antialias=False)
    # no clamp needed: bilinear weights are convex, so values stay within 0..255 up to float rounding
    return x.round_()


def letterbox_batch(
    frames: list[torch.Tensor] | torch.Tensor,
    geometries: list[LetterboxParams],
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Letterbox uint8 BGR frames (a BHWC tensor of one shape, or a list of HWC tensors) into one
    BCHW RGB 0..1 batch of `dtype` on the frames' device, laid out in `memory_format` (channels-last for
    a network that runs channels-last: written in place, no layout copy afterwards; same values).

    Frames of one shape share one geometry and are resized in one call; mixed shapes are resized one
    by one into the shared canvas.
    """
    # a same-size CUDA batch goes through one fused Triton kernel when Triton is there (same numbers)
    if (fused := try_letterbox_triton(frames, geometries, dtype, memory_format)) is not None:
        return fused
    if not geometries:
        raise ValueError("letterbox_batch needs at least one frame")
    canvas_hw = geometries[0].canvas_hw
    if any(g.canvas_hw != canvas_hw for g in geometries):
        raise ValueError(
            f"all frames of a batch must letterbox to one canvas size, got {[g.canvas_hw for g in geometries]}"
        )
    n = len(geometries)
    first = frames[0]
    out = torch.empty((n, 3, *canvas_hw), dtype=dtype, device=first.device, memory_format=memory_format)
    if isinstance(frames, torch.Tensor) and len(set(geometries)) == 1:
        # chunks bound the float32 copy of the full-size frames (32 4K frames would need 3.2 GB at once)
        step = max(1, CHUNK_ELEMENTS // max(1, frames[0].numel()))
        groups = [(slice(i, i + step), frames[i : i + step], geometries[0]) for i in range(0, n, step)]
    else:
        groups = [(slice(i, i + 1), frames[i][None], g) for i, g in enumerate(geometries)]
    for rows, batch, g in groups:
        if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(
                f"frames must be uint8 HWC images with 3 channels (BGR), got {tuple(batch.shape)} {batch.dtype}"
            )
        w, h = g.new_unpad
        resized = _resize(batch, (h, w))
        _fill_border(out[rows], g.top, g.left, h, w)
        # BGR→RGB by writing each channel to its mirrored place, /255 and the dtype cast in the same pass
        # (a flip would first copy the whole float image)
        inside = out[rows, :, g.top : g.top + h, g.left : g.left + w]
        for c in range(3):
            torch.div(resized[:, 2 - c], 255, out=inside[:, c])
    return out


def resize_mode() -> str:
    """The requested GPU resize, from `ULTRALYTICS_GPU_RESIZE` ("exact" when unset; not validated here)."""
    return settings().gpu_resize


def _resize(frames: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    mode = resize_mode()
    if mode == "fast":
        return resize_bilinear_uint8(frames, size_hw)
    if mode != "exact":
        raise ValueError(f"{RESIZE_ENV}={mode!r} is not valid: use 'exact' (the default) or 'fast'")
    return resize_linear_uint8_exact(frames, size_hw)


def _fill_border(canvas: torch.Tensor, top: int, left: int, h: int, w: int) -> None:
    """Paint the grey border around the (h, w) image at (top, left); the image area is written after.

    The grey is 114 / 255 computed on the canvas's device, as the image's levels are (and as the CPU
    path's padded uint8 114 is when it is divided on the device): on CUDA that division is a multiply
    by float32(1/255), one bit away from the Python float 114 / 255 rounded to float32.
    """
    grey = torch.full((), PAD_VALUE, dtype=torch.float32, device=canvas.device).div_(255)
    canvas[:, :, :top].fill_(grey)
    canvas[:, :, top + h :].fill_(grey)
    canvas[:, :, top : top + h, :left].fill_(grey)
    canvas[:, :, top : top + h, left + w :].fill_(grey)
