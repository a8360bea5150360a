"""jpeg_chroma's fancy chroma rebuild in two Triton kernels, equal byte for byte to its torch reference.

Why: the torch reference (`jpeg_chroma.fancy_upsample_bgr`) is ~40 elementwise kernels with int32
temporaries; on the H200 it made the JPEG folder at batch 32 cost 0.69-0.71 ms/img instead of 0.38-0.44
(bar 0.4), so the rebuild stayed opt-in. Here the frames are read twice and written once (H200: 0.32 ms
per batch of 32 720p frames, 40x less), and the rebuild became the default:

1. `_block_chroma_kernel`: per 2x2 block, the fixed-point Cb/Cr of its four pixels (the edge pixel
   repeated at odd sizes), averaged over the pixels RGB clipping left alone (all four if none), rounded
   by the reference's integer division → two uint8 planes of (H+1)//2 x (W+1)//2 samples.
2. `_upsample_kernel`: per pixel, Y from its BGR, the triangle filter over the four nearest samples
   ((9 near + 3 + 3 + 1 far + 8 or 7) >> 4, libjpeg's h2v2 with the edge sample repeated) and
   libjpeg's integer YCbCr→RGB, stored as BGR.

Only integer arithmetic, the same as the reference, so the bytes are the same on any device.

Triton is not a dependency: it is imported on first use, and `try_fancy_upsample_triton` answers None
(the torch reference then runs) when Triton is missing, the frames are not on CUDA, or
`ULTRALYTICS_GPU_TRITON=0`; after a first failure to build or launch it warns once and stays on torch.
With `TRITON_INTERPRET=1` the kernels also run on CPU tensors (numpy): that is how the CPU tests check them.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from ultralytics.gpu.jpeg_chroma import fancy_upsample_bgr
from ultralytics.gpu.triton_support import KernelHealth, builds
from ultralytics.utils import LOGGER
from ultralytics.utils.settings import settings, triton_interpret

# GPU tiles (BLOCK_Y, BLOCK_X, num_warps): chroma blocks per program, then pixels per program
# (benchmarks/chroma_kernels.py times the choices)
BLOCK_TILE = (4, 64, 4)
PIXEL_TILE = (4, 128, 4)
MAX_GRID_YZ = 65535  # CUDA's limit on a grid's y (row tiles) and z (frames) dimensions
UNSPECIALIZED_ARGS = ("stride_b", "stride_h", "stride_w", "height", "width", "block_h", "block_w")

# Bound on first use by `_kernels()`, so that importing this module never imports Triton.
triton: Any = None
tl: Any = None


HEALTH = KernelHealth()


def fancy_upsample(bgr: torch.Tensor) -> torch.Tensor:
    """`jpeg_chroma.fancy_upsample_bgr`'s result: from the Triton kernels where they apply, else from torch."""
    out = try_fancy_upsample_triton(bgr)
    return fancy_upsample_bgr(bgr) if out is None else out


def try_fancy_upsample_triton(bgr: torch.Tensor) -> torch.Tensor | None:
    """The rebuild from the two kernels, or None where they do not apply (the caller runs torch then).

    None is also the answer, with one warning, from the first time Triton fails to build or launch the
    kernels (Triton comes with most CUDA torch installs, but needs a C compiler).
    """
    if HEALTH.failure is not None or not _applies(bgr):
        return None
    try:
        return fancy_upsample_triton(bgr)
    except Exception as error:  # Triton installed but unable to build here (no C compiler, unknown GPU...)
        HEALTH.failure = f"{type(error).__name__}: {error}"
        LOGGER.warning(
            f"WARNING the Triton JPEG chroma rebuild failed ({HEALTH.failure}); using the torch rebuild from now on"
        )
        return None


