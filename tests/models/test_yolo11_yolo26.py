"""YOLO11 and YOLO26: building, loading, raw output, predict (both YOLO26 heads) and val against upstream.

Expected numbers come from independent sources only: parameter counts from upstream 8.4.190 building
its own yolo11.yaml / yolo26.yaml (the oracle, nc=80 and nc=4), the state_dict of upstream's own
checkpoints, and upstream's recorded outputs in ../shared/fixtures/reference.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import MODELS, REFERENCE, SHAPES
from tests.predict.parity import compare_image, load_reference
from ultralytics import YOLO
from ultralytics.nn.checkpoint import load_checkpoint
from ultralytics.nn.modules import Detect
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.ops import filter_end2end, nms_free_requested

# Upstream 8.4.190's DetectionModel(f"{family}{scale}.yaml") parameter counts (nc=80 and nc=4).
UPSTREAM_PARAMS = {
    "yolo11": {
        "n": (2_624_080, 2_590_620),
        "s": (9_458_752, 9_429_340),
        "m": (20_114_688, 20_056_092),
        "l": (25_372_160, 25_313_564),
        "x": (56_966_176, 56_878_396),
    },
    "yolo26": {
        "n": (2_572_280, 2_505_360),
        "s": (10_009_784, 9_950_960),
        "m": (21_896_248, 21_779_056),
        "l": (26_299_704, 26_182_512),
        "x": (58_993_368, 58_817_808),
    },
}
FAMILIES = ("yolo11", "yolo26")
VAL_IMAGES = sorted((SHAPES / "val" / "images").glob("*.jpg"))
DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("scale", "nslmx")
def test_parameter_counts_match_upstream(family, scale, monkeypatch):
    # Counting needs shapes only: skipping the random weight init keeps the x scales cheap.
    for layer in (torch.nn.Conv2d, torch.nn.BatchNorm2d):
        monkeypatch.setattr(layer, "reset_parameters", lambda self: None)
    counts = tuple(
        sum(p.numel() for p in DetectionModel(f"{family}{scale}.yaml", nc=nc).parameters()) for nc in (None, 4)
    )
    assert counts == UPSTREAM_PARAMS[family][scale]


@pytest.mark.parametrize("family", FAMILIES)
def test_built_model_has_the_checkpoint_layout(family):
    """Our yaml builds exactly the modules, state_dict keys and shapes upstream pickled for the same scale."""
    loaded, _ = load_checkpoint(MODELS / f"shapes_{family}n.pt")
    built = DetectionModel(f"{family}n.yaml", nc=4).fuse().eval()

    def layer_types(model):  # every module, shared ones (upstream's single SiLU) once per use
        return [type(m).__name__ for _, m in model.named_modules(remove_duplicate=False)]

    assert layer_types(built) == layer_types(loaded)
    ours = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in loaded.state_dict().items()}
    assert ours == theirs
    assert built.stride.tolist() == loaded.stride.tolist() == [8.0, 16.0, 32.0]
    assert built.model[-1].end2end is False and built.end2end is False


@pytest.mark.parametrize("family", FAMILIES)
def test_raw_output_matches_upstream(family):
    """One-to-many head output (B, 4 + nc, A) on upstream's own letterboxed inputs, as for YOLOv8."""
    model = load_checkpoint(MODELS / f"shapes_{family}n.pt")[0]
    ref = np.load(REFERENCE / f"shapes_{family}n_raw_320.npz")
    keys = sorted(k for k in ref.files if k.startswith("input_"))
    assert keys
    for key in keys:
        k = key.removeprefix("input_")
        expected = ref[f"output_{k}"]
        with torch.no_grad():
            ours = model(torch.from_numpy(ref[key])).numpy()
        assert ours.shape == expected.shape, ref[f"name_{k}"]
        np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-3)


def test_yolo26_one_to_one_head_is_selected_like_upstream():
    """Default: one-to-many raw output; nms=False (select_head): top-k (B, max_det, 6), sorted by score."""
    model = load_checkpoint(MODELS / "shapes_yolo26n.pt")[0]
    head = model.model[-1]
    assert isinstance(head, Detect) and head.has_one2one and not model.end2end
    x = torch.from_numpy(np.load(REFERENCE / "shapes_yolo26n_raw_320.npz")["input_0"])
    model.select_head(True, max_det=50)
    with torch.no_grad():
        top = model(x)
    assert model.end2end and top.shape == (1, 50, 6)
    assert bool((top[0, :-1, 4] >= top[0, 1:, 4]).all())  # sorted
    assert bool(((top[..., 5] >= 0) & (top[..., 5] < 4)).all())
    model.select_head(False)
    with torch.no_grad():
        assert model(x).shape == (1, 8, 2100)
    # A checkpoint whose one-to-many branch was dropped (upstream's fuse for end2end use) can only run
    # the one-to-one head, whatever is asked: upstream's rule.
    head.cv2 = head.cv3 = None
    model.select_head(False)
    with torch.no_grad():
        assert model.end2end and model(x).shape == (1, 300, 6)
    # A YOLO11 head has no one-to-one branch: asking for it changes nothing.
    yolo11 = load_checkpoint(MODELS / "shapes_yolo11n.pt")[0]
    yolo11.select_head(True)
    assert not yolo11.end2end


