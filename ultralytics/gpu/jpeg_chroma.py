"""libjpeg-turbo's "fancy" chroma upsampling, rebuilt on the device from nvJPEG's output (the default).

Most JPEGs store colour (Cb, Cr) at half resolution in both directions (4:2:0). libjpeg-turbo, which
OpenCV decodes with, interpolates it back with a triangle filter ("fancy upsampling"); nvJPEG repeats
each colour sample over its 2x2 pixels. On the shapes val set the two decodes differ by 1.49 grey
levels on average and up to 101 at colour edges, which costs 0.005 mAP50-95. Decoding the same files
with nearest chroma on the CPU (FFmpeg's planes, repeated) gives the same numbers to the grey level
(mean 1.50, p99.9 52, max 101), so nearest upsampling is the difference, not the IDCT.

Undoing it needs the chroma planes, which torchvision does not expose. They can be recovered: within
each 2x2 block nvJPEG's Cb and Cr are constant, so the block's mean Cb/Cr (from the pixels RGB clipping
left alone) is the stored sample. From there the triangle filter and libjpeg's integer YCbCr→RGB run
as libjpeg runs them. On the CPU stand-in this brings the shapes set from mean 1.50 / max 101 to
mean 0.075 / max 20 against OpenCV (tests/gpu_decode/test_jpeg_chroma.py).

Every step is integer arithmetic (libjpeg's forward constants with 16 fraction bits, block means by one
rounded integer division), so this torch reference and the Triton kernels of gpu/jpeg_chroma_triton.py,
which decode.py runs on CUDA, give the same bytes on any device. The float form it replaced moved 0.0011%
of the values of the 100 shapes val images, by at most 2; its val mAP50-95 on the stand-in is the same
(0.95218 both ways; OpenCV decoding 0.95193).

It is the default since the H200 measured it (session 6): the Triton kernels take 0.32 ms per batch of 32 720p
JPEGs (the torch reference 12.9), byte for byte equal to this reference, and the JPEG folder at batch 32
cost the same with and without it within that call's noise; shapes val mAP50-95 came within 0.0005 of
OpenCV decoding (nvJPEG's own chroma: −0.005 to −0.006). `ULTRALYTICS_GPU_JPEG_CHROMA=nvjpeg` keeps
nvJPEG's chroma.
"""

from __future__ import annotations

import torch

from ultralytics.utils.settings import CHROMA_ENV, jpeg_chroma  # noqa: F401 - CHROMA_ENV: its old home

# libjpeg's fixed point: SCALEBITS fraction bits. The forward constants are jccolor.c's FIX() values
# (each row sums to ONE or to 0, so grey stays grey); the inverse ones are jdcolor.c's.
SCALE = 16
ONE = 1 << SCALE
ONE_HALF = 1 << (SCALE - 1)
CHROMA_OFFSET = 128 << SCALE
Y_FROM_RGB = (19595, 38470, 7471)  # FIX(0.29900), FIX(0.58700), FIX(0.11400)
CB_FROM_RGB = (-11059, -21709, 32768)  # -FIX(0.16874), -FIX(0.33126), FIX(0.5)
CR_FROM_RGB = (32768, -27439, -5329)  # FIX(0.5), -FIX(0.41869), -FIX(0.08131)
R_FROM_CR = 91881  # FIX(1.40200)
G_FROM_CB, G_FROM_CR = 22554, 46802  # FIX(0.34414), FIX(0.71414), both subtracted
B_FROM_CB = 116130  # FIX(1.77200)
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def chroma_mode() -> str:
    return jpeg_chroma()


def sampling_factors(data: bytes) -> tuple[tuple[int, int], ...] | None:
    """(h, v) sampling factors of each component from the JPEG's frame header (None if not found)."""
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS:
            count = data[i + 9] if i + 9 < n else 0
            comps = data[i + 10 : i + 10 + 3 * count]
            if len(comps) < 3 * count:
                return None
            return tuple((comps[3 * k + 1] >> 4, comps[3 * k + 1] & 15) for k in range(count))
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def is_h2v2(data: bytes) -> bool:
    """A 3-component JPEG with 4:2:0 chroma (luma 2x2, both chroma 1x1): the case this module rebuilds."""
    return sampling_factors(data) == ((2, 2), (1, 1), (1, 1))


