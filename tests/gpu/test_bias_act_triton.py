"""The fused bias + SiLU kernel (gpu/bias_act_triton.py) and its use in Conv.forward.

Without a GPU the kernel runs under Triton's interpreter (TRITON_INTERPRET=1, numpy). What that can
prove: the indexing (which channel's bias each element gets, NCHW and channels-last, odd sizes, the
masked tail), that the result is written in place, the order of roundings (the bias sum rounded to the
dtype before SiLU reads it), and where Conv takes the fused path and where it must not (export, tracing,
autograd, the switch off). What it cannot prove: the GPU's bits. The interpreter has no libdevice, so its
exp is numpy's float32 exp, and torch's CPU SiLU uses yet another exp (SLEEF): they differ in the last
bit for a good share of float32 inputs. So the CPU tests compare against a numpy reference of the same
formula exactly, and against eager CPU torch within one or two units in the last place. The CUDA tests
(skipped here) assert `torch.equal` with eager PyTorch for the kernel and whole YOLOv8n forwards.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("triton")

from tests.conftest import FIXTURES  # noqa: E402
from tests.gpu.conftest import requires_cuda  # noqa: E402
from ultralytics.gpu import bias_act_triton  # noqa: E402
from ultralytics.gpu.bias_act_triton import bias_silu_, conv_bias_silu  # noqa: E402
from ultralytics.nn.checkpoint import load_checkpoint  # noqa: E402
from ultralytics.nn.modules.conv import Conv  # noqa: E402
from ultralytics.utils.settings import TRITON_ENV  # noqa: E402

MODEL = FIXTURES / "models" / "yolov8n_random_upstream.pt"
DTYPES = (torch.float32, torch.float16)


def reference(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The kernel's arithmetic in numpy: sum rounded to the dtype, then x / (1 + exp(-x)) in float32, rounded."""
    summed = (y.float() + bias.float().reshape(1, -1, 1, 1)).to(y.dtype).float().numpy()
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88: x / inf = -0, as on CUDA
        out = summed / (np.float32(1) + np.exp(-summed))
    return torch.from_numpy(out.astype(np.float32)).to(y.dtype)


