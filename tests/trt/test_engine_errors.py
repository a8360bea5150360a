"""Engine files and builds that go wrong, and the engine details the backend must get right,
on a tiny detector-shaped graph (fast) through the stand-in."""

from __future__ import annotations

import json
import struct

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import helper

from tests.conftest import IMAGES
from tests.trt.tiny import tiny_onnx
from ultralytics.export.engine_file import write_engine_file
from ultralytics.trt.build import BuildOptions, build_plan
from ultralytics.trt.device import HOST_MEMORY_ENV

PROFILE = ((1, 3, 32, 32), (1, 3, 64, 64), (2, 3, 128, 128))
META = {
    "stride": 32,
    "task": "detect",
    "batch": 1,
    "imgsz": [64, 64],
    "names": {"0": "a", "1": "b", "2": "c", "3": "d"},
}


def plan_of(trt, tmp_path, dynamic=False):
    onnx_file = tiny_onnx(tmp_path / f"tiny_{dynamic}.onnx", dynamic=dynamic)
    return build_plan(trt, onnx_file, BuildOptions(profile=PROFILE if dynamic else None)).plan, onnx_file


def backend(path, **kw):
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(path, device=torch.device("cpu"), **kw)


def onnx_output(onnx_file, x: torch.Tensor) -> np.ndarray:
    return ort.InferenceSession(str(onnx_file)).run(None, {"images": x.numpy()})[0]


def test_plain_plan_loads_with_warning(trt, tmp_path, log_lines):
    plan, onnx_file = plan_of(trt, tmp_path)
    path = write_engine_file(tmp_path / "plain.engine", plan)  # no metadata: a bare plan
    assert path.read_bytes() == plan
    b = backend(path)
    assert b.names == {0: "class0", 1: "class1", 2: "class2", 3: "class3"}  # 8 outputs = 4 box + 4 classes
    assert b.imgsz == (64, 64) and b.batch == 1 and b.stride == 32
    assert any("no Ultralytics metadata" in m for m in log_lines)
    x = torch.rand(1, 3, 64, 64)
    np.testing.assert_allclose(b.forward(x).numpy(), onnx_output(onnx_file, x), rtol=1e-4, atol=1e-4)


def test_plan_layout_sidecar_and_hand_written_header(trt, tmp_path):
    plan, _ = plan_of(trt, tmp_path)
    b = backend(write_engine_file(tmp_path / "side.engine", plan, META, layout="plan"))
    assert b.names[3] == "d"
    text = json.dumps(dict(META, names={"0": "w", "1": "x", "2": "y", "3": "z"})).encode()
    hand = tmp_path / "hand.engine"
    hand.write_bytes(struct.pack("<i", len(text)) + text + plan)
    assert backend(hand).names == {0: "w", 1: "x", 2: "y", 3: "z"}