def test_top_k_selection_against_brute_force():
    """Class-aware top-k = the k best (anchor, class) pairs among the k anchors with the best max score."""
    torch.manual_seed(0)
    head = Detect(nc=3, ch=(16,), reg_max=1, end2end=True, legacy=False)
    head.max_det = 5
    boxes = torch.rand(2, 40, 4)
    scores = torch.rand(2, 40, 3)
    out = head.top_k(boxes, scores)
    for b in range(2):
        anchors = sorted(range(40), key=lambda a: -float(scores[b, a].max()))[:5]
        pairs = sorted(((float(scores[b, a, c]), a, c) for a in anchors for c in range(3)), reverse=True)[:5]
        expected = torch.tensor([[*boxes[b, a].tolist(), s, c] for s, a, c in pairs])
        torch.testing.assert_close(out[b], expected)
    head.agnostic_nms = True
    out = head.top_k(boxes, scores)
    best, label = scores.max(-1)
    for b in range(2):
        order = best[b].argsort(descending=True)[:5]
        torch.testing.assert_close(out[b, :, 4], best[b, order])
        torch.testing.assert_close(out[b, :, 5], label[b, order].float())


def test_filter_end2end_thresholds_only():
    pred = torch.tensor(
        [[[0, 0, 10, 10, 0.9, 1], [0, 0, 10, 10, 0.8, 2], [5, 5, 9, 9, 0.3, 1], [1, 1, 2, 2, 0.1, 0]]]
    ).half()
    (out,) = filter_end2end(pred, conf_thres=0.25)
    assert out.dtype == torch.float32 and out[:, 4].tolist() == pytest.approx([0.9, 0.8, 0.3], abs=1e-3)
    (out,) = filter_end2end(pred, conf_thres=0.25, classes=[1])
    assert out[:, 5].tolist() == [1, 1]  # overlapping boxes of one class both stay: no NMS
    (out,) = filter_end2end(pred, conf_thres=0.0, max_det=2)
    assert len(out) == 2
    with pytest.raises(ValueError, match="batch, boxes, 6"):
        filter_end2end(torch.zeros(1, 8, 100))


def test_nms_free_request_follows_upstream_spellings():
    from types import SimpleNamespace as NS

    assert nms_free_requested(NS(nms=False)) and nms_free_requested(NS(nms=None, end2end=True))
    assert not nms_free_requested(NS(nms=None)) and not nms_free_requested(NS(nms=True))
    assert not nms_free_requested(NS(nms=False, end2end=False))  # end2end, when given, decides
    with pytest.raises(ValueError, match="'end2end='maybe'' must be a bool"):
        nms_free_requested(NS(nms=None, end2end="maybe"))