def eager(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.silu(y + bias.reshape(1, -1, 1, 1))


@pytest.fixture(autouse=True)
def fresh_health(monkeypatch) -> None:
    """Each test starts with a working kernel: one test's failure must not turn the kernel off for the next."""
    monkeypatch.setattr(bias_act_triton, "HEALTH", bias_act_triton.KernelHealth())


@pytest.fixture
def device(monkeypatch) -> Iterator[torch.device]:
    """CUDA when present (compiled kernel); otherwise the CPU under Triton's interpreter."""
    if torch.cuda.is_available():
        bias_act_triton.reload_switch()
        yield torch.device("cuda")
        bias_act_triton.reload_switch()
        return
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with bias_act_triton.interpret_on_cpu():
        yield torch.device("cpu")


@pytest.fixture
def calls(monkeypatch) -> list[tuple]:
    """Counts the kernel's launches (shape of each y) while still running it."""
    seen: list[tuple] = []
    real = bias_act_triton.bias_silu_

    def spy(y, bias):
        seen.append(tuple(y.shape))
        return real(y, bias)

    monkeypatch.setattr(bias_act_triton, "bias_silu_", spy)
    return seen


def switch(monkeypatch, on: bool) -> None:
    monkeypatch.setenv(TRITON_ENV, "1" if on else "0")
    bias_act_triton.reload_switch()


def real_activations(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A real photograph through the fixture model's first convolution, without its bias, and that bias."""
    import cv2

    from tests.conftest import IMAGES

    image = cv2.imread(str(sorted(IMAGES.glob("*.png"))[0]))
    image = cv2.resize(image, (96, 64))
    x = torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1)[None].float().div(255)
    conv = load_checkpoint(MODEL)[0].model[0].conv
    y = F.conv2d(x, conv.weight, None, conv.stride, conv.padding)
    return y.to(device, dtype), conv.bias.detach().to(device, dtype)


# ---------------------------------------------------------------------------------------------- kernel
def check_kernel(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Runs the kernel on y (in place) and checks it against eager (CUDA: bits) or the numpy reference (CPU)."""
    before = y.clone()
    expected = eager(before, bias)
    out = bias_silu_(y, bias)
    assert out.data_ptr() == y.data_ptr(), "bias_silu_ must write in place"
    if y.is_cuda:
        assert torch.equal(out, expected), f"{int((out != expected).sum())} of {out.numel()} elements differ from eager"
    else:
        assert torch.equal(out, reference(before, bias))
        close_to_eager(out, expected)
    return out


def close_to_eager(out: torch.Tensor, expected: torch.Tensor) -> None:
    """Within a few float32 units in the last place of eager CPU torch (whose exp is SLEEF's, not CUDA's)."""
    rtol, atol = {torch.float32: (5e-7, 1e-30), torch.float16: (1e-3, 6e-8)}[out.dtype]
    torch.testing.assert_close(out, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 37, 13, 29), (3, 16, 1, 1), (1, 64, 24, 40)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_kernel_random(device, dtype, shape, channels_last):
    """Odd channel counts and sizes, a 1x1 map, a tail shorter than one block; both memory layouts."""
    torch.manual_seed(sum(shape))
    y = (torch.randn(shape) * 6).to(device, dtype)  # wide enough to reach both tails of SiLU
    bias = (torch.randn(shape[1]) * 3).to(device, dtype)
    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    out = check_kernel(y, bias)
    assert out.stride() == y.stride()


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_real_activations(device, dtype):
    """A real photograph through the fixture model's first convolution (bias-free) and that layer's bias."""
    y, bias = real_activations(device, dtype)
    check_kernel(y, bias)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_edge_values(device, dtype):
    """Zeros of both signs, tiny values, saturated tails (exp overflows to inf: -0 out), the largest finite."""
    finfo = torch.finfo(dtype)
    values = [0.0, -0.0, finfo.tiny, -finfo.tiny, 1e-3, -1e-3, 20.0, -20.0, 90.0, -90.0, 1e4, -1e4]
    values += [finfo.max, -finfo.max]
    y = torch.tensor(values, dtype=dtype).reshape(1, 2, 1, -1).to(device)
    bias = torch.zeros(2, dtype=dtype, device=device)
    expected_sign = torch.signbit(eager(y, bias))
    out = check_kernel(y, bias)
    assert torch.equal(torch.signbit(out), expected_sign)


def test_bad_input_is_a_clear_error(device):
    y = torch.zeros(1, 4, 3, 3, device=device)
    with pytest.raises(ValueError, match="bias must be a \\(4,\\) tensor"):
        bias_silu_(y, torch.zeros(3, device=device))
    with pytest.raises(ValueError, match="NCHW float32/float16"):
        bias_silu_(torch.zeros(4, 3, 3, device=device), torch.zeros(4, device=device))
    with pytest.raises(ValueError, match="contiguous or channels-last"):
        bias_silu_(torch.zeros(1, 3, 4, 4, device=device).transpose(2, 3), torch.zeros(3, device=device))


def test_cpu_tensors_need_the_interpreter(monkeypatch):
    """In production CPU tensors never reach the kernel (bias_silu_ says what to do, Conv runs eager)."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="CUDA device"):
        bias_silu_(torch.zeros(1, 3, 2, 2), torch.zeros(3))
    conv = fused_conv(3, 8)
    assert conv_bias_silu(conv.conv, torch.zeros(1, 3, 8, 8)) is None


# ------------------------------------------------------------------------------------------ Conv.forward
def fused_conv(c1: int, c2: int, k: int = 3, s: int = 1) -> Conv:
    torch.manual_seed(c1 * 100 + c2)
    conv = Conv(c1, c2, k, s)
    conv.bn.running_mean.normal_(0, 0.5)
    conv.bn.running_var.uniform_(0.5, 2)
    conv.bn.weight.data.normal_(1, 0.2)
    conv.bn.bias.data.normal_(0, 0.5)
    conv.eval().fuse()
    return conv


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_takes_the_fused_path_and_the_switch_restores_eager(device, monkeypatch, calls, dtype):
    conv = fused_conv(5, 24, k=3, s=2).to(device, dtype)
    x = torch.randn(2, 5, 17, 23).to(device, dtype)
    plain = F.silu(conv.conv(x))  # eager: the conv with its bias, then SiLU
    with torch.no_grad():
        switch(monkeypatch, on=True)
        fused = conv(x)
        assert calls == [(2, 24, 9, 12)]
        switch(monkeypatch, on=False)
        off = conv(x)
        assert len(calls) == 1, "ULTRALYTICS_GPU_TRITON=0 must keep the eager path"
    assert torch.equal(off, plain)
    if device.type == "cuda":
        assert torch.equal(fused, plain)
    else:
        bias_free = F.conv2d(x, conv.conv.weight, None, 2, 1)
        assert torch.equal(fused, reference(bias_free, conv.conv.bias))
        # CPU half convolutions add the bias inside their accumulation, so eager CPU is only close
        close_to_eager(fused, eager(bias_free, conv.conv.bias))


def test_conv_path_not_taken_for_training_autocast_unfused_or_other_acts(device, calls):
    x = torch.randn(1, 4, 8, 8, device=device, requires_grad=True)
    unfused = Conv(4, 8).to(device).eval()
    unfused(x)
    relu = fused_conv(4, 8).to(device)
    relu.act = nn.ReLU()
    relu(x.detach())
    trainable = fused_conv(4, 8).to(device)
    trainable.conv.requires_grad_(True)
    out = trainable(x)  # autograd records: eager, and the gradient flows
    out.sum().backward()
    assert x.grad is not None and trainable.conv.bias.grad is not None
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16 if device.type == "cpu" else torch.float16):
        fused_conv(4, 8).to(device)(x.detach())  # autocast casts the bias itself: eager
    assert calls == []


def test_conv_path_not_taken_under_forward_hooks(device, calls):
    """Hooks on the inner nn.Conv2d (feature extraction) see its output only when the module itself runs."""
    conv = fused_conv(4, 8).to(device)
    x = torch.randn(1, 4, 8, 8, device=device)
    seen = []
    handle = conv.conv.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    try:
        with torch.no_grad():
            conv(x)
    finally:
        handle.remove()
    assert seen == [(1, 8, 8, 8)] and calls == []
    with torch.no_grad():
        conv(x)  # without the hook: the kernel again
    assert len(calls) == 1


def tiny_model(device: torch.device) -> nn.Module:
    return nn.Sequential(fused_conv(3, 8, 3, 2), fused_conv(8, 16, 3, 2), fused_conv(16, 4, 1)).to(device).eval()


def onnx_bytes(model: nn.Module, x: torch.Tensor) -> bytes:
    import onnx

    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, opset_version=17, dynamo=False)
    graph = onnx.load_from_string(buffer.getvalue()).graph
    return b"".join(n.SerializeToString() for n in graph.node)