def fancy_upsample_triton(bgr: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) or (H, W, 3) uint8 BGR with nearest 4:2:0 chroma → fancy-upsampled uint8 BGR (contiguous).

    The frames may be strided (a crop of a larger buffer): the kernels read through their strides.
    """
    _check_input(bgr)
    single = bgr.ndim == 3
    frames = bgr[None] if single else bgr
    batch, height, width, _ = frames.shape
    block_h, block_w = (height + 1) // 2, (width + 1) // 2
    chroma = torch.empty((batch, 2, block_h, block_w), dtype=torch.uint8, device=frames.device)
    out = torch.empty((batch, height, width, 3), dtype=torch.uint8, device=frames.device)
    block_kernel, upsample_kernel = _kernels()
    by, bx, warps = _tile(BLOCK_TILE, block_h, block_w)
    grid = (triton.cdiv(block_w, bx), triton.cdiv(block_h, by), batch)
    block_kernel[grid](
        frames, chroma, *frames.stride(), height, width, block_h, block_w, BLOCK_Y=by, BLOCK_X=bx, num_warps=warps
    )
    by, bx, warps = _tile(PIXEL_TILE, height, width)
    grid = (triton.cdiv(width, bx), triton.cdiv(height, by), batch)
    upsample_kernel[grid](
        frames,
        chroma,
        out,
        *frames.stride(),
        height,
        width,
        block_h,
        block_w,
        BLOCK_Y=by,
        BLOCK_X=bx,
        num_warps=warps,
    )
    return out[0] if single else out


def triton_available() -> bool:
    """Whether Triton can be imported here (it is optional: only GPU machines need it)."""
    return builds(_kernels)


def _tile(gpu_tile: tuple[int, int, int], rows: int, cols: int) -> tuple[int, int, int]:
    """The GPU tile, or under the interpreter the whole frame in one program (Python overhead is per program)."""
    if triton_interpret():
        return triton.next_power_of_2(rows), triton.next_power_of_2(cols), 1
    return gpu_tile


def _fits(frames: torch.Tensor) -> bool:
    """A non-empty frame and a grid CUDA can launch (rows / BLOCK_Y and the batch within the y/z limits)."""
    batch, height, width = frames.shape[:3]
    return (
        height >= 1
        and width >= 1
        and batch <= MAX_GRID_YZ
        and height <= MAX_GRID_YZ * min(BLOCK_TILE[0], PIXEL_TILE[0])
        and height * width * 3 < 2**31  # the kernels index within a frame in int32
    )


def _is_bgr_batch(bgr: Any) -> bool:
    return isinstance(bgr, torch.Tensor) and bgr.dtype == torch.uint8 and bgr.ndim in (3, 4) and bgr.shape[-1] == 3


def _applies(bgr: Any) -> bool:
    if not settings().gpu_triton or not _is_bgr_batch(bgr):
        return False
    if not _fits(bgr[None] if bgr.ndim == 3 else bgr):
        return False
    if not (bgr.device.type == "cuda" or triton_interpret()):
        return False
    return triton_available()


def _check_input(bgr: Any) -> None:
    """Clear errors for direct callers (try_fancy_upsample_triton has already filtered these cases out)."""
    if not _is_bgr_batch(bgr):
        got = f"{tuple(bgr.shape)} {bgr.dtype}" if isinstance(bgr, torch.Tensor) else type(bgr).__name__
        raise ValueError(f"expected (B, H, W, 3) or (H, W, 3) uint8 BGR frames, got {got}")
    if not _fits(bgr[None] if bgr.ndim == 3 else bgr):
        raise ValueError(
            f"cannot rebuild the chroma of {tuple(bgr.shape)} frames in the Triton kernels (empty, or too large "
            f"a grid); use jpeg_chroma.fancy_upsample_bgr"
        )
    if not (bgr.device.type == "cuda" or triton_interpret()):
        raise ValueError(f"the Triton chroma rebuild needs CUDA frames (or TRITON_INTERPRET=1), got {bgr.device}")


@functools.cache
def _kernels() -> tuple[Any, Any]:
    """Import Triton and wrap both kernels on first use (ImportError when Triton is not installed)."""
    global triton, tl
    import triton as triton_module
    import triton.language as tl_module

    triton, tl = triton_module, tl_module
    # sizes and strides are not specialized on, so a new frame size needs no compile
    return (
        triton.jit(_block_chroma_kernel, do_not_specialize=UNSPECIALIZED_ARGS),
        triton.jit(_upsample_kernel, do_not_specialize=UNSPECIALIZED_ARGS),
    )


def _block_chroma_kernel(
    frames_ptr,
    chroma_ptr,
    stride_b,
    stride_h,
    stride_w,
    stride_c,
    height,
    width,
    block_h,
    block_w,
    BLOCK_Y: tl.constexpr,  # noqa: N803 (Triton's convention for compile-time constants)
    BLOCK_X: tl.constexpr,  # noqa: N803
):
    """One program: BLOCK_Y x BLOCK_X chroma blocks of one frame → their Cb and Cr samples (uint8)."""
    bi = tl.program_id(1) * BLOCK_Y + tl.arange(0, BLOCK_Y)
    bj = tl.program_id(0) * BLOCK_X + tl.arange(0, BLOCK_X)
    frame = tl.program_id(2).to(tl.int64)
    valid = (bi < block_h)[:, None] & (bj < block_w)[None, :]
    src = frames_ptr + frame * stride_b
    # int32 zeros of the tile's shape (not tl.zeros: a library jit function, which the interpreter
    # refuses when Triton was imported before TRITON_INTERPRET was set)
    zero = (bi[:, None] + bj[None, :]) * 0
    cb_all, cr_all, cb_kept, cr_kept, kept = zero, zero, zero, zero, zero
    for dy in tl.static_range(2):
        row = tl.minimum(2 * bi + dy, height - 1)  # odd height: the last row stands in for the missing one
        for dx in tl.static_range(2):
            col = tl.minimum(2 * bj + dx, width - 1)
            pixel = src + (row * stride_h)[:, None] + (col * stride_w)[None, :]
            b = tl.load(pixel, mask=valid, other=0).to(tl.int32)
            g = tl.load(pixel + stride_c, mask=valid, other=0).to(tl.int32)
            r = tl.load(pixel + 2 * stride_c, mask=valid, other=0).to(tl.int32)
            # jpeg_chroma's CB_FROM_RGB / CR_FROM_RGB (jccolor.c's FIX values) plus CHROMA_OFFSET
            cb = -11059 * r - 21709 * g + 32768 * b + 8388608
            cr = 32768 * r - 27439 * g - 5329 * b + 8388608
            keep = ((b > 0) & (b < 255) & (g > 0) & (g < 255) & (r > 0) & (r < 255)).to(tl.int32)
            cb_all += cb
            cr_all += cr
            cb_kept += cb * keep
            cr_kept += cr * keep
            kept += keep
    none_kept = kept == 0
    count = tl.where(none_kept, 4, kept)
    divisor = count * 131072  # 2 * ONE * n: the reference's rounded mean, (2 sum + n ONE) // (2 n ONE)
    cb_mean = (2 * tl.where(none_kept, cb_all, cb_kept) + count * 65536) // divisor
    cr_mean = (2 * tl.where(none_kept, cr_all, cr_kept) + count * 65536) // divisor
    plane = block_h * block_w
    dst = chroma_ptr + frame * 2 * plane + (bi * block_w)[:, None] + bj[None, :]
    tl.store(dst, tl.minimum(cb_mean, 255).to(tl.uint8), mask=valid)
    tl.store(dst + plane, tl.minimum(cr_mean, 255).to(tl.uint8), mask=valid)


def _upsample_kernel(
    frames_ptr,
    chroma_ptr,
    out_ptr,
    stride_b,
    stride_h,
    stride_w,
    stride_c,
    height,
    width,
    block_h,
    block_w,
    BLOCK_Y: tl.constexpr,  # noqa: N803
    BLOCK_X: tl.constexpr,  # noqa: N803
):
    """One program: BLOCK_Y x BLOCK_X pixels of one frame → Y from their BGR, fancy Cb/Cr, BGR out."""
    ys = tl.program_id(1) * BLOCK_Y + tl.arange(0, BLOCK_Y)
    xs = tl.program_id(0) * BLOCK_X + tl.arange(0, BLOCK_X)
    frame = tl.program_id(2).to(tl.int64)
    inside = (ys < height)[:, None] & (xs < width)[None, :]
    # the sample's own block, and the nearer neighbour block (the edge block repeated at the borders)
    i = ys // 2
    j = xs // 2
    near_i = tl.where(ys % 2 == 0, tl.maximum(i - 1, 0), tl.minimum(i + 1, block_h - 1))
    near_j = tl.where(xs % 2 == 0, tl.maximum(j - 1, 0), tl.minimum(j + 1, block_w - 1))
    bias = tl.where(xs % 2 == 0, 8, 7)[None, :]  # libjpeg's h2v2 rounds even columns up, odd ones down
    plane = block_h * block_w
    samples = chroma_ptr + frame * 2 * plane
    at_near = (i * block_w)[:, None] + j[None, :]
    at_near_row = (near_i * block_w)[:, None] + j[None, :]
    at_near_col = (i * block_w)[:, None] + near_j[None, :]
    at_far = (near_i * block_w)[:, None] + near_j[None, :]
    cb = tl.load(samples + at_near, mask=inside, other=0).to(tl.int32) * 9
    cb += tl.load(samples + at_near_row, mask=inside, other=0).to(tl.int32) * 3
    cb += tl.load(samples + at_near_col, mask=inside, other=0).to(tl.int32) * 3
    cb += tl.load(samples + at_far, mask=inside, other=0).to(tl.int32)
    cr = tl.load(samples + plane + at_near, mask=inside, other=0).to(tl.int32) * 9
    cr += tl.load(samples + plane + at_near_row, mask=inside, other=0).to(tl.int32) * 3
    cr += tl.load(samples + plane + at_near_col, mask=inside, other=0).to(tl.int32) * 3
    cr += tl.load(samples + plane + at_far, mask=inside, other=0).to(tl.int32)
    cb = ((cb + bias) >> 4) - 128
    cr = ((cr + bias) >> 4) - 128

    pixel = frames_ptr + frame * stride_b + (ys * stride_h)[:, None] + (xs * stride_w)[None, :]
    b = tl.load(pixel, mask=inside, other=0).to(tl.int32)
    g = tl.load(pixel + stride_c, mask=inside, other=0).to(tl.int32)
    r = tl.load(pixel + 2 * stride_c, mask=inside, other=0).to(tl.int32)
    y = (19595 * r + 38470 * g + 7471 * b + 32768) >> 16  # Y_FROM_RGB, rounded (ONE_HALF >> SCALE)
    # jdcolor.c's inverse: R_FROM_CR, G_FROM_CB / G_FROM_CR, B_FROM_CB
    red = y + ((91881 * cr + 32768) >> 16)
    green = y + ((-22554 * cb - 46802 * cr + 32768) >> 16)
    blue = y + ((116130 * cb + 32768) >> 16)
    dst = out_ptr + frame * height * width * 3 + (ys * width * 3)[:, None] + (xs * 3)[None, :]
    tl.store(dst, tl.minimum(tl.maximum(blue, 0), 255).to(tl.uint8), mask=inside)
    tl.store(dst + 1, tl.minimum(tl.maximum(green, 0), 255).to(tl.uint8), mask=inside)
    tl.store(dst + 2, tl.minimum(tl.maximum(red, 0), 255).to(tl.uint8), mask=inside)