def test_bad_end2end_value_is_a_one_line_cli_error():
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "ultralytics", "predict", f"model={MODELS / 'shapes_yolo26n.pt'}"]
    cmd += [f"source={VAL_IMAGES[0]}", "nms=maybe", "imgsz=64"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "'nms='maybe'' must be a bool" in run.stderr + run.stdout and "Traceback" not in run.stderr


# ------------------------------------------------------------------------------------------- predict
@pytest.fixture(scope="module")
def yolo11():
    return YOLO(MODELS / "shapes_yolo11n.pt")


@pytest.fixture(scope="module")
def yolo26():
    return YOLO(MODELS / "shapes_yolo26n.pt")


def _parity_failures(
    model, reference, limit: int | None = None, only_square: bool = False, results: dict | None = None, **kwargs
) -> dict:
    """Predict the val images `reference` lists (its imgsz/conf/iou) and return the images that differ.
    `results` ({name: Results}) reuses predictions already made instead of predicting again."""
    ref = reference if isinstance(reference, dict) else load_reference(REFERENCE / reference)
    names = sorted(ref["images"])
    if only_square:
        names = [n for n in names if len(set(ref["images"][n]["orig_shape"])) == 1]
    names = names[:limit]
    if results is None:
        # image by image, as upstream made the references (a list would be one batch, letterboxed square)
        results = {
            n: model.predict(
                str(SHAPES / "val" / "images" / n),
                imgsz=ref["imgsz"],
                conf=ref["conf"],
                iou=ref["iou"],
                device="cpu",
                verbose=False,
                **kwargs,
            )[0]
            for n in names
        }
    assert len(names) > 0 and all(n in results for n in names)
    failures = {}
    for name in names:
        r = results[name]
        assert list(r.orig_shape) == ref["images"][name]["orig_shape"]
        b = r.boxes
        problems = compare_image(
            ref["images"][name], b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy().astype(int), px_tol=0.5, conf_tol=1e-3
        )
        if problems:
            failures[name] = problems
    return failures


# 640 is four times the work of 320; the first 30 images keep the suite fast and still cover
# square and non-square images, empty and crowded ones.
LIMIT = {320: None, 640: 30}


@pytest.mark.parametrize("imgsz", [320, 640])
def test_yolo11_predictions_match_upstream(yolo11, imgsz):
    failures = _parity_failures(yolo11, f"shapes_yolo11n_predict_{imgsz}.json", LIMIT[imgsz])
    assert not failures, f"{len(failures)} images differ: {dict(list(failures.items())[:5])}"


@pytest.mark.parametrize("imgsz", [320, 640])
def test_yolo26_default_predictions_match_upstream(yolo26, imgsz):
    """Default predict: one-to-many head + NMS, as upstream."""
    failures = _parity_failures(yolo26, f"shapes_yolo26n_predict_{imgsz}.json", LIMIT[imgsz])
    assert not failures, f"{len(failures)} images differ: {dict(list(failures.items())[:5])}"


@pytest.mark.parametrize("imgsz", [320, 640])
def test_yolo26_nms_free_predictions_match_upstream(yolo26, imgsz):
    """nms=False: the one-to-one head, top-k, no NMS — and the next default call is back on NMS."""
    failures = _parity_failures(yolo26, f"shapes_yolo26n_predict_e2e_{imgsz}.json", LIMIT[imgsz], nms=False)
    assert not failures, f"{len(failures)} images differ: {dict(list(failures.items())[:5])}"
    e2e = load_reference(REFERENCE / f"shapes_yolo26n_predict_e2e_{imgsz}.json")["images"]
    ref = load_reference(REFERENCE / f"shapes_yolo26n_predict_{imgsz}.json")["images"]
    # an image where the two heads' upstream answers differ, so the check below tells them apart
    name = next(n for n in sorted(ref) if len(ref[n]["cls"]) != len(e2e[n]["cls"]))
    (r,) = yolo26.predict(str(SHAPES / "val" / "images" / name), imgsz=imgsz, device="cpu", verbose=False)
    b = r.boxes
    assert not compare_image(ref[name], b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy().astype(int), 0.5, 1e-3)


# Upstream's predict() on its own end2end ONNX (static 320x320, so every image is letterboxed to the
# full square, unlike the .pt's minimal padding), recorded by running upstream 8.4.190 (the oracle).
UPSTREAM_E2E_ONNX_PREDICT = DATA / "shapes_yolo26n_end2end_onnx_predict_320.json"


def test_upstream_end2end_onnx_predicts_like_upstream():
    """Upstream's end2end ONNX ((1, 300, 6) output, metadata end2end: True) runs through our ONNX backend:
    every image as upstream runs that file, and the square images (same letterbox) as its .pt."""
    pytest.importorskip("onnxruntime")
    model = YOLO(MODELS / "shapes_yolo26n_end2end_upstream.onnx")
    results = dict(zip((p.name for p in VAL_IMAGES), model.predict(VAL_IMAGES, imgsz=320, verbose=False)))
    failures = _parity_failures(model, load_reference(UPSTREAM_E2E_ONNX_PREDICT), results=results)
    assert not failures, f"{len(failures)} images differ: {dict(list(failures.items())[:5])}"
    failures = _parity_failures(model, "shapes_yolo26n_predict_e2e_320.json", only_square=True, results=results)
    assert not failures, f"{len(failures)} images differ: {dict(list(failures.items())[:5])}"


# ------------------------------------------------------------------------------------------- export
@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """Private copies of the checkpoints, so exports land next to them without touching ../shared."""
    folder = tmp_path_factory.mktemp("yolo11_yolo26_exports")
    for family in FAMILIES:
        shutil.copy(MODELS / f"shapes_{family}n.pt", folder / f"shapes_{family}n.pt")
    return folder


def test_yolo11_onnx_export_matches_pytorch_raw_output(export_dir):
    """FP32 static export: ONNX Runtime's raw output equals the PyTorch model's on upstream's inputs."""
    ort = pytest.importorskip("onnxruntime")
    yolo = YOLO(export_dir / "shapes_yolo11n.pt")
    file = yolo.export(format="onnx", imgsz=320)
    session = ort.InferenceSession(file, providers=["CPUExecutionProvider"])
    ref = np.load(REFERENCE / "shapes_yolo11n_raw_320.npz")
    for key in (k for k in ref.files if k.startswith("input_") and ref[k].shape[2:] == (320, 320)):
        (ours,) = session.run(None, {"images": ref[key]})
        np.testing.assert_allclose(ours, ref[key.replace("input_", "output_")], rtol=1e-3, atol=1e-3)

    # INT8 policy: YOLO11's depth-wise class branch stays in float (quantizing it costs 1.6 points of
    # mAP50-95 on shapes, docs/models.md); YOLOv8's plain class branch is quantized as before.
    import onnx

    from ultralytics.export.quantize import depthwise_class_branch_convs, quantizable_convs

    graph = onnx.load(file)
    branch = depthwise_class_branch_convs(graph)
    assert len(branch) == 15  # 3 levels x (DWConv, 1x1 Conv, DWConv, 1x1 Conv, prediction Conv)
    assert not set(branch) & {n.name for n in quantizable_convs(graph)}
    assert depthwise_class_branch_convs(onnx.load(str(MODELS / "shapes_yolov8n_upstream.onnx"))) == []


def test_yolo26_end2end_onnx_export_is_upstreams_format(export_dir):
    """nms=False (upstream's spelling; end2end=True is the older one): (1, 300, 6) output, metadata
    end2end True, TopK in the graph; it predicts as upstream's own end2end ONNX does, also as FP16."""
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from ultralytics.export.onnx import convert_to_fp16

    yolo = YOLO(export_dir / "shapes_yolo26n.pt")
    file = Path(yolo.export(format="onnx", imgsz=320, nms=False))
    graph = onnx.load(str(file))
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["end2end"] == "True" and meta["names"] == str({0: "circle", 1: "square", 2: "triangle", 3: "star"})
    (output,) = graph.graph.output
    assert [d.dim_value for d in output.type.tensor_type.shape.dim] == [1, 300, 6]
    assert "TopK" in {n.op_type for n in graph.graph.node}
    assert not yolo.model.end2end  # the export worked on a copy: the loaded model still predicts with NMS
    failures = _parity_failures(YOLO(file), load_reference(UPSTREAM_E2E_ONNX_PREDICT), limit=40)
    assert not failures, f"{len(failures)} images differ: {dict(list(failures.items())[:5])}"

    # FP16 I/O: the same graph converted; the confident detections stay put.
    fp16 = convert_to_fp16(graph)
    x = np.load(REFERENCE / "shapes_yolo26n_raw_320.npz")["input_0"]
    (full,) = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"]).run(None, {"images": x})
    (half,) = ort.InferenceSession(fp16.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"images": x.astype(np.float16)}
    )
    assert half.dtype == np.float16 and half.shape == (1, 300, 6)
    keep = full[0, :, 4] > 0.25
    assert keep.any()
    np.testing.assert_allclose(half[0, : keep.sum()].astype(np.float32), full[0, keep], rtol=0, atol=0.5)


# ------------------------------------------------------------------------------------------- val
# Upstream 8.4.190's YOLO("shapes_yolo26n.pt").val(data=shapes.yaml, imgsz=320, nms=False) (the oracle, CPU):
# the one-to-one head validated without NMS.
UPSTREAM_YOLO26_NMS_FREE_VAL = {"mAP50-95": 0.61487, "mAP50": 0.78629}


@pytest.mark.parametrize(("family", "nms"), [("yolo11", None), ("yolo26", None), ("yolo26", False)])
def test_val_matches_upstream(family, nms):
    from ultralytics.engine.validator import DetectionValidator

    if nms is False:
        reference = UPSTREAM_YOLO26_NMS_FREE_VAL
    else:
        reference = json.loads((REFERENCE / f"shapes_{family}n_val_320.json").read_text())
    validator = DetectionValidator({"data": str(SHAPES / "shapes.yaml"), "imgsz": 320, "device": "cpu", "nms": nms})
    metrics = validator.run(str(MODELS / f"shapes_{family}n.pt"))
    assert abs(metrics.box.map - reference["mAP50-95"]) < 0.003
    assert abs(metrics.box.map50 - reference["mAP50"]) < 0.003
