"""End-to-end models (network output = final detections) skip NMS on the device path: only conf,
classes and max_det filter their rows, as upstream's end2end postprocess does."""

from __future__ import annotations

import numpy as np
import torch

from tests.gpu.test_pipeline import boxes_of, predictor_for
from ultralytics import YOLO
from ultralytics.engine.gpu_pipeline import GpuStages, end2end_detections


def reference(preds: np.ndarray, conf: float, classes, max_det: int) -> list[np.ndarray]:
    out = []
    for rows in preds:
        keep = rows[rows[:, 4] > conf]
        if classes is not None:
            keep = keep[np.isin(keep[:, 5], classes)]
        out.append(keep[np.argsort(-keep[:, 4], kind="stable")][:max_det])
    return out


def test_end2end_rows_are_filtered_not_suppressed():
    rng = np.random.default_rng(0)
    preds = rng.random((3, 50, 6)).astype(np.float32)
    preds[..., 5] = rng.integers(0, 4, size=(3, 50))
    preds[1, :10, :4] = preds[1, 0, :4]  # overlapping boxes stay: no NMS
    for conf, classes, max_det in ((0.25, None, 300), (0.5, [1, 3], 300), (0.1, None, 5)):
        got = end2end_detections(torch.from_numpy(preds), conf, classes, max_det)
        want = reference(preds, conf, classes, max_det)
        assert len(got) == 3 and all(np.array_equal(g, w) for g, w in zip(got, want))


def test_stages_of_an_end2end_model_skip_nms(shapes_pt, shapes_images, monkeypatch):
    model = YOLO(shapes_pt)
    pred = predictor_for(model, "cpu", imgsz=320, conf=0.3)
    stages = GpuStages(pred.model, pred.args)
    stages.end2end = True  # what a backend with end2end=True gives (set from AutoBackend.end2end)
    monkeypatch.setattr(stages.nms, "launch", lambda *a: (_ for _ in ()).throw(AssertionError("NMS ran")))
    fake = torch.zeros(1, 4, 6)
    fake[0, 0] = torch.tensor([10.0, 20.0, 50.0, 60.0, 0.9, 2.0])
    fake[0, 1] = torch.tensor([12.0, 22.0, 52.0, 62.0, 0.8, 2.0])  # overlaps the first: kept
    fake[0, 2] = torch.tensor([0.0, 0.0, 5.0, 5.0, 0.2, 1.0])  # under conf
    frame = shapes_images[0][1]
    im = torch.zeros(1, 3, 320, 320)
    (r,) = stages.postprocess(fake, im, [frame], ["a.jpg"])
    assert r.boxes.data.shape == (2, 6) and r.boxes.cls.tolist() == [2.0, 2.0]
    assert boxes_of([r])[0][:, 4].tolist() == [np.float32(0.9), np.float32(0.8)]
