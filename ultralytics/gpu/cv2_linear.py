"""A torch resize equal, bit for bit, to `cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)` on uint8.

Why: float bilinear (`F.interpolate`) samples where OpenCV does, but OpenCV computes 8-bit INTER_LINEAR in
fixed point, so a float resize differs from it by one grey level on ~10% of pixels, enough to move
low-confidence boxes. Reproducing OpenCV's integer scheme makes the GPU letterbox equal the CPU one.

OpenCV's 8-bit scheme (observed in cv2 4.x/5.0.0 and checked pixel for pixel by tests/gpu/test_cv2_linear.py):
- Source coordinate of output column dx: `fx = float32((dx + 0.5) * scale_x - 0.5)` with the float64
  `scale_x = 1 / (dst_w / src_w)`; `x0 = floor(fx)`, fraction `t = fx - x0` (float32).
- Columns: a sample left of the image (x0 < 0) or at/after its last column (x0 >= w - 1) is clamped to
  that edge column with fraction 0. Rows are clamped the same way, but keep their fraction: both taps
  then read the same edge row with weights that need not be (2048, 0), and the vertical pass rounds
  each tap separately, so the distinction is visible in the output.
- Weights are 11-bit: `round_half_even((1 - t) * 2048)` and `round_half_even(t * 2048)` (float32 math).
- Horizontal pass: `h = s[x0] * a0 + s[x1] * a1`, exact in int32 (at most 255 * 2048 per tap).
- Vertical pass (the 16-bit SIMD form, which OpenCV's scalar tail mirrors, so no width dependence):
  `((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16)`, then `(v + 2) >> 2`, saturated to 0..255.
An exact 2x downscale in both axes is sent by OpenCV to INTER_AREA, which gives the same numbers
(`(a + b + c + d + 2) >> 2`), so it needs no separate branch here.

Everything is torch ops on the frames' device with shapes fixed by the sizes alone: no host sync, no
data-dependent shape, so the resize can be captured in a CUDA graph.
"""

from __future__ import annotations

import torch

COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
COEF_ONE = 1 << COEF_BITS


def resize_linear_uint8_exact(frames: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """BHWC uint8 frames → BCHW float32 whole grey levels, equal to cv2.INTER_LINEAR on every pixel.

    Same contract as `letterbox.resize_bilinear_uint8`, so the two are interchangeable.
    """
    _check_inputs(frames, size_hw)
    out_h, out_w = (int(s) for s in size_hw)
    in_h, in_w = frames.shape[1], frames.shape[2]
    if (in_h, in_w) == (out_h, out_w):
        return frames.permute(0, 3, 1, 2).float()

    device = frames.device
    x0, x1, a0, a1 = _column_taps(in_w, out_w, device)
    y0, y1, b0, b1 = _row_taps(in_h, out_h, device)

    if 2 * out_h < in_h:
        # strong vertical downscale: pick the needed source rows first, so the horizontal pass only
        # touches 2 * out_h rows instead of all in_h (same numbers, the passes act on separate axes)
        top = _horizontal_pass(frames.index_select(1, y0), x0, x1, a0, a1)
        bottom = _horizontal_pass(frames.index_select(1, y1), x0, x1, a0, a1)
    else:
        rows = _horizontal_pass(frames, x0, x1, a0, a1)
        top, bottom = rows.index_select(1, y0), rows.index_select(1, y1)

    # vertical pass, as OpenCV's 16-bit SIMD does it: drop 4 bits, multiply-high by the 11-bit weight
    b0 = b0.view(1, -1, 1, 1)
    b1 = b1.view(1, -1, 1, 1)
    top = (top >> 4).mul_(b0) >> 16
    bottom = (bottom >> 4).mul_(b1) >> 16
    value = top.add_(bottom).add_(2) >> 2
    # saturate like the SIMD pack (weights rounding up can push a white pixel to 256)
    return value.clamp_(max=255).permute(0, 3, 1, 2).float()


def _horizontal_pass(
    frames: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor, a0: torch.Tensor, a1: torch.Tensor
) -> torch.Tensor:
    """Int32 BHWC rows interpolated along W in 11-bit fixed point (exact: no rounding in this pass)."""
    left = frames.index_select(2, x0).to(torch.int32)
    right = frames.index_select(2, x1).to(torch.int32)
    return left.mul_(a0.view(1, 1, -1, 1)).add_(right.mul_(a1.view(1, 1, -1, 1)))


def _source_positions(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer source index and float32 fraction for every output index, computed as OpenCV does."""
    scale = 1.0 / (out_size / in_size)  # OpenCV inverts the double ratio dst/src, not src/dst
    centres = torch.arange(out_size, dtype=torch.float64, device=device)
    position = ((centres + 0.5) * scale - 0.5).to(torch.float32)
    index = torch.floor(position)
    return index.to(torch.int64), position - index


def _weights(fraction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """11-bit weights of the two taps, rounded half to even like OpenCV's saturate_cast<short>."""
    w0 = torch.round((1.0 - fraction) * COEF_ONE).to(torch.int32)
    w1 = torch.round(fraction * COEF_ONE).to(torch.int32)
    return w0, w1


def _column_taps(in_w: int, out_w: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Columns clamp to the edge with fraction 0 (OpenCV resets the fraction for out-of-image columns)."""
    index, fraction = _source_positions(in_w, out_w, device)
    outside = (index < 0) | (index >= in_w - 1)
    fraction = torch.where(outside, torch.zeros_like(fraction), fraction)
    x0 = index.clamp(0, in_w - 1)
    x1 = (x0 + 1).clamp_(max=in_w - 1)
    return (x0, x1, *_weights(fraction))


def _row_taps(in_h: int, out_h: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Rows clamp to the edge but keep their fraction (OpenCV clamps only the row it reads)."""
    index, fraction = _source_positions(in_h, out_h, device)
    y0 = index.clamp(0, in_h - 1)
    y1 = (index + 1).clamp(0, in_h - 1)
    return (y0, y1, *_weights(fraction))


def _check_inputs(frames: torch.Tensor, size_hw: tuple[int, int]) -> None:
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4:
        got = f"{tuple(frames.shape)} {frames.dtype}" if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames must be a BHWC uint8 tensor (batch, height, width, channels), got {got}")
    if min(frames.shape[1], frames.shape[2]) < 1:
        raise ValueError(f"frames must be at least 1x1 pixels, got height x width {tuple(frames.shape[1:3])}")
    if len(size_hw) != 2 or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in size_hw):
        raise ValueError(f"size_hw must be two positive ints (height, width), got {size_hw!r}")
