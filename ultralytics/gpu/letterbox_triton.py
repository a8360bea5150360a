"""The whole letterbox of a same-size batch in one Triton kernel, equal on CUDA bit for bit to the torch path.

Why: `gpu/cv2_linear.py` made the GPU letterbox equal OpenCV's, but as ~10 torch kernels with int32
temporaries; at batch 32 that cost pushed end-to-end time past the issue-8 bar (H200, 32 frames 720x1280
to 384x640 FP16: 1.52 ms for the torch exact path, 0.54 ms for the float resize, 0.067 ms here; see
benchmarks/letterbox_kernels.py). Here one kernel reads the uint8 BHWC frames once and writes the BCHW
canvas once (NCHW or channels-last, through its output strides): for each canvas pixel either the grey 114
border or OpenCV's 8-bit INTER_LINEAR value (the same 4 taps, 11-bit weights and integer roundings as
cv2_linear, whose table builder supplies the taps), with BGR→RGB and /255 then the cast to the output
dtype. The /255 is done as torch does it on CUDA, a float32 multiply by float32(1/255) (torch's scalar
division; numpy's true division differs in the last bit for about half the levels in float32, never in
float16): on CUDA the result equals `letterbox_batch` and the CPU predict path, which also divides on the
device, bit for bit.

Triton is not a dependency: it is imported on first use, and `try_letterbox_triton` answers None
(letterbox.py's torch path then runs) when Triton is missing, the frames are not on CUDA, the batch is not
one BHWC tensor of one geometry, or `ULTRALYTICS_GPU_RESIZE=fast` / `ULTRALYTICS_GPU_TRITON=0` ask for
something else. With `TRITON_INTERPRET=1` the kernel also runs on CPU tensors (numpy), which is how the
CPU tests check it. No host sync happens once a size's tables are cached, so the kernel can be captured
in a CUDA graph (launch it once before capturing: Triton compiles on the first launch).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from ultralytics.data.augment import LetterboxParams
from ultralytics.gpu.cv2_linear import _build_taps, device_tables
from ultralytics.gpu.triton_support import KernelHealth, builds
from ultralytics.utils import LOGGER
from ultralytics.utils.settings import TRITON_ENV, settings, triton_interpret  # noqa: F401 - TRITON_ENV re-exported

# The GPU tile: canvas rows and columns per program, and warps per program (benchmarks/letterbox_kernels.py)
BLOCK_Y = 2
BLOCK_X = 128
NUM_WARPS = 4
MAX_GRID_YZ = 65535  # CUDA's limit on the grid's y (canvas row tiles) and z (frames) dimensions
OUTPUT_DTYPES = (torch.float32, torch.float16)
UNSPECIALIZED_ARGS = (
    "stride_b",
    "stride_h",
    "stride_w",
    "out_stride_b",
    "out_stride_c",
    "canvas_h",
    "top",
    "left",
    "new_h",
    "new_w",
)
MEMORY_FORMATS = (torch.contiguous_format, torch.channels_last)  # the canvas layouts the kernel writes

# Bound on first use by `_kernel()`, so that importing this module never imports Triton.
triton: Any = None
tl: Any = None


HEALTH = KernelHealth()


def try_letterbox_triton(
    frames: list[torch.Tensor] | torch.Tensor,
    geometries: list[LetterboxParams],
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor | None:
    """`letterbox_batch`'s result from one kernel launch, or None where the kernel does not apply.

    None means "use the torch path": it is also the answer for input the torch path rejects, so its
    clear error messages stay the only ones, and, with one warning, from the first time Triton fails to
    build or launch the kernel (Triton comes with most CUDA torch installs, but needs a C compiler).
    """
    if HEALTH.failure is not None or memory_format not in MEMORY_FORMATS or not _applies(frames, geometries, dtype):
        return None
    try:
        return letterbox_same_size(frames, geometries[0], dtype, memory_format)
    except Exception as error:  # Triton installed but unable to build here (no C compiler, unknown GPU...)
        HEALTH.failure = f"{type(error).__name__}: {error}"
        LOGGER.warning(f"WARNING the Triton letterbox failed ({HEALTH.failure}); using the torch letterbox from now on")
        return None


def letterbox_same_size(
    frames: torch.Tensor,
    geometry: LetterboxParams,
    dtype: torch.dtype,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """BHWC uint8 BGR frames of one size → BCHW RGB 0..1 canvas of `dtype`, in one kernel launch.

    The frames may be strided (a crop of a larger buffer): the kernel reads through their strides. The
    canvas is written in `memory_format` (channels-last: what the CUDA pipeline's network takes, with no
    copy between the two); the values are the same in either layout.
    """
    _check_same_size_inputs(frames, geometry, dtype)
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"the Triton letterbox writes contiguous or channels-last canvases, got {memory_format}")
    batch, in_h, in_w, _ = frames.shape
    new_w, new_h = geometry.new_unpad
    canvas_h, canvas_w = geometry.canvas_hw
    rows = _tables(in_h, new_h, frames.device, is_rows=True)
    cols = _tables(in_w, new_w, frames.device, is_rows=False)
    out = torch.empty((batch, 3, canvas_h, canvas_w), dtype=dtype, device=frames.device, memory_format=memory_format)
    kernel = _kernel()
    block_y, block_x, num_warps = _blocks(canvas_h, canvas_w)
    grid = (triton.cdiv(canvas_w, block_x), triton.cdiv(canvas_h, block_y), batch)
    kernel[grid](
        frames,
        out,
        rows,
        cols,
        *frames.stride(),
        *out.stride(),
        canvas_h,
        canvas_w,
        geometry.top,
        geometry.left,
        new_h,
        new_w,
        BLOCK_Y=block_y,
        BLOCK_X=block_x,
        num_warps=num_warps,
    )
    return out


def _blocks(canvas_h: int, canvas_w: int) -> tuple[int, int, int]:
    """(BLOCK_Y, BLOCK_X, num_warps): the GPU tile, or under the interpreter the whole canvas at once.

    The interpreter pays Python overhead per program and numpy time per element, so one program per
    frame is fastest there (a 320x320 letterbox in well under a second instead of tens of seconds).
    """
    if triton_interpret():
        return triton.next_power_of_2(canvas_h), triton.next_power_of_2(canvas_w), 1
    return BLOCK_Y, BLOCK_X, NUM_WARPS


def triton_available() -> bool:
    """Whether Triton can be imported here (it is optional: only GPU machines need it)."""
    return builds(_kernel)


def _applies(frames: Any, geometries: list[LetterboxParams], dtype: torch.dtype) -> bool:
    if not settings().gpu_triton:
        return False
    if settings().gpu_resize != "exact":
        return False  # "fast" asks for the float resize; anything else is letterbox.py's error to raise
    if not isinstance(frames, torch.Tensor) or not geometries or dtype not in OUTPUT_DTYPES:
        return False
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] != len(geometries):
        return False
    if len(set(geometries)) != 1 or not _fits(frames, geometries[0]):
        return False
    if not (frames.device.type == "cuda" or triton_interpret()):
        return False
    return triton_available()


def _fits(frames: torch.Tensor, g: LetterboxParams) -> bool:
    """Geometry the kernel can place: a non-empty image inside the canvas, a grid CUDA can launch."""
    new_w, new_h = g.new_unpad
    canvas_h, canvas_w = g.canvas_hw
    return (
        frames.shape[1] >= 1
        and frames.shape[2] >= 1
        and new_w >= 1
        and new_h >= 1
        and min(g.top, g.left, g.bottom, g.right) >= 0
        and canvas_h <= MAX_GRID_YZ * BLOCK_Y
        and frames.shape[0] <= MAX_GRID_YZ
    )


def _check_same_size_inputs(frames: Any, g: LetterboxParams, dtype: torch.dtype) -> None:
    """Clear errors for direct callers (try_letterbox_triton has already filtered these cases out)."""
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        got = f"{tuple(frames.shape)} {frames.dtype}" if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames must be a BHWC uint8 tensor with 3 channels (BGR), got {got}")
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"the Triton letterbox writes float32 or float16, got {dtype}; use letterbox_batch")
    if not _fits(frames, g):
        raise ValueError(
            f"cannot letterbox {tuple(frames.shape)} frames into {g}: the image must be non-empty, inside the "
            f"canvas, and canvas height at most {MAX_GRID_YZ * BLOCK_Y} and batch at most {MAX_GRID_YZ}; use letterbox_batch"
        )
    if not (frames.device.type == "cuda" or triton_interpret()):
        raise ValueError(f"the Triton letterbox needs CUDA frames (or TRITON_INTERPRET=1), got {frames.device}")


def _packed_taps(in_size: int, out_size: int, device: torch.device, is_rows: bool) -> torch.Tensor:
    """One axis's taps as a (4, out_size) int32 tensor: first tap, second tap, their 11-bit weights.

    cv2_linear's layout (first taps, then second taps) repacked; the rows' rounding bias is not needed,
    the kernel adds OpenCV's final +2 itself.
    """
    taps = _build_taps(in_size, out_size, device, is_rows)
    index = taps.index.to(torch.int32)
    return torch.stack([index[:out_size], index[out_size:], taps.weight[:out_size], taps.weight[out_size:]])


# cached per device like cv2_linear's own tables (built inside the graph when first needed in a capture)
_tables = device_tables(_packed_taps)


@functools.cache
def _kernel() -> Any:
    """Import Triton and compile-wrap the kernel on first use (ImportError when Triton is not installed)."""
    global triton, tl
    import triton as triton_module
    import triton.language as tl_module

    triton, tl = triton_module, tl_module
    # Sizes and offsets are not specialized on (Triton would otherwise compile again when one of them
    # turns 1 or a multiple of 16): a new frame size then needs no compile, so it can even first appear
    # inside a CUDA-graph capture. The canvas width and the canvas's row and column strides (which follow
    # it and the layout) stay specialized, for aligned stores.
    return triton.jit(_letterbox_kernel, do_not_specialize=UNSPECIALIZED_ARGS)


def _letterbox_kernel(
    frames_ptr,
    out_ptr,
    rows_ptr,
    cols_ptr,
    stride_b,
    stride_h,
    stride_w,
    stride_c,
    out_stride_b,
    out_stride_c,
    out_stride_h,
    out_stride_w,
    canvas_h,
    canvas_w,
    top,
    left,
    new_h,
    new_w,
    BLOCK_Y: tl.constexpr,  # noqa: N803 (Triton's convention for compile-time constants)
    BLOCK_X: tl.constexpr,  # noqa: N803
):
    """One program: a BLOCK_Y x BLOCK_X tile of one frame's canvas, all three channels.

    The integer steps are cv2_linear's (see its module docstring): horizontal taps summed in int32 and
    shifted >> 4, each vertical tap weighted and shifted >> 16, then (sum + 2) >> 2.
    """
    ys = tl.program_id(1) * BLOCK_Y + tl.arange(0, BLOCK_Y)
    xs = tl.program_id(0) * BLOCK_X + tl.arange(0, BLOCK_X)
    frame = tl.program_id(2).to(tl.int64)
    dy = ys - top
    dx = xs - left
    row_inside = (dy >= 0) & (dy < new_h)
    col_inside = (dx >= 0) & (dx < new_w)
    in_canvas = (ys < canvas_h)[:, None] & (xs < canvas_w)[None, :]
    inside = row_inside[:, None] & col_inside[None, :]

    row0 = tl.load(rows_ptr + dy, mask=row_inside, other=0)
    row1 = tl.load(rows_ptr + new_h + dy, mask=row_inside, other=0)
    row_weight0 = tl.load(rows_ptr + 2 * new_h + dy, mask=row_inside, other=0)[:, None]
    row_weight1 = tl.load(rows_ptr + 3 * new_h + dy, mask=row_inside, other=0)[:, None]
    col0 = tl.load(cols_ptr + dx, mask=col_inside, other=0)
    col1 = tl.load(cols_ptr + new_w + dx, mask=col_inside, other=0)
    col_weight0 = tl.load(cols_ptr + 2 * new_w + dx, mask=col_inside, other=0)[None, :]
    col_weight1 = tl.load(cols_ptr + 3 * new_w + dx, mask=col_inside, other=0)[None, :]

    src = frames_ptr + frame * stride_b
    top_rows = src + (row0.to(tl.int64) * stride_h)[:, None]
    bottom_rows = src + (row1.to(tl.int64) * stride_h)[:, None]
    offset0 = (col0 * stride_w)[None, :]
    offset1 = (col1 * stride_w)[None, :]
    dst = out_ptr + frame * out_stride_b + (ys * out_stride_h)[:, None] + (xs * out_stride_w)[None, :]
    for c in tl.static_range(3):
        bgr = (2 - c) * stride_c  # RGB channel c reads BGR channel 2 - c
        p00 = tl.load(top_rows + offset0 + bgr, mask=inside, other=0).to(tl.int32)
        p01 = tl.load(top_rows + offset1 + bgr, mask=inside, other=0).to(tl.int32)
        p10 = tl.load(bottom_rows + offset0 + bgr, mask=inside, other=0).to(tl.int32)
        p11 = tl.load(bottom_rows + offset1 + bgr, mask=inside, other=0).to(tl.int32)
        upper = (p00 * col_weight0 + p01 * col_weight1) >> 4
        lower = (p10 * col_weight0 + p11 * col_weight1) >> 4
        level = (((row_weight0 * upper) >> 16) + ((row_weight1 * lower) >> 16) + 2) >> 2
        level = tl.where(inside, level, 114)  # upstream's grey border
        # torch on CUDA divides by a scalar as a multiply by its float32 reciprocal (and so does the CPU
        # predict path, which divides on the model's device): the same product gives the same bits
        value = level.to(tl.float32) * 0.003921568859368563  # float32(1 / 255), 0x3B808081
        tl.store(dst + c * out_stride_c, value.to(out_ptr.dtype.element_ty), mask=in_canvas)
