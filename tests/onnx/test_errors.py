"""Bad export requests fail early and clearly, and never destroy what the user had."""

from __future__ import annotations

import sys

import onnx
import pytest

from ultralytics.export import onnx as onnx_export
from ultralytics.export.onnx import export_onnx


@pytest.fixture(scope="module")
def model(pt_yolo):
    return pt_yolo.model


def test_half_with_int8_is_refused(model, tmp_path):
    with pytest.raises(ValueError, match="half=True and int8=True"):
        export_onnx(model, tmp_path / "m.onnx", imgsz=(320, 320), half=True, int8=True)


def test_half_with_int8_is_refused_through_yolo(pt_yolo):
    with pytest.raises(ValueError, match="int8"):
        pt_yolo.export(format="onnx", half=True, int8=True, imgsz=320)


def test_network_builder_is_refused_for_onnx_and_nothing_is_written(pt_yolo):
    """builder=network only makes sense for engines: an ONNX export must not silently ignore it."""
    target = pt_yolo.ckpt_path.with_suffix(".onnx")
    before = target.stat().st_mtime_ns if target.exists() else None
    with pytest.raises(ValueError, match="builder=network .*format=engine only"):
        pt_yolo.export(format="onnx", builder="network", imgsz=320)
    after = target.stat().st_mtime_ns if target.exists() else None
    assert after == before


def test_unsupported_opset_is_refused_before_export(model, tmp_path):
    with pytest.raises(ValueError, match="opset=99 is not supported"):
        export_onnx(model, tmp_path / "m.onnx", imgsz=(320, 320), opset=99)
    assert not list(tmp_path.iterdir())


def test_missing_or_unwritable_folder_is_refused(model, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(model, tmp_path / "nope" / "m.onnx", imgsz=(320, 320))
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError):
        export_onnx(model, tmp_path / "file" / "m.onnx", imgsz=(320, 320))
    monkeypatch.setattr(onnx_export.os, "access", lambda *a, **k: False)  # root ignores chmod here
    with pytest.raises(PermissionError, match="not writable"):
        export_onnx(model, tmp_path / "m.onnx", imgsz=(320, 320))


def test_keep_io_types_needs_half(model, tmp_path):
    with pytest.raises(ValueError, match="needs half=True"):
        export_onnx(model, tmp_path / "m.onnx", imgsz=(320, 320), keep_io_types=True)


def test_failed_write_keeps_the_existing_file(model, tmp_path, monkeypatch):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"the user's previous export")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(onnx, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export_onnx(model, target, imgsz=(64, 64), simplify=False)
    assert target.read_bytes() == b"the user's previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left behind


def test_without_onnxslim_the_graph_is_kept_with_a_warning(fp32_onnx, monkeypatch, caplog):
    import logging

    monkeypatch.setitem(sys.modules, "onnxslim", None)
    graph = onnx.load(str(fp32_onnx))
    logger = logging.getLogger("ultralytics")
    logger.addHandler(caplog.handler)
    try:
        kept = onnx_export._simplify(graph)
    finally:
        logger.removeHandler(caplog.handler)
    assert kept is graph
    assert "onnxslim is not installed" in caplog.text