def fancy_upsample_bgr(bgr: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) or (H, W, 3) uint8 BGR decoded with nearest 4:2:0 chroma → the same image with
    libjpeg-turbo's h2v2 fancy upsampling and its integer YCbCr→RGB, as uint8 BGR.

    The torch reference: integers only, so gpu/jpeg_chroma_triton.py's kernels give the same bytes on
    any device. `fancy_upsample` in that module picks the kernel where it applies.
    """
    single = bgr.ndim == 3
    x = bgr[None] if single else bgr
    h, w = x.shape[1:3]
    b, g, r = x.to(torch.int32).unbind(-1)
    y = _fixed_dot(Y_FROM_RGB, r, g, b).add_(ONE_HALF) >> SCALE
    cb = _fixed_dot(CB_FROM_RGB, r, g, b).add_(CHROMA_OFFSET)
    cr = _fixed_dot(CR_FROM_RGB, r, g, b).add_(CHROMA_OFFSET)
    unclipped = ((x > 0) & (x < 255)).all(-1).to(torch.int32)
    cb, cr = _block_means(cb, cr, unclipped)
    cb, cr = _fancy_h2v2(cb)[:, :h, :w], _fancy_h2v2(cr)[:, :h, :w]
    out = _ycc_to_bgr(y, cb, cr)
    return out[0] if single else out


def _fixed_dot(weights: tuple[int, int, int], r: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return weights[0] * r + weights[1] * g + weights[2] * b


def _block_means(cb: torch.Tensor, cr: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The stored chroma samples: each 2x2 block's mean over its unclipped pixels (all pixels if none).

    Inputs are the fixed-point Cb/Cr (16 fraction bits, offset included: never negative) and 0/1
    weights; each mean is rounded half up by one integer division, (2 sum + n one) // (2 n one).
    """
    h, w = cb.shape[1:]
    pad = (0, w % 2, 0, h % 2)  # odd sizes: the edge column/row stands in for the missing one
    planes = torch.stack([cb, cr, weight], 1)
    planes = _pad_replicate(planes, pad)
    n, _, hh, ww = planes.shape
    blocks = planes.view(n, 3, hh // 2, 2, ww // 2, 2)
    count = blocks[:, 2].sum((2, 4))
    weighted = (blocks[:, :2] * blocks[:, 2:3]).sum((3, 5))
    plain = blocks[:, :2].sum((3, 5))
    none_kept = count == 0
    sums = torch.where(none_kept[:, None], plain, weighted)
    count = torch.where(none_kept, 4, count)[:, None]
    means = (2 * sums + count * ONE) // (2 * ONE * count)
    means = means.clamp_(max=255)
    return means[:, 0], means[:, 1]


def _pad_replicate(planes: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Replicate the last column/row of integer planes (F.pad's replicate mode takes floats only)."""
    if pad[1]:
        planes = torch.cat([planes, planes[..., -1:]], -1)
    if pad[3]:
        planes = torch.cat([planes, planes[..., -1:, :]], -2)
    return planes


def _fancy_h2v2(c: torch.Tensor) -> torch.Tensor:
    """libjpeg-turbo's h2v2 fancy upsampling of (B, h, w) int32 samples → (B, 2h, 2w)."""
    above = torch.cat([c[:, :1], c[:, :-1]], 1)
    below = torch.cat([c[:, 1:], c[:, -1:]], 1)
    rows = []
    for near in (above, below):
        col = c * 3 + near
        left = torch.cat([col[:, :, :1], col[:, :, :-1]], 2)
        right = torch.cat([col[:, :, 1:], col[:, :, -1:]], 2)
        even = (col * 3 + left + 8) >> 4
        odd = (col * 3 + right + 7) >> 4
        even[:, :, 0] = (col[:, :, 0] * 4 + 8) >> 4
        odd[:, :, -1] = (col[:, :, -1] * 4 + 7) >> 4
        rows.append(torch.stack([even, odd], -1).flatten(-2))
    return torch.stack(rows, 2).flatten(1, 2)


def _ycc_to_bgr(y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
    """libjpeg's jdcolor.c: fixed-point tables with 16 fraction bits, then clipped to 0..255."""
    cb, cr = cb - 128, cr - 128
    r = y + ((R_FROM_CR * cr + ONE_HALF) >> SCALE)
    g = y + ((-G_FROM_CB * cb - G_FROM_CR * cr + ONE_HALF) >> SCALE)
    b = y + ((B_FROM_CB * cb + ONE_HALF) >> SCALE)
    return torch.stack([b, g, r], -1).clamp_(0, 255).to(torch.uint8)
