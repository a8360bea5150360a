"""benchmark and compare on the CPU with a tiny setting: 4 images, imgsz 160, PyTorch and ONNX rows."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import MODELS, SHAPES
from ultralytics.engine.benchmarks import format_table, run_benchmark
from ultralytics.engine.compare import compare_models, matched_detections

SHAPES_PT = MODELS / "shapes_yolov8n.pt"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for src in sorted((SHAPES / "val" / "images").glob("*.jpg"))[:4]:
        shutil.copy(src, root / "images")
        shutil.copy(SHAPES / "val" / "labels" / f"{src.stem}.txt", root / "labels")
    data = root / "tiny.yaml"
    data.write_text(yaml.safe_dump({"val": "images", "names": ["circle", "square", "triangle", "star"]}))
    return data


def test_benchmark_pt_and_onnx_rows(tiny_data, tmp_path):
    torch.set_num_threads(1)
    weights = tmp_path / "user" / "shapes_yolov8n.pt"
    weights.parent.mkdir()
    shutil.copy(SHAPES_PT, weights)
    rows = run_benchmark(
        str(weights),
        data=str(tiny_data),
        imgsz=160,
        device="cpu",
        project=str(tmp_path / "runs"),
        formats=["pt", "onnx", "engine"],
        precisions=[32],
    )
    by_format = {r["format"]: r for r in rows}
    assert by_format["PyTorch"]["status"] == "ok" and by_format["ONNX"]["status"] == "ok"
    # the same network in FP32: ONNX Runtime and PyTorch give the same accuracy
    assert by_format["ONNX"]["mAP50-95"] == pytest.approx(by_format["PyTorch"]["mAP50-95"], abs=0.002)
    for r in (by_format["PyTorch"], by_format["ONNX"]):
        assert 0.3 < r["mAP50-95"] <= 1 and r["e2e_ms"] >= r["inference_ms"] > 0 and r["size_mb"] > 1
    engine = by_format["TensorRT"]
    try:
        import tensorrt  # noqa: F401

        has_trt = torch.cuda.is_available()
    except ImportError:
        has_trt = False
    if not has_trt:
        assert engine["status"] == "skipped" and ("TensorRT" in engine["reason"] or "CUDA" in engine["reason"])
    # nothing next to the user's weights; exports, CSV and JSON in the run folder
    assert sorted(p.name for p in weights.parent.iterdir()) == ["shapes_yolov8n.pt"]
    run = tmp_path / "runs" / "benchmark"
    assert Path(by_format["ONNX"]["file"]).parent.parent == run
    with open(run / "benchmark.csv") as f:
        assert [r["format"] for r in csv.DictReader(f)] == ["PyTorch", "ONNX", "TensorRT"]
    assert json.loads((run / "benchmark.json").read_text())["rows"][1]["mAP50-95"] == by_format["ONNX"]["mAP50-95"]
    table = format_table(rows).splitlines()
    assert table[0].split()[:4] == ["Format", "Precision", "Status", "Size"] and "infer ms/im" in table[0]
    assert table[-1].endswith(engine["reason"] or "")


def test_benchmark_errors(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="needs a labelled dataset"):
        run_benchmark(str(SHAPES_PT), device="cpu")
    with pytest.raises(ValueError, match="exports from a PyTorch checkpoint"):
        run_benchmark(str(MODELS / "shapes_yolov8n_upstream.onnx"), data=str(tiny_data), device="cpu")
    with pytest.raises(ValueError, match="formats \\['tflite'\\] are not supported"):
        run_benchmark(str(SHAPES_PT), data=str(tiny_data), device="cpu", formats=["tflite"], project=str(tmp_path))


def test_compare_pt_with_upstream_onnx(tiny_data):
    report = compare_models(
        str(SHAPES_PT),
        str(MODELS / "shapes_yolov8n_upstream.onnx"),
        source=str(tiny_data.parent / "images"),
        device="cpu",
    )
    assert report["images"] == 4 and report["imgsz"] == [320, 320]  # the ONNX is static 320
    assert report["box_max_abs"] < 0.05 and report["score_max_abs"] < 1e-3
    assert report["detections_a"] > 0
    assert report["matched_a_in_b"] == 1.0 and report["matched_b_in_a"] == 1.0


def test_matched_detections_needs_same_class_and_iou_09():
    a = torch.tensor([[0, 0, 10, 10, 0.9, 0], [20, 20, 30, 30, 0.8, 1], [40, 40, 50, 50, 0.7, 2]])
    b = torch.tensor(
        [
            [0, 0, 10, 10.5, 0.9, 0],  # IoU 0.95, same class: match
            [20, 20, 30, 30, 0.8, 2],  # same box, other class: no match
            [40, 40, 50, 52, 0.7, 2],  # IoU 0.83: no match
        ]
    )
    assert matched_detections(a, b) == 1
    assert matched_detections(a, b[:0]) == 0
