"""Predict behaviours taken from upstream 8.4.190 (observed with the oracle): list batching, the Speed
line, the fixed-size warning, saved video fps, tensor sources' original images."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import FIXTURES, SHAPES
from ultralytics import YOLO
from ultralytics.data.augment import tensor_to_bgr

VAL = SHAPES / "val" / "images"


def speed_shape(lines: list[str]) -> str:
    found = [m.group(1) for line in lines if (m := re.search(r"per image at shape (\(.*\))", line))]
    assert len(found) == 1, lines
    return found[0]


def test_speed_line_shape_is_upstreams(shapes_pt, tmp_path, log_lines):  # noqa: F811
    """Upstream prints (min(batch, seen), 3, h, w) — seen with the oracle: (1, 3, 384, 640) for a list
    of three 720x1280 frames at the default batch (one batch of three), (2, 3, ...) for a folder of
    three files at batch=2 (whose last batch holds one)."""
    model = YOLO(shapes_pt)
    frames = [np.full((180, 320, 3), v, np.uint8) for v in (0, 60, 120)]  # the same geometry at 1/4 size
    model.predict(frames, imgsz=160, verbose=True)
    assert speed_shape(log_lines) == "(1, 3, 96, 160)"
    log_lines.clear()
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), frames[i])
    model.predict(tmp_path, imgsz=160, batch=2, verbose=True)
    assert speed_shape(log_lines) == "(2, 3, 96, 160)"


def test_a_list_of_frames_is_one_batch(shapes_pt):
    model = YOLO(shapes_pt)
    frames = [cv2.imread(str(p)) for p in sorted(VAL.glob("*.jpg"))[:4]]
    seen = []
    predictor_run = model.predict(frames, imgsz=320, verbose=False, stream=True)
    for r in predictor_run:
        seen.append(r.speed["inference"])
    assert len(seen) == 4 and len(set(seen)) == 1  # one batch: one stage time shared by all four


def test_no_fixed_size_warning_without_imgsz(log_lines):  # noqa: F811
    """A static 320 ONNX: upstream uses the model's size silently when no imgsz was given."""
    model = YOLO(FIXTURES / "models" / "shapes_yolov8n_upstream.onnx")
    r = model.predict(VAL / "00000.jpg", verbose=False)[0]
    assert r.boxes is not None
    assert not [line for line in log_lines if "is ignored" in line], log_lines
    model.predict(VAL / "00000.jpg", imgsz=640, verbose=False)
    assert [line for line in log_lines if "imgsz=640 is ignored" in line]


def test_saved_video_keeps_the_source_fps(shapes_pt, tmp_path):
    src = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 12, (320, 320))
    frame = cv2.imread(str(VAL / "00000.jpg"))
    assert frame.shape[:2] == (320, 320)
    for _ in range(4):
        writer.write(frame)
    writer.release()
    YOLO(shapes_pt).predict(src, imgsz=320, save=True, project=str(tmp_path), name="out", verbose=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.avi"]  # upstream's container on Linux
    saved = cv2.VideoCapture(str(tmp_path / "out" / "clip.avi"))
    assert saved.isOpened()
    fps = saved.get(cv2.CAP_PROP_FPS)
    fourcc = int(saved.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    frames = int(saved.get(cv2.CAP_PROP_FRAME_COUNT))
    saved.release()
    assert fps == pytest.approx(12, abs=0.01)
    assert fourcc == "MJPG" and frames == 4


def test_tensor_source_originals_are_the_bgr_frames():
    rgb = torch.rand(2, 3, 64, 96)
    got = tensor_to_bgr(rgb)
    expected = (rgb.clamp(0, 1) * 255).round().byte().numpy().transpose(0, 2, 3, 1)[..., ::-1]
    assert len(got) == 2 and all(g.flags.c_contiguous for g in got)
    assert all(np.array_equal(g, e) for g, e in zip(got, expected))


def test_dynamic_onnx_exported_at_320_predicts_at_640_unless_told(shapes_pt, tmp_path, log_lines):  # noqa: F811
    """Upstream takes a dynamic model's size from imgsz (640 by default), not from its export size."""
    import shutil

    pt = tmp_path / "shapes.pt"
    shutil.copy(shapes_pt, pt)
    onnx_path = YOLO(pt).export(format="onnx", imgsz=320, dynamic=True)
    model = YOLO(onnx_path)
    model.predict(VAL / "00000.jpg", verbose=True)
    assert any("640x640" in line for line in log_lines), log_lines
    log_lines.clear()
    model.predict(VAL / "00000.jpg", imgsz=320, verbose=True)
    assert any("320x320" in line for line in log_lines), log_lines
