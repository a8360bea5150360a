"""A torch resize equal, bit for bit, to `cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)` on uint8.

Why: float bilinear (`F.interpolate`) samples where OpenCV does, but OpenCV computes 8-bit INTER_LINEAR in
fixed point, so a float resize differs from it by one grey level on ~10% of pixels, enough to move
low-confidence boxes. Reproducing OpenCV's integer scheme makes the GPU letterbox equal the CPU one.

OpenCV's 8-bit scheme (from its resize source, checked pixel for pixel against the installed cv2 5.0.0 by
tests/gpu/test_cv2_linear.py):
- Source coordinate of output column dx: `fx = float32((dx + 0.5) * scale_x - 0.5)` with the float64
  `scale_x = 1 / (dst_w / src_w)`; `x0 = floor(fx)`, fraction `t = fx - x0` (float32).
- Columns: a sample left of the image (x0 < 0) or at/after its last column (x0 >= w - 1) is clamped to
  that edge column with fraction 0. Rows are clamped the same way, but keep their fraction: both taps
  then read the same edge row with weights that need not be (2048, 0), and the vertical pass rounds
  each tap separately, so the distinction is visible in the output.
- Weights are 11-bit: `round_half_even((1 - t) * 2048)` and `round_half_even(t * 2048)` (float32 math).
- Horizontal pass: `h = s[x0] * a0 + s[x1] * a1`, exact in int32 (at most 255 * 2048 per tap).
- Vertical pass (the 16-bit SIMD form; OpenCV's scalar tail for uint8 computes the very same formula,
  so the result does not depend on the CPU's SIMD width, nor on the thread count):
  `((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16)`, then `(v + 2) >> 2` (never above 255).
OpenCV sends an exact 2x downscale in both axes to INTER_AREA, which gives the same numbers
(`(a + b + c + d + 2) >> 2`), so it needs no separate branch here.
Not covered: OpenCV builds whose HAL replaces resize (e.g. Carotene or KleidiCV on ARM hosts) may round
differently; the tests compare with whatever cv2 is installed, so they would show it.

Everything is torch ops on the frames' device with shapes fixed by the sizes alone: no data-dependent
shape and, once a size's tables are cached, no host sync, so the resize can be captured in a CUDA graph.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import torch

from ultralytics.gpu.constants import CaptureSafeCache

T = TypeVar("T")

COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
COEF_ONE = 1 << COEF_BITS
ROUNDING_BIAS = 2 << 16  # the final "+2 before >> 2", moved ahead of the ">> 16" of one tap (exact)


class Taps(NamedTuple):
    """The two source taps of every output index along one axis, both taps in one gather.

    `index` is (first taps of all outputs, then second taps), so one `index_select` fetches both;
    `weight` and `bias` line up with it. `bias` carries the final rounding term (rows only).
    """

    index: torch.Tensor  # int64, (2 * n,)
    weight: torch.Tensor  # int32, (2 * n,)
    bias: torch.Tensor  # int32, (2 * n,)


def resize_linear_uint8_exact(frames: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """BHWC uint8 frames → BCHW float32 whole grey levels, equal to cv2.INTER_LINEAR on every pixel.

    Same contract as `letterbox.resize_bilinear_uint8`, so the two are interchangeable. The result is a
    contiguous BCHW tensor.
    """
    out_h, out_w = _check_inputs(frames, size_hw)
    in_h, in_w = frames.shape[1], frames.shape[2]
    x = frames.permute(0, 3, 1, 2)  # a BCHW view; the first gather makes it contiguous
    if (in_h, in_w) == (out_h, out_w):
        return x.float()  # OpenCV copies; the formulas below would give the same numbers

    cols = _taps(in_w, out_w, frames.device, is_rows=False)
    rows = _taps(in_h, out_h, frames.device, is_rows=True)
    if 2 * out_h < in_h:
        # strong vertical downscale: fetch the needed source rows first, so the horizontal pass touches
        # 2 * out_h rows instead of all in_h (same numbers: each pass acts on its own axis)
        taps_hw = _horizontal_pass(x.index_select(2, rows.index), cols)
    else:
        taps_hw = _horizontal_pass(x, cols).index_select(2, rows.index)
    return _vertical_pass(taps_hw, rows)


def _horizontal_pass(x: torch.Tensor, cols: Taps) -> torch.Tensor:
    """BCHW uint8 → BCHW int32 rows interpolated along W in 11-bit fixed point, already shifted >> 4.

    The sum is exact (at most 255 * 2048 per tap); the >> 4 is the first step of OpenCV's vertical pass,
    done here on the (usually fewer) source rows.
    """
    out_w = cols.index.numel() // 2
    products = torch.mul(x.index_select(3, cols.index), cols.weight)  # uint8 * int32 → int32
    summed = products[..., :out_w] + products[..., out_w:]
    return summed.bitwise_right_shift_(4)


def _vertical_pass(taps_hw: torch.Tensor, rows: Taps) -> torch.Tensor:
    """(B, C, 2 * out_h, out_w) int32 first/second row taps → BCHW float32 grey levels.

    OpenCV's 16-bit SIMD form, which its scalar tail mirrors: each tap is multiplied by its weight and
    keeps the high 16 bits, then `(sum + 2) >> 2`. No saturation is needed: with weights summing to at
    most 2049 the largest value is (1020 + 2) >> 2 = 255.
    """
    out_h = rows.index.numel() // 2
    weighted = torch.addcmul(rows.bias.view(1, 1, -1, 1), taps_hw, rows.weight.view(1, 1, -1, 1))
    weighted.bitwise_right_shift_(16)
    summed = weighted[:, :, :out_h] + weighted[:, :, out_h:]
    return summed.bitwise_right_shift_(2).float()


def device_tables(build: Callable[[int, int, torch.device, bool], T]) -> Callable[..., T]:
    """Wrap a table builder `build(in_size, out_size, device, is_rows)` (a tensor or a tuple of tensors)
    into `get(in_size, out_size, device, *, is_rows)`: cached per device (`gpu/constants.py`: a capture
    reads a cached table instead of rebuilding it in every replay). Outside a capture a table is built on
    the CPU and copied over; inside one (first needed there) the graph's kernels build it on the device."""
    cache: CaptureSafeCache[T] = CaptureSafeCache(recent=64)

    @functools.wraps(build)
    def get(in_size: int, out_size: int, device: torch.device, *, is_rows: bool) -> T:
        device = torch.device(device)

        def make(capturing: bool) -> T:
            if capturing:
                return build(in_size, out_size, device, is_rows)
            table = build(in_size, out_size, torch.device("cpu"), is_rows)
            if isinstance(table, torch.Tensor):
                return table.to(device)
            return type(table)(*(t.to(device) for t in table))

        return cache.get((in_size, out_size, device, is_rows), device, make)

    return get


