"""`yolo checks tensorrt` (ultralytics/engine/tensorrt_check.py): without TensorRT, and on the stand-in."""

from __future__ import annotations

import sys

from ultralytics.engine import tensorrt_check


def test_without_tensorrt_it_says_what_it_would_do(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` fails, as when it is not installed
    monkeypatch.setattr("ultralytics.trt.loader.tensorrt_installed", lambda: False)
    assert tensorrt_check.main([]) == 0
    out = capsys.readouterr().out
    assert "TensorRT is not installed, so nothing was run" in out
    for route in tensorrt_check.ROUTES:
        assert route.name in out
    assert "CUDA graphs" in out and "cuda:1" in out


def test_on_the_standin_every_route_runs_and_the_report_is_printed(install_tensorrt_standin, capsys):
    trt = install_tensorrt_standin("11.4.0.106")
    assert tensorrt_check.main(["--imgsz", "64"]) == 0
    out = capsys.readouterr().out
    assert f"TensorRT {trt.__version__}" in out
    for route in tensorrt_check.ROUTES:
        assert f"| {route.name} | PASS |" in out, out
    assert f"{len(tensorrt_check.ROUTES)}/{len(tensorrt_check.ROUTES)} passed" in out
