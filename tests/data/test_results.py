"""Results/Boxes API on a real image: conversions, formats written to disk, plotting."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import IMAGES
from ultralytics.engine.results import Boxes, Results
from ultralytics.utils.plotting import colors

NAMES = {0: "circle", 1: "square", 2: "triangle", 3: "star"}


@pytest.fixture
def image():
    return cv2.imread(str(IMAGES / "chelsea.png"))  # 300 x 451


@pytest.fixture
def result(image):
    det = torch.tensor(
        [
            [10.0, 20.0, 110.0, 220.0, 0.9, 1.0],
            [200.0, 50.0, 300.0, 150.0, 0.8, 0.0],
            [250.0, 100.0, 451.0, 300.0, 0.4, 1.0],
        ]
    )
    return Results(image, path=str(IMAGES / "chelsea.png"), names=NAMES, boxes=det)


def test_boxes_properties(result, image):
    b = result.boxes
    h, w = image.shape[:2]
    assert b.orig_shape == (h, w) and b.shape == (3, 6) and len(b) == 3
    assert b.id is None and not b.is_track
    torch.testing.assert_close(b.conf, torch.tensor([0.9, 0.8, 0.4]))
    torch.testing.assert_close(b.cls, torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(b.xywh[0], torch.tensor([60.0, 120.0, 100.0, 200.0]))
    torch.testing.assert_close(b.xyxyn[0], torch.tensor([10 / w, 20 / h, 110 / w, 220 / h]))
    torch.testing.assert_close(b.xywhn[0], torch.tensor([60 / w, 120 / h, 100 / w, 200 / h]))
    assert b.data[0, 0] == 10  # derived properties do not modify the data
    assert len(b[b.conf > 0.5]) == 2
    n = b.numpy()
    assert isinstance(n.data, np.ndarray) and isinstance(n.xywh, np.ndarray)
    np.testing.assert_allclose(n.xywhn, b.xywhn.numpy())
    assert isinstance(b.cpu().data, torch.Tensor)
    assert b.to(torch.float64).data.dtype == torch.float64


def test_track_ids_and_bad_shapes():
    b = Boxes(torch.tensor([[0.0, 0, 5, 5, 7, 0.5, 2]]), (10, 10))
    assert b.is_track and b.id.tolist() == [7.0] and b.conf.tolist() == [0.5]
    with pytest.raises(ValueError, match="N, 6"):
        Boxes(torch.zeros(2, 5), (10, 10))


def test_results_indexing_and_conversion(result):
    assert len(result) == 3
    first = result[0]
    assert len(first) == 1 and first.boxes.xyxy.tolist() == [[10.0, 20.0, 110.0, 220.0]]
    assert len(result[1:]) == 2
    assert isinstance(result.numpy().boxes.data, np.ndarray)
    assert result.cpu().path == result.path
    empty = result.new()
    assert len(empty) == 0 and empty.verbose() == "(no detections), " and empty.summary() == []  # upstream's text


def test_verbose(result):
    assert result.verbose() == "1 circle, 2 squares, "


def test_summary_and_json(result, image):
    h, w = image.shape[:2]
    rows = json.loads(result.to_json())
    assert rows == result.summary()
    assert rows[0] == {
        "name": "square",
        "class": 1,
        "confidence": 0.9,
        "box": {"x1": 10.0, "y1": 20.0, "x2": 110.0, "y2": 220.0},
    }
    norm = result.summary(normalize=True, decimals=3)
    assert norm[2]["box"] == {"x1": round(250 / w, 3), "y1": round(100 / h, 3), "x2": 1.0, "y2": 1.0}


def test_save_txt_yolo_format(result, image, tmp_path):
    h, w = image.shape[:2]
    txt = tmp_path / "labels" / "chelsea.txt"
    result.save_txt(txt, save_conf=True)
    lines = [line.split() for line in txt.read_text().splitlines()]
    assert len(lines) == 3 and all(len(v) == 6 for v in lines)
    cls, xc, yc, bw, bh, conf = (float(v) for v in lines[0])
    assert cls == 1 and conf == pytest.approx(0.9, abs=1e-6)
    np.testing.assert_allclose([xc, yc, bw, bh], [60 / w, 120 / h, 100 / w, 200 / h], rtol=1e-5)
    result.save_txt(txt)  # appends (video frames share a file); nothing is lost
    lines = txt.read_text().splitlines()
    assert len(lines) == 6 and len(lines[-1].split()) == 5


def test_plot_draws_class_colours_on_a_copy(result, image):
    before = image.copy()
    plotted = result.plot()
    np.testing.assert_array_equal(image, before)  # the original is untouched
    assert plotted.shape == image.shape and plotted.dtype == np.uint8
    # the left edge of box 0 (class 1) is drawn in class 1's colour
    np.testing.assert_array_equal(plotted[150, 10], colors(1, bgr=True))
    assert (plotted != image).any()
    bare = result.plot(boxes=False)
    np.testing.assert_array_equal(bare, image)
    no_labels = result.plot(labels=False, conf=False, line_width=1)
    assert (no_labels != image).sum() < (plotted != image).sum()


def test_plot_grayscale_original():
    gray = cv2.imread(str(IMAGES / "camera.png"), cv2.IMREAD_GRAYSCALE)
    r = Results(gray, path="camera.png", names=NAMES, boxes=torch.tensor([[5.0, 5, 50, 50, 0.7, 2]]))
    assert r.plot().shape == (*gray.shape, 3)


def test_save_writes_a_readable_image(result, tmp_path, monkeypatch):
    out = result.save(tmp_path / "out.png")
    np.testing.assert_array_equal(cv2.imread(out), result.plot())
    monkeypatch.chdir(tmp_path)
    assert result.save() == "results_chelsea.png" and (tmp_path / "results_chelsea.png").is_file()
    with pytest.raises(ValueError, match="suffix"):
        result.save(tmp_path / "noext")
