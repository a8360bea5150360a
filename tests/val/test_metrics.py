"""Our mAP against independent references: brute-force IoU, constructed cases, and pycocotools."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import REFERENCE, SHAPES
from tests.val.cocoeval import coco_map
from ultralytics.data.dataset import load_split
from ultralytics.utils.metrics import IOU_THRESHOLDS, DetMetrics, ap_per_class, box_iou, match_predictions


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 100, (n, 2))
    return np.concatenate((xy, xy + rng.uniform(1, 50, (n, 2))), 1)


def test_box_iou_matches_brute_force():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 7), random_boxes(rng, 5)
    expected = np.zeros((7, 5))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            expected[i, j] = inter / union
    got = box_iou(torch.tensor(a), b)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_box_iou_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(N, 4\) and \(M, 4\)"):
        box_iou(np.zeros((3, 5)), np.zeros((2, 4)))


def test_matching_gives_a_truth_to_its_most_confident_claimant():
    """Upstream's rule, on hand-made IoU matrices (rows: truths, columns: predictions by confidence)."""
    # one truth, two same-class predictions: the more confident (IoU 0.82) wins where both qualify,
    # the better-placed one (IoU 1.0) only where the first is below the threshold
    correct = match_predictions(np.array([0, 0]), np.array([0]), np.array([[0.82, 1.0]]))
    assert correct[:, 0].tolist() == [True, False]  # t = 0.50
    assert correct[0].tolist() == [bool(t <= 0.82) for t in IOU_THRESHOLDS]
    assert correct[1].tolist() == [bool(t > 0.82) for t in IOU_THRESHOLDS]
    # a prediction whose best truth is taken does not fall back to its second best (COCO would)
    iou = np.array([[1.0, 0.9], [0.0, 0.6]])  # truth A: both predictions; truth B: only prediction 1
    correct = match_predictions(np.array([0, 0]), np.array([0, 0]), iou)
    assert correct[0].all() and not correct[1, 0]
    # classes must agree
    assert not match_predictions(np.array([1]), np.array([0]), np.array([[1.0]])).any()


def test_perfect_and_empty_predictions():
    tp = np.ones((3, 10), dtype=bool)
    result = ap_per_class(tp, np.array([0.9, 0.8, 0.7]), np.array([0, 1, 1]), np.array([0, 1, 1]))
    # Upstream's AP of a perfect ranking is 0.995, not 1: the envelope is closed with precision 0 at
    # recall 1, so the last of the 100 trapezoids has half its area (upstream's own mAP50 on the shapes
    # set, reference/shapes_val_320.json, is exactly this 0.995).
    reference = json.loads((REFERENCE / "shapes_val_320.json").read_text())
    np.testing.assert_allclose(result["ap"], 1 - 0.5 / 100)
    assert reference["mAP50"] == pytest.approx(1 - 0.5 / 100)
    metrics = DetMetrics({0: "a", 1: "b"})
    metrics.update(np.zeros((0, 10), dtype=bool), [], [], [0, 1])
    metrics.process()
    assert metrics.box.map == 0.0 and metrics.seen == 1 and metrics.nt_per_class.tolist() == [1, 1]


def shapes_ground_truth() -> tuple[list, list, list]:
    """Per val image: file name, (h, w), (xyxy pixels, cls) of the labels."""
    split = load_split(SHAPES / "shapes.yaml", "val")
    reference = json.loads((REFERENCE / "shapes_predict_320.json").read_text())["images"]
    names, sizes, truths = [], [], []
    for path, labels in zip(split.im_files, split.labels):
        h, w = reference[path.name]["orig_shape"]
        cx, cy, bw, bh = (labels[:, k] * s for k, s in zip(range(1, 5), (w, h, w, h)))
        names.append(path.name)
        sizes.append((h, w))
        truths.append((np.stack((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), 1), labels[:, 0]))
    return names, sizes, truths


def our_map(truths, preds, names=None, ap_method: str = "upstream") -> DetMetrics:
    metrics = DetMetrics(names or {i: str(i) for i in range(4)}, ap_method=ap_method)
    for (gt_xyxy, gt_cls), (xyxy, conf, cls) in zip(truths, preds):
        iou = box_iou(gt_xyxy, xyxy).numpy() if len(gt_xyxy) and len(xyxy) else np.zeros((len(gt_xyxy), len(xyxy)))
        metrics.update(match_predictions(cls, gt_cls, iou), conf, cls, gt_cls)
    return metrics.process()


