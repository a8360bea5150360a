"""End-to-end models (network output = final detections) skip NMS: one rule, `ops.filter_end2end`, filters
their rows on the CPU path, the device path and in val. The rule was observed on upstream 8.4.190
(`utils.nms.non_max_suppression(..., end2end=True)` and `DetectionPredictor.postprocess` of
shapes_yolo26n.pt with nms=False and of shapes_yolo26n_end2end_upstream.onnx, fed hand-made rows): the
model's row order is kept (no re-sort), score > conf compared in the model's dtype, the `classes` filter
before the first `max_det`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import MODELS
from tests.gpu.conftest import requires_cuda
from tests.gpu.test_pipeline import assert_boxes_match, boxes_of, predictor_for
from ultralytics import YOLO
from ultralytics.engine.gpu_pipeline import GpuStages
from ultralytics.utils.ops import filter_end2end

# rows in no score order, and what upstream 8.4.190 returned for them (scores, classes) at conf 0.25
UNSORTED = [[0, 0, 10, 10, 0.30, 1], [0, 0, 10, 10, 0.90, 2], [0, 0, 10, 10, 0.25, 1]]
UNSORTED += [[0, 0, 10, 10, 0.60, 0], [0, 0, 10, 10, 0.80, 1], [0, 0, 10, 10, 0.50, 1]]
UPSTREAM = [  # (conf, classes, max_det) -> [(score, class), ...] as upstream printed them
    ((0.25, None, 300), [(0.30, 1), (0.90, 2), (0.60, 0), (0.80, 1), (0.50, 1)]),
    ((0.25, None, 2), [(0.30, 1), (0.90, 2)]),
    ((0.25, [1], 2), [(0.30, 1), (0.80, 1)]),
    ((0.3, None, 300), [(0.90, 2), (0.60, 0), (0.80, 1), (0.50, 1)]),  # float32 0.3 is not > 0.3
]


def reference(preds: np.ndarray, conf: float, classes, max_det: int) -> list[np.ndarray]:
    """Upstream's rule in numpy: threshold in the rows' own dtype, class filter, first max_det, order kept."""
    out = []
    for rows in preds:
        keep = rows[:, 4] > np.asarray(conf, dtype=rows.dtype)
        if classes is not None:
            keep &= np.isin(rows[:, 5], classes)
        out.append(rows[keep][:max_det].astype(np.float32))
    return out


@pytest.mark.parametrize(("args", "expected"), UPSTREAM)
def test_filter_matches_upstream_on_unsorted_rows(args, expected):
    preds = torch.tensor([UNSORTED])
    for device in (None, "cpu"):
        (got,) = filter_end2end(preds, *args, device=device)
        assert got.dtype == torch.float32
        assert [(round(s, 4), int(c)) for s, c in got[:, 4:].tolist()] == expected


def test_filter_is_batched_and_thresholds_in_the_model_dtype():
    rng = np.random.default_rng(0)
    preds = rng.random((3, 50, 6)).astype(np.float32)
    preds[..., 5] = rng.integers(0, 4, size=(3, 50))
    preds[1, :10, :4] = preds[1, 0, :4]  # overlapping boxes stay: no NMS
    preds[2, 4:] = 0.0  # an image with few rows above any threshold
    for conf, classes, max_det in ((0.25, None, 300), (0.5, [1, 3], 300), (0.1, None, 5), (0.0, None, 0)):
        got = filter_end2end(torch.from_numpy(preds), conf, classes, max_det, device="cpu")
        want = reference(preds, conf, classes, max_det)
        assert len(got) == 3 and all(np.array_equal(g.numpy(), w) for g, w in zip(got, want))
    half = torch.tensor([[[0, 0, 10, 10, 0.2502, 1], [0, 0, 10, 10, 0.26, 1]]]).half()
    (got,) = filter_end2end(half, 0.2502)  # the half score 0.250244 equals the half-rounded threshold
    assert got.dtype == torch.float32 and got[:, 4].tolist() == [pytest.approx(0.26, abs=1e-3)]
    with pytest.raises(ValueError, match="batch, boxes, 6"):
        filter_end2end(torch.zeros(1, 8, 100))
    with pytest.raises(ValueError, match="max_det"):
        filter_end2end(torch.zeros(1, 8, 6), max_det=-1)


def test_cpu_and_device_stages_filter_the_same_rows_in_the_same_order(shapes_images):
    """Unsorted rows (and a half score at the threshold) through both predictor paths, run on the CPU."""
    model = YOLO(MODELS / "shapes_yolo26n.pt")
    pred = predictor_for(model, "cpu", imgsz=320, conf=0.2502, nms=False, classes=[0, 1, 2], max_det=4)
    assert pred.model.end2end and pred.gpu is None  # the one-to-one head; the CPU stages
    cpu_stages = pred.stages
    device_stages = GpuStages(pred.model, pred.args)
    rng = np.random.default_rng(1)
    preds = torch.from_numpy(rng.random((2, 30, 6)).astype(np.float32) * [300, 300, 300, 300, 1, 1])
    preds[..., 5] = torch.from_numpy(rng.integers(0, 4, size=(2, 30)).astype(np.float32))
    preds[..., 2:4] += preds[..., 0:2]  # x2,y2 right of x1,y1
    preds[0, 3] = torch.tensor([10.0, 20, 50, 60, 0.2502, 1])  # half: 0.250244 == half(0.2502), dropped
    frames = [shapes_images[i][1] for i in (0, 2)]
    im = torch.zeros(2, 3, 320, 320)
    for dtype in (torch.float32, torch.float16):
        rows = preds.to(dtype)
        on_cpu = boxes_of(cpu_stages.postprocess(rows.clone(), im, frames, ["a.jpg", "b.jpg"]))
        on_device = boxes_of(device_stages.postprocess(rows.clone(), im, frames, ["a.jpg", "b.jpg"]))
        want = reference(rows.numpy(), 0.2502, [0, 1, 2], 4)
        for a, b, w in zip(on_cpu, on_device, want):
            assert len(w) > 1 and a[:, 4:].tolist() == w[:, 4:].tolist() == b[:, 4:].tolist()
            np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-3)  # both scaled to the originals


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


@requires_cuda
@pytest.mark.parametrize("device", [None, "cpu"])
def test_cuda_rows_cost_one_device_to_host_copy(device):
    """The device path's batch reaches the host in one copy (rows and counts together); rows kept on the
    device cost one copy of the counts; no per-image syncs."""
    from torch.profiler import ProfilerActivity, profile

    rng = np.random.default_rng(2)
    preds = rng.random((8, 300, 6)).astype(np.float32)
    preds[..., 5] = rng.integers(0, 4, size=(8, 300))
    on_gpu = torch.from_numpy(preds).cuda().half()
    filter_end2end(on_gpu, 0.5, [0, 1], 100, device=device)  # warm-up: kernels loaded outside the count
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        got = filter_end2end(on_gpu, 0.5, [0, 1], 100, device=device)
        torch.cuda.synchronize()
    copies = [e.name for e in prof.events() if "DtoH" in e.name]
    assert len(copies) == 1, copies
    want = reference(on_gpu.cpu().numpy(), 0.5, [0, 1], 100)
    assert all(g.device.type == ("cpu" if device else "cuda") for g in got)
    assert all(np.array_equal(g.cpu().numpy(), w) for g, w in zip(got, want))


@requires_cuda
def test_cuda_predict_of_an_end2end_model_matches_the_cpu_path(shapes_images):
    model = YOLO(MODELS / "shapes_yolo26n.pt")
    sources = [im for _, im in shapes_images]
    expected = boxes_of(predictor_for(model, "cpu", imgsz=320, nms=False, batch=3)(sources))
    on_gpu = predictor_for(model, "0", imgsz=320, nms=False, batch=3)
    assert on_gpu.gpu is not None and on_gpu.model.end2end
    got = boxes_of(on_gpu(sources))
    assert sum(len(b) for b in expected) > 0
    assert_boxes_match(got, expected)
