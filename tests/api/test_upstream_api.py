"""Upstream's public detection API, side by side: every value compared here was recorded from upstream
Ultralytics 8.4.190 on the same model and images by tests/api/reference/make_upstream_reference.py
(the command that made them is in its docstring), or is a documented fact of upstream's API."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import MODELS, SHAPES
from ultralytics import YOLO
from ultralytics.cfg import ConfigError
from ultralytics.engine.predictor import DetectionPredictor
from ultralytics.engine.results import Boxes, Results
from ultralytics.engine.validator import DetectionValidator
from ultralytics.nn.modules import Conv
from ultralytics.utils.metrics import DetMetrics

HERE = Path(__file__).parent / "reference"
REF = json.loads((HERE / "upstream_api.json").read_text())
SHAPES_PT = MODELS / "shapes_yolov8n.pt"
IMAGE = SHAPES / "val" / "images" / "00000.jpg"
NAMES = {0: "circle", 1: "square", 2: "triangle", 3: "star"}


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """One YOLO.val at imgsz 320, batch 16 (upstream's reference run), with every callback recorded."""
    torch.set_num_threads(1)
    model = YOLO(SHAPES_PT)
    events: list[str] = []
    for event in model.callbacks:
        model.add_callback(event, lambda _owner, e=event: events.append(e))
    project = tmp_path_factory.mktemp("val")
    metrics = model.val(
        data=str(SHAPES / "shapes.yaml"), imgsz=320, batch=16, device="cpu", save_json=True, project=str(project)
    )
    return model, metrics, events


@pytest.fixture(scope="module")
def torchscript_file(tmp_path_factory) -> Path:
    """format=torchscript of a copy of the shapes model at imgsz 320 (the export writes next to its weights)."""
    folder = tmp_path_factory.mktemp("torchscript")
    model = YOLO(_copy(SHAPES_PT, folder))
    events: list[tuple] = []
    model.add_callback("on_export_start", lambda run: events.append(("start", run.args.format, run.file)))
    model.add_callback("on_export_end", lambda run: events.append(("end", run.args.format, run.file)))
    path = model.export(imgsz=320)  # torchscript: upstream's default format
    assert events == [("start", "torchscript", None), ("end", "torchscript", path)]
    return Path(path)


def upstream_result() -> Results:
    """Our Results around upstream's own detections for IMAGE, so text formats compare byte for byte."""
    return Results(cv2.imread(str(IMAGE)), path=str(IMAGE), names=NAMES, boxes=torch.tensor(REF["boxes_data"]))


# ----------------------------------------------------------------------------------- val metrics
def test_val_metrics_numbers_as_upstream(validated):
    model, metrics, _ = validated
    assert model.metrics is metrics and isinstance(metrics, DetMetrics)
    assert metrics.fitness == pytest.approx(REF["fitness"], abs=1e-9)  # 0.951926: upstream 8.4's formula
    assert round(metrics.fitness, 6) == 0.951926
    assert isinstance(metrics.box.maps, np.ndarray) and metrics.box.maps[0] == pytest.approx(REF["maps"][0], abs=1e-9)
    np.testing.assert_allclose(metrics.maps, REF["maps"], atol=1e-9)
    assert metrics.box.map75 == pytest.approx(REF["map75"], abs=1e-9)
    assert metrics.results_dict == pytest.approx(REF["results_dict"], abs=1e-6)
    assert list(metrics.speed) == REF["speed_keys"]


def test_val_metrics_exports_as_upstream(validated):
    _, metrics, _ = validated
    assert metrics.to_csv() == REF["metrics_to_csv"]  # mAP75 column included
    assert metrics.to_json() == REF["metrics_to_json"]
    assert [row["mAP75"] for row in metrics.summary()] == [row["mAP75"] for row in json.loads(REF["metrics_to_json"])]
    if _importable("polars"):
        assert metrics.to_df().write_csv() == REF["metrics_to_csv"]  # upstream's to_csv is this
    else:
        with pytest.raises(ImportError, match="pip install polars"):
            metrics.to_df()


def test_val_curves_and_confusion_matrix_as_upstream(validated):
    _, metrics, _ = validated
    assert metrics.curves == REF["curves"]
    reference = np.load(HERE / "upstream_curves.npz")
    assert [[c[2], c[3]] for c in metrics.curves_results] == REF["curves_labels"]
    for i, (x, y, _, _) in enumerate(metrics.curves_results):
        np.testing.assert_allclose(x, reference["x"], atol=1e-12)
        np.testing.assert_allclose(y, reference[f"y{i}"], atol=1e-4)
    assert metrics.confusion_matrix.matrix.astype(int).tolist() == REF["confusion_matrix"]


def test_val_save_dir_json_ids_and_callbacks_as_upstream(validated):
    _, metrics, events = validated
    assert isinstance(metrics.save_dir, Path) and (metrics.save_dir / "predictions.json").is_file()
    predictions = json.loads((metrics.save_dir / "predictions.json").read_text())
    assert sorted({p["category_id"] for p in predictions}) == REF["category_ids"]  # class + 1
    assert events == REF["val_events"]


def test_val_plots_need_matplotlib_and_say_so_before_work(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    validator = DetectionValidator({"data": str(tmp_path / "missing.yaml"), "plots": True})
    with pytest.raises(ImportError, match="pip install matplotlib"):  # before the dataset is even read
        validator.run(str(SHAPES_PT))


@pytest.mark.skipif(not __import__("importlib").util.find_spec("matplotlib"), reason="matplotlib not installed")
def test_val_plots_write_upstreams_files(tmp_path):
    metrics = YOLO(SHAPES_PT).val(
        data=str(SHAPES / "shapes.yaml"), imgsz=320, batch=16, device="cpu", plots=True, project=str(tmp_path)
    )
    wanted = {n for n in REF["save_dir_files"] if n.endswith("curve.png") or n.startswith("confusion_matrix")}
    assert wanted <= {p.name for p in metrics.save_dir.iterdir()}


# ----------------------------------------------------------------------------------- YOLO object
def test_yolo_object_attributes_as_upstream():
    model = YOLO(SHAPES_PT)
    assert model.overrides == {**REF["overrides"], "data": model.overrides["data"], "model": str(SHAPES_PT)}
    assert model.overrides["data"]  # the training data path the checkpoint records
    assert model.predictor is None and model.metrics is None and model.transforms is None
    assert model.device == torch.device("cpu")
    assert model.task_map["detect"]["predictor"] is DetectionPredictor
    assert model.task_map["detect"]["validator"] is DetectionValidator
    assert set(model.callbacks) >= set(REF["predict_events"]) | set(REF["val_events"])
    layers, params, grads, gflops = model.info()
    assert [layers, params, grads] == REF["info_fused"][:3]
    assert gflops == pytest.approx(REF["info_fused"][3], abs=0.1)


@pytest.mark.parametrize("name", ["shapes_yolov8n.pt", "shapes_yolov8n_v8.1.44.pt", "yolov8n_random_upstream.pt"])
def test_overrides_per_checkpoint_as_upstream(name):
    """task, data, imgsz, single_cls from the checkpoint's training arguments (defaults where unrecorded)."""
    model = YOLO(MODELS / name)
    assert model.overrides == {**REF["overrides_by_checkpoint"][name], "model": str(MODELS / name)}


def test_predict_fires_upstreams_callbacks_and_keeps_the_predictor():
    model = YOLO(SHAPES_PT)
    events: list[str] = []
    for event in model.callbacks:
        model.add_callback(event, lambda _owner, e=event: events.append(e))
    results = model.predict(str(IMAGE), imgsz=320, device="cpu", verbose=False)
    assert events == REF["predict_events"]
    assert isinstance(model.predictor, DetectionPredictor) and model.predictor.results is not None
    seen: dict[str, bool] = {}  # upstream's order: batch start before the batch runs, its Results after
    model.add_callback("on_predict_batch_start", lambda p: seen.setdefault("start", p.results is None))
    model.add_callback("on_predict_postprocess_end", lambda p: seen.setdefault("post", len(p.results) == 1))
    model.predict(str(IMAGE), imgsz=320, device="cpu", verbose=False)
    assert seen == {"start": True, "post": True}
    np.testing.assert_allclose(results[0].boxes.data.numpy(), np.array(REF["boxes_data"]), atol=1e-3)
    with pytest.raises(ValueError, match="on_predict_end"):
        model.add_callback("on_predict_ends", print)


def test_to_half_fuse_and_load_change_the_model_used():
    model = YOLO(SHAPES_PT)
    before = model.predict(str(IMAGE), imgsz=320, device="cpu", verbose=False)[0].boxes.data
    assert model.fuse() is model and model.model.is_fused()
    assert model.half().model.model[0].conv.weight.dtype == torch.float16
    assert model.float().cpu().to("cpu").device == torch.device("cpu")
    with torch.no_grad():
        model.model.model[-1].cv3[0][2].bias.fill_(-20.0)  # kill the stride-8 class scores
    changed = model.predict(str(IMAGE), imgsz=320, device="cpu", verbose=False)[0].boxes.data
    assert not torch.equal(before, changed)  # predict uses the model as it is now, not a stale copy
    model.load(SHAPES_PT)
    again = model.predict(str(IMAGE), imgsz=320, device="cpu", verbose=False)[0].boxes.data
    torch.testing.assert_close(again, before)


def test_exported_models_refuse_pytorch_only_methods_in_one_line(torchscript_file, tmp_path):
    model = YOLO(torchscript_file)
    assert model.device is None
    for call in (model.fuse, model.half, lambda: model.save(tmp_path / "x.pt")):
        with pytest.raises(TypeError, match="exported model"):
            call()


@pytest.mark.parametrize("key", ["augment", "visualize", "embed"])
def test_unimplemented_predict_features_are_refused_with_the_reason(key):
    value = [2] if key == "embed" else True
    with pytest.raises(ConfigError, match=f"{key}.*not implemented"):
        YOLO(SHAPES_PT).predict(str(IMAGE), device="cpu", **{key: value})


# ----------------------------------------------------------------------------------- .pt out
def test_save_writes_upstreams_checkpoint_layout_and_reloads(tmp_path):
    model = YOLO(SHAPES_PT)
    model.fuse()
    out = Path(model.save(tmp_path / "saved.pt"))
    ckpt = torch.load(out, weights_only=False)
    assert list(ckpt) == REF["saved_keys"]
    # upstream's Conv.forward always calls self.bn: every Conv carries one (identity for fused ones)
    assert all("bn" in m._modules for m in ckpt["model"].modules() if isinstance(m, Conv))
    assert next(ckpt["model"].parameters()).dtype == torch.float16  # upstream's checkpoint precision
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    again = YOLO(out).predict(str(IMAGE), imgsz=320, device="cpu", verbose=False)[0].boxes.data
    np.testing.assert_allclose(again.numpy(), np.array(REF["boxes_data"]), atol=0.02)  # FP16 weights
    assert YOLO(out).overrides["imgsz"] == 320


# ----------------------------------------------------------------------------------- TorchScript
def test_torchscript_export_metadata_and_predict(torchscript_file):
    path = str(torchscript_file)
    assert torchscript_file.suffix == ".torchscript" and torchscript_file.with_suffix(".pt").is_file()
    extra = {"config.txt": ""}
    torch.jit.load(path, _extra_files=extra)
    config = json.loads(extra["config.txt"])
    assert list(config) == REF["torchscript_config_keys"] and config["args"] == REF["torchscript_args"]
    assert config["imgsz"] == [320, 320] and config["names"] == {str(k): v for k, v in NAMES.items()}
    ts = YOLO(path)
    assert {k: v for k, v in ts.overrides.items() if k != "model"} == REF["torchscript_overrides"]
    got = ts.predict(str(IMAGE), device="cpu", verbose=False)[0].boxes.data
    np.testing.assert_allclose(got.numpy(), np.array(REF["boxes_data"]), atol=1e-3)


# ----------------------------------------------------------------------------------- Results
def test_results_text_formats_as_upstream():
    r = upstream_result()
    assert r.verbose() == REF["verbose"]
    assert r.to_json() == REF["to_json"]
    assert r.to_json(normalize=True, decimals=3) == REF["to_json_normalized_3"]
    assert r.to_csv() == REF["to_csv"]
    empty = r.new()
    assert {"verbose": empty.verbose(), "to_json": empty.to_json(), "to_csv": empty.to_csv()} == REF["empty"]


def test_results_str_is_upstreams_attribute_dump():
    r = upstream_result()
    text = str(r)
    assert text.splitlines()[0] == REF["str_first_line"] and repr(r) == text
    keys = [line.split(":")[0] for line in text.splitlines()[2:] if line and not line.startswith(" ")]
    assert keys == REF["str_keys"]
    assert "boxes: ultralytics.engine.results.Boxes object" in text
    box_keys = [line.split(":")[0] for line in str(r.boxes).splitlines()[2:] if line and line[0].isalpha()]
    assert box_keys == REF["boxes_str_keys"]


def test_results_update_clips_to_the_image():
    r = upstream_result()
    r.update(boxes=torch.tensor([[-5.0, 10, 400, 50, 0.5, 1]]))
    assert isinstance(r.boxes, Boxes) and r.boxes.data.tolist() == [[0.0, 10.0, 320.0, 50.0, 0.5, 1.0]]
    with pytest.raises(ValueError, match="detection only"):
        r.update(masks=torch.zeros(1, 4, 4))


def test_results_save_crop_as_upstream(tmp_path):
    r = upstream_result()
    r.save_crop(tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.jpg")) == REF["crop_files"]
    for name, shape in REF["crop_shapes"].items():
        assert list(cv2.imread(str(tmp_path / name)).shape) == shape
    r.save_crop(tmp_path)  # nothing overwritten: upstream's -2 names
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.jpg")) == REF["crop_files_twice"]


def test_predict_save_crop_writes_crops_per_class(tmp_path):
    YOLO(SHAPES_PT).predict(str(IMAGE), imgsz=320, device="cpu", save_crop=True, project=str(tmp_path), verbose=False)
    crops = sorted(str(p.relative_to(tmp_path / "predict" / "crops")) for p in tmp_path.rglob("*.jpg"))
    assert crops == [f.replace("im.jpg", "00000.jpg") for f in REF["crop_files"]]


def test_show_is_headless_safe(monkeypatch, caplog):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    upstream_result().show()  # no window system: a warning, never an exception
    YOLO(SHAPES_PT).predict(str(IMAGE), imgsz=320, device="cpu", show=True, verbose=False)


def test_results_to_df_needs_polars_and_says_so():
    if _importable("polars"):
        assert upstream_result().to_df().shape == (4, 4)
    else:
        with pytest.raises(ImportError, match="pip install polars"):
            upstream_result().to_df()


def test_plot_label_at_the_right_edge_is_shifted_inside_as_upstream():
    """The tag of a box touching the right edge: same place as upstream's (compared through the tag colour)."""
    r = Results(
        cv2.imread(str(IMAGE)), path="x.jpg", names=NAMES, boxes=torch.tensor([[290.0, 2.0, 319.0, 40.0, 0.9, 3.0]])
    )
    ours, theirs = r.plot(), cv2.imread(str(HERE / "upstream_plot_right_edge.png"))
    colour = np.array([183, 223, 0])  # class 3's palette colour (BGR)
    ours_tag, theirs_tag = (np.argwhere((im == colour).all(2)) for im in (ours, theirs))
    assert ours_tag.min(0).tolist() == theirs_tag.min(0).tolist()
    assert ours_tag.max(0).tolist() == theirs_tag.max(0).tolist()
    assert (ours.shape[1] - 1) in ours_tag[:, 1]  # the tag reaches the edge instead of being cut off
    np.testing.assert_array_equal(
        ours, theirs
    )  # and the whole drawing (text colour too) is upstream's, pixel for pixel


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _copy(src: Path, folder: Path) -> Path:
    dst = folder / src.name
    shutil.copy(src, dst)
    os.chmod(dst, 0o644)
    return dst


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_results_takes_upstreams_positional_signature():
    """Results(orig_img, path, names, boxes, masks, probs, keypoints, obb, speed): speed is the 9th argument."""
    speed = {"preprocess": 1.0, "inference": 2.0, "postprocess": 3.0}
    r = Results(
        cv2.imread(str(IMAGE)), str(IMAGE), NAMES, torch.tensor(REF["boxes_data"]), None, None, None, None, speed
    )
    assert r.speed == speed and len(r) == 4
    with pytest.raises(ValueError, match="detection only"):
        Results(r.orig_img, str(IMAGE), NAMES, None, torch.zeros(1, 4, 4))


def test_plot_of_a_prediction_is_upstreams_pixel_for_pixel():
    """Boxes, tags, line width, palette and text colours: upstream's plot of the same detections."""
    theirs = cv2.imread(str(HERE / "upstream_plot_00000.png"))
    np.testing.assert_array_equal(upstream_result().plot(), theirs)


def test_save_that_fails_leaves_the_previous_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "mine.pt"
    target.write_bytes(b"previous checkpoint")

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        YOLO(SHAPES_PT).save(target)
    assert target.read_bytes() == b"previous checkpoint" and [p.name for p in tmp_path.iterdir()] == ["mine.pt"]
