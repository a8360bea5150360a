"""Issue 15's format table and issue 14 item 11: one table drives alias matching, the per-format
argument check, AutoBackend's suffixes and benchmark's formats; no format says what exists."""

from __future__ import annotations

import pytest

from ultralytics.engine import benchmarks
from ultralytics.engine.model import YOLO
from ultralytics.nn.autobackend import BACKENDS


def find_format(name: str):
    from ultralytics.utils.formats import find_format

    return find_format(name)


@pytest.mark.parametrize(
    "spelling, name", [("onnx", "onnx"), ("ONNX", "onnx"), (".onnx", "onnx"), ("trt", "engine"), ("TensorRT", "engine")]
)
def test_aliases_resolve_through_the_table(spelling, name):
    assert find_format(spelling).name == name


@pytest.mark.parametrize(
    "arg, value",
    [("fp32_io", True), ("engine_layout", "plan"), ("timing_cache", "x.cache"), ("min_shape", [1, 3, 64, 64])],
)
def test_engine_only_arguments_are_refused_for_onnx_naming_the_format_that_uses_them(weights, arg, value):
    with pytest.raises(ValueError, match=f"'{arg}=.*' is not used by format=onnx .*format=engine"):
        YOLO(weights).export(format="onnx", imgsz=64, **{arg: value})
    assert sorted(p.name for p in weights.parent.iterdir()) == ["shapes.pt"]  # refused before any work


def test_upstream_only_export_arguments_say_why():
    from ultralytics.utils.formats import check_export_args

    with pytest.raises(ValueError, match="TensorFlow SavedModel"):
        check_export_args(find_format("engine"), {"keras": True})
    with pytest.raises(ValueError, match="'fp32_io=True' is not used by format=torchscript"):
        check_export_args(find_format("torchscript"), {"fp32_io": True})
    check_export_args(find_format("engine"), {"workspace": 4, "fp32_io": True, "dynamic": True})  # all engine's
    check_export_args(find_format("onnx"), {"nms": False, "fp32_io": False})  # switched off: nothing asked for


def test_no_format_exports_upstreams_default_torchscript(weights):
    assert YOLO(weights).export(imgsz=64).endswith(".torchscript")  # upstream's default format
    with pytest.raises(ValueError, match="Did you mean 'onnx'"):
        find_format("onx")


def test_autobackend_and_benchmark_read_the_table():
    from ultralytics.utils.formats import FORMATS

    assert BACKENDS == {s: f.backend for f in FORMATS for s in (f.suffix, *f.load_suffixes)}
    assert benchmarks.FORMATS == tuple(f.name for f in FORMATS)
    assert {benchmarks.FORMAT_NAMES[f.name] for f in FORMATS} == {f.title for f in FORMATS}


def test_benchmark_rows_show_a_progress_bar(weights, tiny_data, tmp_path, capfd):
    rows = benchmarks.run_benchmark(
        str(weights), data=str(tiny_data), imgsz=64, device="cpu", project=str(tmp_path / "runs"), formats=["pt"]
    )
    assert [r["status"] for r in rows] == ["ok", "skipped", "skipped"]  # FP16 needs CUDA; PyTorch has no INT8
    assert "benchmark:" in capfd.readouterr().err  # tqdm's bar, on stderr