def traced_ops(model: nn.Module, x: torch.Tensor) -> list[str]:
    """The ops of a TorchScript trace (check_trace off: its eager re-run is not tracing, and may use the kernel)."""
    return [node.kind() for node in torch.jit.trace(model, x, check_trace=False).inlined_graph.nodes()]


def test_onnx_export_and_tracing_unchanged(device, monkeypatch, calls):
    """The exported graph is the same with the switch on (and the kernel usable) as with it off."""
    model = tiny_model(device)
    x = torch.randn(1, 3, 32, 32, device=device)
    with torch.no_grad():
        switch(monkeypatch, on=True)
        on = onnx_bytes(model, x)
        traced_on = traced_ops(model, x)
        switch(monkeypatch, on=False)
        off = onnx_bytes(model, x)
        traced_off = traced_ops(model, x)
    assert calls == []
    assert on == off and traced_on == traced_off
    assert "Sigmoid" in str(on) or b"Sigmoid" in on  # the SiLU stays the usual op pair in the graph


def test_kernel_failure_warns_once_and_falls_back(device, monkeypatch, calls):
    model = tiny_model(device)
    x = torch.randn(1, 3, 16, 16, device=device)
    with torch.no_grad():
        switch(monkeypatch, on=False)
        expected = model(x)
        switch(monkeypatch, on=True)

        def broken(*args, **kwargs):
            raise RuntimeError("no C compiler")

        warnings: list[str] = []
        monkeypatch.setattr(bias_act_triton, "bias_silu_", broken)
        monkeypatch.setattr(bias_act_triton.LOGGER, "warning", warnings.append)
        out = model(x)
        out_again = model(x)
    assert len(warnings) == 1 and "no C compiler" in warnings[0]
    assert torch.equal(out, expected) and torch.equal(out_again, expected)


def test_fixture_model_switch_on_equals_reference(device, monkeypatch, calls):
    """yolov8n (fused, 80 classes): every Conv with SiLU takes the kernel; the output equals the same
    network with each kernel launch replaced by its reference arithmetic (CUDA: by eager PyTorch)."""
    model = load_checkpoint(MODEL)[0].to(device).eval()
    silu_convs = sum(1 for m in model.modules() if isinstance(m, Conv) and isinstance(m.act, nn.SiLU))
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        switch(monkeypatch, on=True)
        fused = model(x)
        assert len(calls) == silu_convs == 57
        switch(monkeypatch, on=False)
        plain = model(x)
        if device.type == "cpu":
            switch(monkeypatch, on=True)
            monkeypatch.setattr(bias_act_triton, "bias_silu_", lambda y, b: y.copy_(reference(y, b)))
            expected = model(x)
    assert len(calls) == silu_convs
    if device.type == "cuda":
        assert torch.equal(fused, plain)
    else:
        assert torch.equal(fused, expected)
        torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-3)  # exp's last bit (see module docstring)


# --------------------------------------------------------------------------------------------- CUDA only
@requires_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 8])
def test_yolov8n_bits_equal_eager_and_in_a_cuda_graph(monkeypatch, calls, dtype, batch):
    """yolov8n at 384x640: switch on == switch off bit for bit, eagerly and replayed from CUDA graphs."""
    from ultralytics.gpu.graphs import CudaGraphRunner

    device = torch.device("cuda")
    model = load_checkpoint(MODEL)[0].to(device, dtype).eval()
    x = torch.rand(batch, 3, 384, 640, generator=torch.Generator().manual_seed(batch)).to(device, dtype)
    outputs = {}
    for on in (False, True):
        switch(monkeypatch, on=on)
        with torch.no_grad():
            eager_out = model(x)
        runner = CudaGraphRunner(model, device)
        graph_out = runner(x)
        graph_again = runner(x)
        assert runner.disabled_reason is None and len(runner) == 1, "the forward must be captured"
        outputs[on] = (eager_out, graph_out, graph_again)
    assert len(calls) == 57 * (1 + 3 + 1), "eager, 3 warm-ups and the capture, switch on only"
    plain = outputs[False][0]
    for out in outputs[False][1:] + outputs[True]:
        assert torch.equal(out, plain)
