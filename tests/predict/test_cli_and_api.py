"""The user-facing surface: YOLO API arguments, the `yolo` CLI, run folders and bad-input errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import IMAGES, SHAPES
from ultralytics import YOLO
from ultralytics.cfg import ConfigError, entrypoint, get_cfg, parse_cli, resolve_precision

VAL = SHAPES / "val" / "images"


@pytest.fixture(scope="module")
def model(shapes_pt):
    return YOLO(shapes_pt)


def test_unknown_key_names_closest(model):
    with pytest.raises(ConfigError, match="Did you mean 'imgsz'"):
        model.predict(VAL / "00000.jpg", imgs=320)


@pytest.mark.parametrize("conf", [-0.1, 1.5])
def test_conf_outside_unit_interval(model, conf):
    with pytest.raises(ConfigError, match=r"outside \[0.0, 1.0\]"):
        model.predict(VAL / "00000.jpg", conf=conf)


def test_imgsz_not_multiple_of_stride_rounds_up(model, caplog):
    r = model.predict(VAL / "00000.jpg", imgsz=300, verbose=False)[0]
    assert r.boxes is not None  # ran at 320 after rounding up


def test_precision_rules_match_upstream():
    assert resolve_precision(half=True) == 16
    assert resolve_precision(half=True, int8=True) == 8  # int8 wins
    assert resolve_precision(half=True, quantize=32) == 32  # explicit quantize overrides
    assert resolve_precision(quantize="fp16") == 16 and resolve_precision(quantize="int8") == 8
    with pytest.raises(ConfigError):
        resolve_precision(quantize=4)


def test_cli_parsing_bare_flags_and_lists():
    mode, over = parse_cli(["detect", "export", "model=a.pt", "half", "imgsz=[320,640]", "format=engine"])
    assert mode == "export" and over == {
        "task": "detect",
        "model": "a.pt",
        "half": True,
        "imgsz": [320, 640],
        "format": "engine",
    }
    assert get_cfg(over).imgsz == [320, 640]


def test_cli_unknown_key_exits_with_hint(capsys):
    with pytest.raises(SystemExit) as e:
        entrypoint(["predict", "confidence=0.3"])
    assert e.value.code == 2


def test_cli_predict_writes_only_into_run_dir(tmp_path, shapes_pt):
    before = set(os.listdir(tmp_path))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        entrypoint(["predict", f"model={shapes_pt}", f"source={VAL / '00000.jpg'}", "imgsz=320", "save_txt=True"])
        entrypoint(["predict", f"model={shapes_pt}", f"source={VAL / '00002.jpg'}", "imgsz=320"])
    finally:
        os.chdir(cwd)
    assert set(os.listdir(tmp_path)) - before == {"runs"}
    first, second = tmp_path / "runs/detect/predict", tmp_path / "runs/detect/predict-2"
    assert (first / "00000.jpg").is_file() and (first / "labels" / "00000.txt").is_file()
    assert (second / "00002.jpg").is_file()
    lines = (first / "labels" / "00000.txt").read_text().split("\n")
    assert all(len(line.split()) == 5 for line in lines if line)


def test_cli_main_job_on_bundled_defaults(tmp_path):
    """The README's first command: `yolo predict` with nothing else, in a fresh folder."""
    out = subprocess.run(
        [sys.executable, "-m", "ultralytics", "predict"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr + out.stdout
    saved = list((tmp_path / "runs/detect/predict").glob("*.jpg"))
    assert len(saved) == 2


def test_numpy_pil_and_tensor_sources_agree(model):
    import cv2
    from PIL import Image

    bgr = cv2.imread(str(VAL / "00000.jpg"))
    from_path = model.predict(VAL / "00000.jpg", imgsz=320, verbose=False)[0].boxes.data
    from_numpy = model.predict(bgr, imgsz=320, verbose=False)[0].boxes.data
    from_pil = model.predict(Image.fromarray(bgr[..., ::-1]), imgsz=320, verbose=False)[0].boxes.data
    assert torch.equal(from_path, from_numpy) and torch.equal(from_path, from_pil)
    tensor = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1))).float()[None] / 255
    from_tensor = model.predict(tensor, verbose=False)[0]
    assert len(from_tensor.boxes) == len(from_path)


def test_gray_and_four_channel_images(model):
    import cv2

    gray = cv2.imread(str(IMAGES / "camera.png"), cv2.IMREAD_GRAYSCALE)
    assert gray.ndim == 2
    assert model.predict(gray, imgsz=320, verbose=False)[0].orig_shape == gray.shape
    bgra = cv2.cvtColor(cv2.imread(str(VAL / "00000.jpg")), cv2.COLOR_BGR2BGRA)
    boxes4 = model.predict(bgra, imgsz=320, verbose=False)[0].boxes.data
    boxes3 = model.predict(VAL / "00000.jpg", imgsz=320, verbose=False)[0].boxes.data
    assert torch.equal(boxes4, boxes3)


def test_missing_model_and_source_errors(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        YOLO(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError):
        model.predict(tmp_path / "missing.jpg")
    with pytest.raises(ValueError):
        YOLO(tmp_path / "model.xyz")


def test_classes_filter_and_max_det(model):
    full = model.predict(VAL / "00000.jpg", imgsz=320, verbose=False)[0]
    only0 = model.predict(VAL / "00000.jpg", imgsz=320, classes=[0], verbose=False)[0]
    assert set(only0.boxes.cls.tolist()) <= {0.0}
    assert len(only0) == int((full.boxes.cls == 0).sum())
    one = model.predict(VAL / "00000.jpg", imgsz=320, max_det=1, verbose=False)[0]
    assert len(one) == 1 and one.boxes.conf[0] == full.boxes.conf.max()


def test_stream_returns_generator(model):
    gen = model.predict([VAL / "00000.jpg", VAL / "00001.jpg"], imgsz=320, stream=True, verbose=False)
    assert not isinstance(gen, list)
    assert len(list(gen)) == 2


def test_batch_predictions_equal_single(model):
    paths = [VAL / f"0000{i}.jpg" for i in (0, 1, 3, 4)]  # all 320x320: same letterbox in both modes
    single = [r.boxes.data for r in model.predict(paths, imgsz=320, verbose=False)]
    batched = [r.boxes.data for r in model.predict(paths, imgsz=320, batch=4, verbose=False)]
    for a, b in zip(single, batched):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-3)
