"""A fused Conv's bias add and SiLU in one Triton kernel, equal on CUDA bit for bit to eager PyTorch.

Why: at batch 1 a YOLOv8n forward on an H200 is ~300 tiny kernels in one CUDA graph; PyTorch's cuDNN
convolution adds the bias in a kernel of its own and SiLU is another (CUPTI: 76 bias/elementwise and 57
SiLU kernels, ~0.3 ms of ~0.8 ms; benchmarks/NOTES.md "Probe 1"). After a bias-free convolution one
kernel here does `y = silu(y + bias)` in place: one kernel instead of two per fused Conv (57 fewer per
YOLOv8 forward) and one read and write of the activation fewer (benchmarks/bias_act_kernels.py).

Same bits as `F.silu(F.conv2d(x, w, b))` on CUDA, by doing the same roundings in the same order:
- the bias add: torch's convolution adds the bias after cuDNN as a separate `add_` in float32 (the
  op math of half too), rounded to the tensor's dtype; here the sum is rounded to the dtype too;
- SiLU: torch's CUDA kernel reads that stored value and computes `x / (1 + exp(-x))` in float32
  (`ActivationSiluKernel.cu`: op math float, `::exp`, IEEE division), then rounds to the dtype. Triton's
  own `exp` and `/` are fast approximations (`ex2.approx`, `div.full`), so the kernel calls libdevice's
  `exp` (the same `expf` nvcc links) and `tl.math.div_rn` (`div.rn.f32`). Triton's libdevice is built
  flush-to-zero, which only changes `exp` results below float32's normal range: there `1 + exp(-x)`
  is 1 either way.
The CUDA tests (tests/gpu/test_bias_act_triton.py) check `torch.equal` with eager for whole YOLOv8n
forwards, eager and inside a CUDA graph.

Triton is optional: it is imported on first use; where it is missing, fails to build (one warning,
then the torch path for the rest of the process), or the switch `ULTRALYTICS_GPU_TRITON=0` is set,
`conv_bias_silu` answers None and `Conv.forward` runs eager PyTorch. The switch is read once per
process (Conv.forward runs ~60 times a forward; `reload_switch()` reads it again). The fused path is
never taken while autograd records, while tracing (ONNX/TorchScript export) or compiling, so exports
and training see the usual graph. With `TRITON_INTERPRET=1` and `interpret_on_cpu()` (a test hook) the
kernel also runs on CPU tensors, in numpy (the interpreter has no libdevice: `tl.exp` is numpy's exp
there): that proves the indexing and the order of roundings, not the GPU's `exp` bits.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as torch_module

from ultralytics.gpu.triton_support import KernelHealth, builds
from ultralytics.utils import LOGGER
from ultralytics.utils.settings import settings, triton_interpret

BLOCK = 1024  # elements per program on the GPU (memory-bound: 4 warps, 8 elements a thread)
NUM_WARPS = 4
INTERPRETER_BLOCK = 1 << 20  # under the interpreter few large programs: numpy pays per program, not per element
DTYPES = (torch.float32, torch.float16)  # bfloat16 left out: the CPU interpreter cannot check its rounding
MAX_ELEMENTS = 2**31 - 1  # int32 offsets in the kernel

# Bound on first use by `_kernel()`, so that importing this module never imports Triton.
triton: Any = None
tl: Any = None
libdevice: Any = None


HEALTH = KernelHealth()


class _CpuHook:
    on = False  # interpret_on_cpu(): CPU tensors may take the fused path under TRITON_INTERPRET=1


_CPU = _CpuHook()


@functools.cache
def _switch_on() -> bool:
    """`ULTRALYTICS_GPU_TRITON` (default on) and Triton importable, decided once per process."""
    return settings().gpu_triton and triton_available()


def reload_switch() -> None:
    """Read `ULTRALYTICS_GPU_TRITON` again on the next forward (tests and benchmarks flip it at run time)."""
    _switch_on.cache_clear()


@contextmanager
def interpret_on_cpu() -> Iterator[None]:
    """Test hook: let CPU tensors take the fused path (needs TRITON_INTERPRET=1 when the kernel is first wrapped)."""
    previous, _CPU.on = _CPU.on, True
    _kernel.cache_clear()  # the interpreter is chosen when the kernel is wrapped
    reload_switch()
    try:
        yield
    finally:
        _CPU.on = previous
        _kernel.cache_clear()
        reload_switch()


def conv_bias_silu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor | None:
    """`silu(conv(x))` as a bias-free convolution plus the fused kernel, or None where that path does not apply.

    None means "run the module as usual": a conv without bias or with groups (PyTorch's depth-wise CUDA
    kernel adds the bias inside the convolution, so a separate add would round differently), other
    padding modes, a dtype or device the kernel does not take, autograd recording, tracing/exporting,
    autocast, the switch off, Triton missing or broken.
    """
    bias = conv.bias
    if bias is None or HEALTH.failure is not None:
        return None
    if not (x.is_cuda or (_CPU.on and triton_interpret())):
        return None
    if conv.groups != 1 or conv.padding_mode != "zeros" or x.dtype not in DTYPES:
        return None
    if x.dtype != bias.dtype or x.dtype != conv.weight.dtype or bias.device != x.device:
        return None  # torch's own convolution reports the mismatch
    if torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad or bias.requires_grad):
        return None
    if _tracing() or _autocast(x) or not _switch_on():
        return None
    if _hooked(conv):  # user hooks on the nn.Conv2d see its output only when the module itself runs
        return None
    y = F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    if _layout(y) is not None:
        try:
            return bias_silu_(y, bias)
        except Exception as error:  # Triton installed but unable to build or launch here
            HEALTH.failure = f"{type(error).__name__}: {error}"
            LOGGER.warning(f"WARNING the Triton bias+SiLU kernel failed ({HEALTH.failure}); using PyTorch from now on")
    return F.silu(y.add_(bias.reshape(1, -1, 1, 1)))  # eager's two kernels, same bits


def _hooked(conv: nn.Module) -> bool:
    """Forward hooks on the convolution itself, or global module hooks (feature extraction, debugging)."""
    return bool(
        conv._forward_hooks
        or conv._forward_pre_hooks
        or torch_module._global_forward_hooks
        or torch_module._global_forward_pre_hooks
    )


def bias_silu_(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`y = silu(y + bias[None, :, None, None])` in place (one kernel), as eager PyTorch rounds it; returns `y`.

    `y`: (N, C, H, W) float32/float16, contiguous or channels-last, on CUDA (or on the CPU under
    TRITON_INTERPRET=1); `bias`: (C,) of the same dtype and device.
    """
    _check(y, bias)
    inner = _layout(y)
    if inner is None:
        raise ValueError(
            f"bias_silu_ needs a contiguous or channels-last NCHW tensor of fewer than {MAX_ELEMENTS + 1} "
            f"elements, got shape {tuple(y.shape)} strides {y.stride()}; call .contiguous() first"
        )
    numel = y.numel()
    if numel == 0:
        return y
    kernel = _kernel()
    interpreting = triton_interpret()
    block, num_warps = (
        (min(triton.next_power_of_2(numel), INTERPRETER_BLOCK), 1) if interpreting else (BLOCK, NUM_WARPS)
    )
    grid = (triton.cdiv(numel, block),)
    kernel[grid](
        y, bias.contiguous(), numel, inner, y.shape[1], BLOCK=block, ACCURATE_EXP=not interpreting, num_warps=num_warps
    )
    return y


