"""A Triton that fails to import with something other than ImportError (a build that does not match torch)
means the torch path for every kernel, never an exception in predict (gpu/triton_support.py).

Run under `TRITON_INTERPRET=1` on the CPU, where every kernel module would otherwise go on to Triton."""

from __future__ import annotations

import builtins

import pytest
import torch
from torch import nn

from ultralytics.gpu import bias_act_triton, jpeg_chroma_triton, letterbox_triton, nms_triton
from ultralytics.gpu.triton_support import builds

MODULES = [
    (nms_triton, "_kernels"),
    (bias_act_triton, "_kernel"),
    (jpeg_chroma_triton, "_kernels"),
    (letterbox_triton, "_kernel"),
]


@pytest.fixture
def broken_triton(monkeypatch):
    """`import triton` raises RuntimeError, as a mismatched install does while loading its driver."""
    real_import = builtins.__import__

    def importer(name, *args, **kwargs):
        if name == "triton" or name.startswith("triton."):
            raise RuntimeError("0 active drivers ([]). There should only be one.")
        return real_import(name, *args, **kwargs)

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    for module, cached in MODULES:
        getattr(module, cached).cache_clear()
    monkeypatch.setattr(builtins, "__import__", importer)
    bias_act_triton.reload_switch()
    yield
    monkeypatch.undo()
    for module, cached in MODULES:
        getattr(module, cached).cache_clear()
    bias_act_triton.reload_switch()


def test_builds_says_no_for_any_failure():
    assert builds(lambda: None)
    assert not builds(lambda: 1 / 0)


@pytest.mark.parametrize(("module", "cached"), MODULES)
def test_every_kernel_module_answers_no(broken_triton, module, cached):
    assert module.triton_available() is False


def test_nms_and_conv_take_the_torch_path(broken_triton):
    preds = torch.rand(1, 6, 50)
    assert nms_triton.try_nms_triton(preds, 0.25, 0.7, None, False, 300, 64) is None
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=True).eval()
    with torch.no_grad(), bias_act_triton.interpret_on_cpu():
        assert bias_act_triton.conv_bias_silu(conv, torch.rand(1, 3, 8, 8)) is None