def _build_taps(in_size: int, out_size: int, device: torch.device, is_rows: bool) -> Taps:
    """Where OpenCV samples and with which 11-bit weights (see the module docstring)."""
    scale = 1.0 / (out_size / in_size)  # OpenCV inverts the double ratio dst/src
    centres = torch.arange(out_size, dtype=torch.float64, device=device)
    position = ((centres + 0.5) * scale - 0.5).to(torch.float32)
    first = torch.floor(position)
    fraction = position - first
    first = first.to(torch.int64)
    if is_rows:
        # rows: clamp the row read, keep the fraction (both taps may read the same edge row)
        second = (first + 1).clamp_(0, in_size - 1)
        first = first.clamp_(0, in_size - 1)
    else:
        # columns: a sample outside [0, in_size - 1) reads the edge column with fraction 0
        outside = (first < 0) | (first >= in_size - 1)
        fraction = torch.where(outside, torch.zeros_like(fraction), fraction)
        first = first.clamp_(0, in_size - 1)
        second = (first + 1).clamp_(max=in_size - 1)
    # round half to even, like OpenCV's saturate_cast<short>(float)
    weight_first = torch.round((1.0 - fraction) * COEF_ONE).to(torch.int32)
    weight_second = torch.round(fraction * COEF_ONE).to(torch.int32)
    bias = torch.zeros(2 * out_size, dtype=torch.int32, device=device)
    if is_rows:
        bias[:out_size] = ROUNDING_BIAS
    return Taps(torch.cat([first, second]), torch.cat([weight_first, weight_second]), bias)


_taps = device_tables(_build_taps)


def _check_inputs(frames: torch.Tensor, size_hw: tuple[int, int]) -> tuple[int, int]:
    """Clear errors for what would otherwise fail deep inside torch (or silently resize wrongly)."""
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4:
        got = f"{tuple(frames.shape)} {frames.dtype}" if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames must be a BHWC uint8 tensor (batch, height, width, channels), got {got}")
    if frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ValueError(f"frames must be at least 1x1 pixels, got height x width {tuple(frames.shape[1:3])}")
    try:
        out_h, out_w = (operator.index(s) for s in size_hw)
    except (TypeError, ValueError):
        raise ValueError(f"size_hw must be two ints (height, width), got {size_hw!r}") from None
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size_hw must be positive (height, width), got {size_hw!r}")
    return out_h, out_w