def _check(y: Any, bias: Any) -> None:
    """One-line errors for direct callers (conv_bias_silu has filtered these cases out)."""
    if not isinstance(y, torch.Tensor) or y.ndim != 4 or y.dtype not in DTYPES:
        got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"bias_silu_ needs an NCHW float32/float16 tensor, got {got}")
    if not isinstance(bias, torch.Tensor) or bias.shape != (y.shape[1],) or bias.dtype != y.dtype:
        got = f"{tuple(bias.shape)} {bias.dtype}" if isinstance(bias, torch.Tensor) else type(bias).__name__
        raise ValueError(f"bias must be a ({y.shape[1]},) tensor of {y.dtype} (one value per channel), got {got}")
    if bias.device != y.device or not (y.is_cuda or triton_interpret()):
        raise ValueError(
            f"bias_silu_ needs both tensors on one CUDA device (or TRITON_INTERPRET=1), got {y.device} and {bias.device}"
        )


def _layout(y: torch.Tensor) -> int | None:
    """Elements between consecutive channels of one pixel's run: H*W (contiguous NCHW), 1 (channels-last), None: other."""
    if y.ndim != 4 or y.numel() > MAX_ELEMENTS:
        return None
    if y.is_contiguous():
        return y.shape[2] * y.shape[3]
    if y.is_contiguous(memory_format=torch.channels_last):
        return 1
    return None


def _tracing() -> bool:
    """Inside torch.jit tracing, an ONNX export or torch.compile: the exported graph must stay plain torch ops."""
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)()
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or compiling)


def _autocast(x: torch.Tensor) -> bool:
    """Under autocast the convolution casts its bias itself (to the autocast dtype) before adding it."""
    try:
        return torch.is_autocast_enabled(x.device.type)
    except TypeError:  # torch < 2.4: no device argument, the answer is CUDA's
        return torch.is_autocast_enabled() if x.is_cuda else False


def triton_available() -> bool:
    """Whether Triton can be imported here (it is optional: only GPU machines need it)."""
    return builds(_kernel)


@functools.cache
def _kernel() -> Any:
    """Import Triton and compile-wrap the kernel on first use (ImportError when Triton is not installed)."""
    global triton, tl, libdevice
    import triton as triton_module
    import triton.language as tl_module
    from triton.language.extra import libdevice as libdevice_module

    triton, tl, libdevice = triton_module, tl_module, libdevice_module
    # The channel divisors are not specialized on, so ~60 convolutions of different sizes share one
    # compile per dtype (and none happens first inside a CUDA-graph capture); the element count stays
    # specialized, so that a count divisible by 16 keeps the loads and stores vectorized.
    return triton.jit(_bias_silu_kernel, do_not_specialize=("inner", "channels"))


def _bias_silu_kernel(y_ptr, bias_ptr, numel, inner, channels, BLOCK: tl.constexpr, ACCURATE_EXP: tl.constexpr):  # noqa: N803
    """One program: BLOCK consecutive elements of y, each with its channel's bias."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < numel
    channel = (offsets // inner) % channels
    dtype = y_ptr.dtype.element_ty
    value = tl.load(y_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    bias = tl.load(bias_ptr + channel, mask=mask, other=0.0).to(tl.float32)
    # torch's add_: float32 sum rounded to the tensor's dtype (a no-op for float32); SiLU then reads that
    summed = (value + bias).to(dtype).to(tl.float32)
    if ACCURATE_EXP:  # compiled: libdevice's expf, as nvcc's ::exp in torch's kernel
        exp = libdevice.exp(-summed)
    else:  # the interpreter has no libdevice; its exp is numpy's
        exp = tl.exp(-summed)
    out = tl.math.div_rn(summed, 1.0 + exp)
    tl.store(y_ptr + offsets, out.to(dtype), mask=mask)
