"""libjpeg-turbo's "fancy" chroma upsampling, rebuilt on the device from nvJPEG's output (opt-in).

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

Not run on the GPU yet, so it is opt-in: `ULTRALYTICS_GPU_JPEG_CHROMA=fancy`.
"""

from __future__ import annotations

import torch

from ultralytics.utils.settings import CHROMA_ENV, jpeg_chroma  # noqa: F401 - CHROMA_ENV: its old home

_SCALE = 16  # libjpeg's SCALEBITS for the colour conversion tables
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
    libjpeg-turbo's h2v2 fancy upsampling and its integer YCbCr→RGB, as uint8 BGR."""
    single = bgr.ndim == 3
    x = bgr[None] if single else bgr
    h, w = x.shape[1:3]
    f = x.float()
    b, g, r = f.unbind(-1)
    y = (0.299 * r + 0.587 * g + 0.114 * b).round_().clamp_(0, 255).to(torch.int32)
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    unclipped = ((x > 0) & (x < 255)).all(-1).float()
    cb, cr = _block_means(cb, cr, unclipped)
    cb, cr = _fancy_h2v2(cb)[:, :h, :w], _fancy_h2v2(cr)[:, :h, :w]
    out = _ycc_to_bgr(y, cb, cr)
    return out[0] if single else out


def _block_means(cb: torch.Tensor, cr: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The stored chroma samples: each 2x2 block's mean over its unclipped pixels (all pixels if none)."""
    h, w = cb.shape[1:]
    pad = (0, w % 2, 0, h % 2)  # odd sizes: the edge column/row stands in for the missing one
    planes = torch.stack([cb, cr, weight], 1)
    planes = torch.nn.functional.pad(planes, pad, mode="replicate")
    n, _, hh, ww = planes.shape
    blocks = planes.view(n, 3, hh // 2, 2, ww // 2, 2)
    wsum = blocks[:, 2].sum((2, 4))
    weighted = (blocks[:, :2] * blocks[:, 2:3]).sum((3, 5))
    plain = blocks[:, :2].mean((3, 5))
    means = torch.where(wsum[:, None] > 0, weighted / wsum.clamp(min=1e-9)[:, None], plain)
    means = means.round_().clamp_(0, 255).to(torch.int32)
    return means[:, 0], means[:, 1]


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
    one_half = 1 << (_SCALE - 1)

    def fix(v: float) -> int:
        return int(v * (1 << _SCALE) + 0.5)

    cb, cr = cb - 128, cr - 128
    r = y + ((fix(1.40200) * cr + one_half) >> _SCALE)
    g = y + ((-fix(0.34414) * cb - fix(0.71414) * cr + one_half) >> _SCALE)
    b = y + ((fix(1.77200) * cb + one_half) >> _SCALE)
    return torch.stack([b, g, r], -1).clamp_(0, 255).to(torch.uint8)