def upstream_predictions(names: list[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Upstream's recorded predict() output (conf 0.25) on the shapes val images."""
    reference = json.loads((REFERENCE / "shapes_predict_320.json").read_text())["images"]
    return [
        (np.array(reference[n]["xyxy"]).reshape(-1, 4), np.array(reference[n]["conf"]), np.array(reference[n]["cls"]))
        for n in names
    ]


def perturbed_predictions(sizes, truths, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A harder case: jittered boxes, missed objects, wrong classes and false detections."""
    rng = np.random.default_rng(seed)
    preds = []
    for (h, w), (gt_xyxy, gt_cls) in zip(sizes, truths):
        keep = rng.random(len(gt_xyxy)) > 0.15
        boxes = gt_xyxy[keep] + rng.normal(0, 3, (int(keep.sum()), 4))
        cls = gt_cls[keep].copy()
        flip = rng.random(len(cls)) < 0.05
        cls[flip] = (cls[flip] + 1) % 4
        boxes = np.concatenate((boxes, random_boxes(rng, 2).clip(0, min(h, w))))
        cls = np.concatenate((cls, rng.integers(0, 4, 2)))
        preds.append((boxes, rng.uniform(0.05, 1.0, len(boxes)), cls.astype(float)))
    return preds


@pytest.mark.parametrize("case", ["upstream_predictions", "perturbed"])
def test_coco_method_reproduces_pycocotools_exactly(case):
    """Same matching, ranking and (with method='coco') the same integration: pycocotools' numbers exactly.

    This checks IoU, matching and per-class ranking independently of the AP integration, which is the
    only intended difference between upstream's protocol and COCO's (docs/validation.md).
    """
    names, sizes, truths = shapes_ground_truth()
    preds = upstream_predictions(names) if case == "upstream_predictions" else perturbed_predictions(sizes, truths)
    ours = our_map(truths, preds, ap_method="coco")
    coco_5095, coco_50 = coco_map(sizes, truths, preds, max_dets=300)
    assert 0.3 < coco_5095 < 1.0
    assert ours.box.map == pytest.approx(coco_5095, abs=1e-9)
    assert ours.box.map50 == pytest.approx(coco_50, abs=1e-9)


def test_ap_ends_at_the_highest_recall_reached():
    """One true positive among two ground truths (recall 0.5 at precision 1), worked by hand.

    Upstream 8.4: precision 1 up to recall 0.49, 0 from the recall point 0.50 on (the envelope drops at
    the highest recall reached) → 0.49 + one half-trapezoid 0.005 = 0.495, the value upstream's
    maintainers quote for this case (ultralytics issue #25852). Upstream 8.3 joined (0.5, 1) straight
    to (1, 0): 0.5 + 0.25 = 0.75.
    """
    result = ap_per_class(np.ones((1, 10), dtype=bool), np.array([0.9]), np.array([0]), np.array([0, 0]))
    np.testing.assert_allclose(result["ap"], 0.49 + 0.01 / 2)
    legacy = ap_per_class(
        np.ones((1, 10), dtype=bool), np.array([0.9]), np.array([0]), np.array([0, 0]), method="upstream-8.3"
    )
    np.testing.assert_allclose(legacy["ap"], 0.5 + 0.5 * 0.5)


def test_false_positives_after_the_last_true_positive_do_not_change_ap():
    """Why our val once gave 0.53 points more than upstream at conf=0.001: under the 8.3 rule the ramp
    to (1, 0) starts at the precision of the last ranked prediction, so trailing false positives (a lower
    conf threshold) lower the AP; under upstream 8.4's rule they change nothing."""
    rng = np.random.default_rng(3)
    tp = rng.random((40, 10)) < 0.6
    conf = np.sort(rng.uniform(0.2, 1.0, 40))[::-1]
    target = np.zeros(60)  # 60 truths: recall stays below 1 at every threshold
    tail_tp = np.zeros((200, 10), dtype=bool)
    tail_conf = np.linspace(0.1, 0.001, 200)
    with_tail = (np.concatenate((tp, tail_tp)), np.concatenate((conf, tail_conf)), np.zeros(240))
    for method, changes in (("upstream", False), ("upstream-8.3", True)):
        short = ap_per_class(tp, conf, np.zeros(40), target, method=method)["ap"]
        long = ap_per_class(*with_tail, target, method=method)["ap"]
        if changes:
            assert (long < short - 1e-3).all()
        else:
            np.testing.assert_array_equal(long, short)


@pytest.mark.parametrize("case", ["upstream_predictions", "perturbed"])
def test_upstream_integration_is_close_to_pycocotools_where_recall_stops_short(case):
    """Upstream 8.4 and COCO both give no area past the highest recall, so even on conf=0.25 predictions
    (recall well below 1 at IoU 0.95) they agree within 0.3 points; they differ only in linear vs step
    interpolation. The 8.3 rule's ramp to (1, 0) adds more than a point on the same predictions."""
    names, sizes, truths = shapes_ground_truth()
    preds = upstream_predictions(names) if case == "upstream_predictions" else perturbed_predictions(sizes, truths)
    coco_5095, _ = coco_map(sizes, truths, preds, max_dets=300)
    assert abs(our_map(truths, preds).box.map - coco_5095) < 0.003
    assert our_map(truths, preds, ap_method="upstream-8.3").box.map - coco_5095 > 0.01


def test_unknown_ap_method_is_refused_up_front():
    with pytest.raises(ValueError, match="ap_method 'voc' is not known; use one of upstream, upstream-8.3, coco"):
        DetMetrics({0: "a"}, ap_method="voc")


def test_det_metrics_results_and_table():
    names, sizes, truths = shapes_ground_truth()
    preds = upstream_predictions(names)
    class_names = {0: "circle", 1: "square", 2: "triangle", 3: "star"}
    metrics = our_map(truths, preds, class_names)
    assert set(metrics.results_dict) == {*metrics.keys, "fitness"}
    assert metrics.results_dict["metrics/mAP50-95(B)"] == metrics.box.map
    assert metrics.maps.shape == (4,) and np.isclose(metrics.maps.mean(), metrics.box.map)
    n_instances = sum(len(c) for _, c in truths)
    assert metrics.nt_per_class.sum() == n_instances
    assert [row["Class"] for row in metrics.summary()] == list(class_names.values())
    table = metrics.table().splitlines()
    assert table[0].split() == ["Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)"]
    assert table[1].split()[:3] == ["all", str(len(names)), str(n_instances)]
    assert len(table) == 2 + 4
