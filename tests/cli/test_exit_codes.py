"""Issue 14 items 1 and 9: every successful `yolo` command exits 0 without printing its return value;
every failure is one line on stderr with a non-zero status, and a traceback only with verbose=True."""

from __future__ import annotations

import os
import sys

import pytest

from tests.cli.conftest import IMAGE
from tests.conftest import MODELS
from ultralytics.engine.model import YOLO


def _one_line_error(run) -> None:
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert run.code != 0
    assert len(lines) == 1 and lines[0].startswith("Error: "), run.err
    assert "Traceback" not in run.err + run.out


def test_successful_commands_exit_zero_and_print_no_list(cli, weights, tiny_data):
    commands = [
        ("predict", f"model={weights}", f"source={IMAGE}", "imgsz=64"),
        ("export", f"model={weights}", "format=onnx", "imgsz=64"),
        ("val", f"model={weights}", f"data={tiny_data}", "imgsz=64", "batch=2"),
        ("compare", f"model={weights}", f"other={weights}", f"source={IMAGE}", "imgsz=64"),
        ("benchmark", f"model={weights}", f"data={tiny_data}", "imgsz=64", "format=pt", "quantize=32"),
        ("version",),
    ]
    for argv in commands:
        run = cli(*argv)
        assert run.code == 0, (argv, run.err)
        assert "Results(" not in run.err + run.out and "Error" not in run.err, argv


def test_version_prints_once(cli):
    from ultralytics import __version__

    for argv in (["version"], ["--version"]):
        run = cli(*argv)
        assert run.code == 0 and run.out == f"{__version__}\n" and run.err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "max_det=-1"],
        ["predict", "confidence=0.3"],
        ["export", "format=onnx", "fp32_io=True"],
        ["predict", "source=/no/such/folder/img.jpg"],
        ["val", "data=/no/such/data.yaml"],
        ["compare"],
    ],
)
def test_failures_are_one_line_with_non_zero_status(cli, weights, argv):
    _one_line_error(cli(*argv, f"model={weights}"))


def test_engine_export_without_tensorrt_is_one_line(cli, weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # not importable, whatever is installed
    run = cli("export", f"model={weights}", "format=engine", "imgsz=64")
    _one_line_error(run)
    assert "TensorRT is not installed" in run.err


def test_export_into_a_read_only_folder_is_one_line_before_any_work(cli, weights, monkeypatch):
    """Root ignores permission bits, so the read-only folder is simulated where the package asks."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: str(p) != str(weights.parent) and real_access(p, mode))
    started = []
    monkeypatch.setattr("ultralytics.export.onnx._torch_export", lambda *a, **k: started.append(a))
    run = cli("export", f"model={weights}", "format=onnx", "imgsz=64")
    _one_line_error(run)
    assert "not writable" in run.err and not started
    assert sorted(p.name for p in weights.parent.iterdir()) == ["shapes.pt"]


def test_project_in_a_read_only_folder_is_one_line(cli, weights, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: str(p) != str(locked) and real_access(p, mode))
    run = cli("predict", f"model={weights}", f"source={IMAGE}", "imgsz=64", f"project={locked}")
    _one_line_error(run)
    assert "not writable" in run.err and list(locked.iterdir()) == []


def test_unexpected_errors_are_one_line_and_verbose_shows_the_traceback(cli, weights, monkeypatch):
    def broken(self, *args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(YOLO, "predict", broken)
    run = cli("predict", f"model={weights}", f"source={IMAGE}")
    _one_line_error(run)
    assert run.code == 1 and "ZeroDivisionError" in run.err
    verbose = cli("predict", f"model={weights}", f"source={IMAGE}", "verbose=True")
    assert verbose.code == 1 and "Traceback (most recent call last)" in verbose.err


def test_corrupt_onnx_is_refused_at_load(cli, tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes((MODELS / "shapes_yolov8n_upstream.onnx").read_bytes()[:5000])  # a truncated copy
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        YOLO(bad)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        YOLO(empty)
    _one_line_error(cli("predict", f"model={bad}", f"source={IMAGE}"))


def test_export_without_a_model_writes_into_the_current_folder_not_the_package(cli, tmp_path):
    from ultralytics.utils import ASSETS

    before = sorted(p.name for p in ASSETS.iterdir())
    run = cli("export", "format=onnx", "imgsz=64", "simplify=False")
    assert run.code == 0, run.err
    assert (tmp_path / "shapes_yolov8n.onnx").is_file()
    assert sorted(p.name for p in ASSETS.iterdir()) == before


def test_multi_line_errors_become_one_line():
    from ultralytics.cfg import one_line

    assert one_line(ValueError("could not load x.onnx\nExport it again.")) == "could not load x.onnx Export it again."
    long = one_line(RuntimeError("build failed\n" + "\n".join(f"log line {i}" for i in range(50))))
    assert long == "build failed (run with verbose=True for the full message)"


def test_predict_checks_its_run_folder_before_any_image_runs(weights, tmp_path, monkeypatch):
    """save=True into an unwritable project= fails before the first batch, not after it."""
    from ultralytics.engine import predictor

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: str(p) != str(locked) and real_access(p, mode))
    ran = []
    real_run = predictor.CpuStages.run
    monkeypatch.setattr(predictor.CpuStages, "run", lambda self, *a: ran.append(1) or real_run(self, *a))
    with pytest.raises(PermissionError, match="not writable"):
        YOLO(weights).predict(IMAGE, imgsz=64, save=True, project=str(locked), verbose=False)
    assert ran == [] and list(locked.iterdir()) == []