def test_truncated_and_foreign_files_are_clear_errors(trt, tmp_path):
    plan, _ = plan_of(trt, tmp_path)
    cut = write_engine_file(tmp_path / "cut.engine", plan[: len(plan) // 2], META)
    with pytest.raises(RuntimeError, match="could not load the TensorRT engine .*truncated"):
        backend(cut)
    measured = write_engine_file(tmp_path / "measured.engine", plan, dict(META, plan_size=len(plan)))
    measured.write_bytes(measured.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        backend(measured)
    jpeg = tmp_path / "photo.engine"
    jpeg.write_bytes((IMAGES / "chelsea.png").read_bytes() if (IMAGES / "chelsea.png").exists() else b"\x89PNG" * 100)
    with pytest.raises(RuntimeError, match="not a TensorRT engine"):
        backend(jpeg)


def test_engine_from_another_version_names_both(install_tensorrt_standin, tmp_path):
    old = install_tensorrt_standin("8.6.1")
    plan, _ = plan_of(old, tmp_path)
    with_meta = write_engine_file(tmp_path / "old.engine", plan, dict(META, tensorrt="8.6.1"))
    bare = write_engine_file(tmp_path / "bare.engine", plan)
    install_tensorrt_standin("11.4.0.106")
    with pytest.raises(RuntimeError, match=r"built with TensorRT 8\.6\.1, but TensorRT 11\.4\.0\.106 is installed"):
        backend(with_meta)
    with pytest.raises(RuntimeError, match=r"TensorRT 11\.4\.0\.106 cannot read it(.|\n)*8\.6\.1"):
        backend(bare)  # the versions come from TensorRT's own log line


def test_dynamic_profile_limits_and_output_reallocation(trt, tmp_path):
    plan, onnx_file = plan_of(trt, tmp_path, dynamic=True)
    b = backend(write_engine_file(tmp_path / "dyn.engine", plan, META))
    assert b.dynamic and b.batch == 2 and b.imgsz is None
    for shape in ((2, 3, 64, 96), (1, 3, 32, 32), (2, 3, 128, 128)):
        x = torch.rand(shape)
        np.testing.assert_allclose(b.forward(x).numpy(), onnx_output(onnx_file, x), rtol=1e-4, atol=1e-4)
    x = torch.rand(5, 3, 64, 64)  # more than the profile's max batch 2: run in chunks
    np.testing.assert_allclose(b.forward(x).numpy(), onnx_output(onnx_file, x), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"min \[1, 3, 32, 32\], max \[2, 3, 128, 128\]"):
        b.forward(torch.rand(1, 3, 160, 64))


def test_static_engine_shape_and_autobackend_batch_split_pad(trt, tmp_path):
    from ultralytics.nn.autobackend import AutoBackend

    onnx_file = tiny_onnx(tmp_path / "b2.onnx")
    model = onnx_file  # batch 1 graph: AutoBackend must split a batch of 3 into 3 calls
    plan = build_plan(trt, model, BuildOptions()).plan
    path = write_engine_file(tmp_path / "static.engine", plan, META)
    auto = AutoBackend(path, device=torch.device("cpu"))
    assert auto.static_batch == 1 and auto.imgsz == (64, 64)
    x = torch.rand(3, 3, 64, 64)
    expected = np.concatenate([onnx_output(onnx_file, x[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(auto(x).numpy(), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"built for input shape \[1, 3, 64, 64\]"):
        auto.backend.forward(torch.rand(1, 3, 32, 32))


def test_binding_api_matches_tensor_name_api(install_tensorrt_standin, tmp_path):
    """8.6 still has the binding API: the fallback path must compute the same outputs."""
    trt = install_tensorrt_standin("8.6.1")
    plan, onnx_file = plan_of(trt, tmp_path, dynamic=True)
    path = write_engine_file(tmp_path / "dyn.engine", plan, META)
    x = torch.rand(2, 3, 64, 32)
    by_names = backend(path).forward(x).clone()
    by_bindings = backend(path, io_api="bindings")
    assert type(by_bindings.io).__name__ == "BindingIO"
    torch.testing.assert_close(by_bindings.forward(x), by_names)
    from ultralytics.trt.bindings import BindingIO

    trt10 = install_tensorrt_standin("10.16.1.11")
    with pytest.raises(RuntimeError, match="no binding API"):
        BindingIO(trt10, engine=None, context=None)  # refused before touching the engine


def test_cpu_without_test_hook_is_refused(trt, tmp_path, monkeypatch):
    plan, _ = plan_of(trt, tmp_path)
    path = write_engine_file(tmp_path / "m.engine", plan, META)
    monkeypatch.delenv(HOST_MEMORY_ENV)
    with pytest.raises((ValueError, RuntimeError), match="CUDA"):
        backend(path)


def test_all_parser_errors_are_listed(trt, tmp_path):
    bad = [helper.make_node("NoSuchOp", ["output0"], [f"x{i}"], domain="example.custom") for i in range(2)]
    onnx_file = tiny_onnx(tmp_path / "bad.onnx", extra_nodes=bad)
    with pytest.raises(RuntimeError, match=r"could not read(.|\n)*1\. (.|\n)*2\. "):
        build_plan(trt, onnx_file, BuildOptions())


def test_rejected_profile_is_a_clear_error(trt, tmp_path):
    """add_optimization_profile returns -1 for a profile TensorRT rejects; that is checked at once (issue 16)."""
    onnx_file = tiny_onnx(tmp_path / "dyn.onnx", dynamic=True)
    inverted = ((2, 3, 128, 128), (1, 3, 64, 64), (1, 3, 32, 32))  # min > max: TensorRT refuses it
    with pytest.raises(ValueError, match=r"TensorRT rejected the optimization profile min \[2, 3, 128, 128\]"):
        build_plan(trt, onnx_file, BuildOptions(profile=inverted))


def test_failed_build_carries_log_tail(trt, tmp_path):
    def no_outputs(trt, network):  # a network without outputs: the builder returns None and says why
        network.add_input("images", trt.DataType.FLOAT, trt.Dims([1, 3, 8, 8]))

    with pytest.raises(RuntimeError, match=r"returned None(.|\n)*TensorRT log(.|\n)*at least one output"):
        build_plan(trt, None, BuildOptions(populate=no_outputs))


def test_timing_cache_written_and_reused(trt, tmp_path, log_lines):
    onnx_file = tiny_onnx(tmp_path / "t.onnx")
    cache = tmp_path / "shared.timing.cache"
    build_plan(trt, onnx_file, BuildOptions(timing_cache=cache))
    assert cache.is_file() and cache.stat().st_size > 0
    build_plan(trt, onnx_file, BuildOptions(timing_cache=cache))
    assert any("reusing timing cache" in m for m in log_lines)


def test_fp32_io_engine_reports_fp32_bindings(trt, detection_model, tmp_path):
    """fp32_io=True: FP16 inside, FP32 at the edges, labelled fp16 in the metadata."""
    from ultralytics.cfg import get_cfg
    from ultralytics.export.engine_file import read_engine_file
    from ultralytics.export.tensorrt import export_engine

    onnx_file = tiny_onnx(tmp_path / "io32.onnx", fp16_inside=True)
    cfg = get_cfg({"format": "engine", "imgsz": 64, "half": True, "fp32_io": True, "verbose": False})
    engine = export_engine(detection_model, tmp_path / "io32.engine", cfg, onnx_file=onnx_file)
    meta = read_engine_file(engine).metadata
    assert meta["precision"] == "fp16" and meta["input_dtypes"] == {"images": "float32"}
    b = backend(engine)
    assert not b.fp16 and b.input.dtype == torch.float32 and b.output.dtype == torch.float32
    x = torch.rand(1, 3, 64, 64)
    np.testing.assert_allclose(b.forward(x).numpy(), onnx_output(onnx_file, x), rtol=1e-2, atol=1e-2)
