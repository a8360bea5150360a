"""Issue 14 items 7 and 8 and issue 18's config rows: bad values refused in one line, upstream's keys
accepted (the ones that do nothing here say why), cfg=yaml, 'key = value', mode=, the special
commands, upstream 8.4's run-folder names and a version that is not an upstream release."""

from __future__ import annotations

import logging

import pytest
from packaging.version import Version

from tests.cli.conftest import IMAGE
from ultralytics import __version__
from ultralytics.cfg import ConfigError, get_cfg
from ultralytics.engine.model import YOLO
from ultralytics.utils import DEFAULT_CFG_PATH
from ultralytics.utils.files import increment_path

# The keys of upstream Ultralytics 8.4.190's cfg/default.yaml (113), observed on the installed oracle.
UPSTREAM_KEYS = """task mode model data epochs time patience batch imgsz save save_period cache device workers project
name exist_ok pretrained cls_remap optimizer verbose seed deterministic single_cls rect cos_lr close_mosaic resume amp
fraction profile freeze multi_scale compile channels_last overlap_mask mask_ratio dropout val split save_json conf iou
max_det quantize dnn plots nms source vid_stride stream_buffer visualize augment agnostic_nms classes retina_masks
embed show save_frames save_txt save_conf save_crop show_labels show_conf show_boxes line_width format optimize dynamic
simplify opset workspace lr0 lrf momentum weight_decay warmup_epochs warmup_momentum warmup_bias_lr distill_model dis
box cls cls_pw dfl pose kobj rle angle dlog dgrad dlam nbs hsv_h hsv_s hsv_v degrees translate scale shear perspective
flipud fliplr bgr mosaic mixup cutmix copy_paste copy_paste_mode auto_augment erasing cfg tracker""".split()


@pytest.fixture
def warnings_logged(caplog):
    logger = logging.getLogger("ultralytics")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture
def recorded_predict(monkeypatch):
    """Replace YOLO.predict by a recorder: what the CLI hands to the API, without running a model."""
    calls: list[dict] = []
    monkeypatch.setattr(YOLO, "predict", lambda self, *a, **kw: calls.append(kw) or [])
    return calls


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("max_det", -1, "'max_det' must be >= 1"),
        ("max_det", 0, "'max_det' must be >= 1"),
        ("batch", 0, "'batch' must be >= 1"),
        ("batch", -1, "AutoBatch is a training feature"),
        ("vid_stride", 0, "'vid_stride' must be >= 1"),
        ("classes", [1.7], "class id"),
        ("classes", "abc", "class id"),
        ("classes", [-1], "class id"),
        ("classes", True, "class id"),
    ],
)
def test_bad_values_are_refused(key, value, message, cli):
    with pytest.raises(ConfigError, match=message):
        get_cfg({key: value})
    run = cli("predict", f"{key}={value}".replace(" ", ""))
    assert run.code == 2 and len(run.err.strip().splitlines()) == 1 and message.split("'")[-1] in run.err


def test_class_ids_are_normalised():
    assert get_cfg({"classes": 2}).classes == [2]
    assert get_cfg({"classes": [0, 2.0]}).classes == [0, 2]
    assert get_cfg({"classes": "0,2"}).classes == [0, 2]


def test_every_upstream_key_is_accepted(warnings_logged):
    assert len(UPSTREAM_KEYS) == 113
    refused = {"augment", "visualize", "embed", "single_cls", "save_frames"}
    for key in UPSTREAM_KEYS:
        get_cfg({key: None} if key in refused else {key: get_cfg().get(key)})  # upstream's key, default value


def test_inert_upstream_keys_say_why_in_one_line(warnings_logged, monkeypatch):
    monkeypatch.setattr("ultralytics.cfg._explained", set())  # explained once per process: start afresh
    args = get_cfg({"epochs": 3, "lr0": 0.02, "tracker": "bytetrack.yaml", "dnn": True})
    assert args.epochs == 3
    text = warnings_logged.text
    for key in ("epochs=3", "lr0=0.02", "tracker=bytetrack.yaml", "dnn=True"):
        assert f"'{key}' has no effect here" in text
    assert "does not train" in text and "tracking is not part of this package" in text


@pytest.mark.parametrize("key, value", [("augment", True), ("visualize", True), ("embed", [1, 2])])
def test_unimplemented_features_are_refused_with_the_reason(key, value):
    with pytest.raises(ConfigError, match="not implemented"):
        get_cfg({key: value})


def test_cfg_yaml_is_a_file_of_overrides_and_the_command_line_wins(cli, tmp_path, recorded_predict, weights):
    (tmp_path / "my.yaml").write_text("imgsz: 160\nconf: 0.9\n")
    assert cli("predict", "cfg=my.yaml", f"model={weights}", f"source={IMAGE}").code == 0
    assert cli("predict", "imgsz=320", "cfg=my.yaml", f"model={weights}", f"source={IMAGE}").code == 0
    assert recorded_predict[0]["imgsz"] == 160 and recorded_predict[0]["conf"] == 0.9
    assert recorded_predict[1]["imgsz"] == 320 and recorded_predict[1]["conf"] == 0.9
    assert get_cfg({"cfg": str(tmp_path / "my.yaml"), "conf": 0.3}).imgsz == 160  # the API reads it too
    missing = cli("predict", "cfg=missing.yaml")
    assert missing.code == 2 and "copy-cfg" in missing.err


def test_spaces_around_equals_and_mode_key(cli, recorded_predict, weights):
    for argv in (["predict", "conf", "=", "0.5"], ["predict", "conf=", "0.5"], ["predict", "conf", "=0.5"]):
        assert cli(*argv, f"model={weights}", f"source={IMAGE}").code == 0
    assert cli("mode=predict", "conf=0.5", f"model={weights}", f"source={IMAGE}").code == 0
    assert cli("conf=0.5", f"model={weights}", f"source={IMAGE}").code == 0  # no mode: predict, as default.yaml says
    assert [c["conf"] for c in recorded_predict] == [0.5] * 5


def test_checks_reports_the_stack_and_exits_zero(cli):
    run = cli("checks")
    assert run.code == 0
    for label in ("Python", "torch", "CUDA", "onnx", "onnxruntime", "TensorRT"):
        assert any(line.startswith(label + " ") for line in run.out.splitlines()), label


def test_checks_tensorrt_dispatches_or_says_it_is_absent(cli, monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "ultralytics.engine.tensorrt_check", None)  # a build without it
    run = cli("checks", "tensorrt")
    assert run.code == 2 and "not available in this build" in run.out
    seen = []
    fake = types.ModuleType("ultralytics.engine.tensorrt_check")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "ultralytics.engine.tensorrt_check", fake)
    assert cli("checks", "tensorrt", "model=x.engine").code == 0 and seen == [["model=x.engine"]]


def test_settings_cfg_and_copy_cfg(cli, tmp_path):
    listed = cli("settings")
    assert listed.code == 0
    for name in ("ULTRALYTICS_GPU_CHUNK", "ULTRALYTICS_DECODE_WORKERS", "ULTRALYTICS_GPU_JPEG_CHROMA", "YOLO_VERBOSE"):
        assert name in listed.out  # every environment switch of utils/settings.py, not a hand-kept subset
    changed = cli("settings", "reset")  # upstream resets its settings file; there is none here
    assert changed.code == 2 and "no settings file" in changed.out
    shown = cli("cfg")
    assert shown.code == 0 and DEFAULT_CFG_PATH.read_text() in shown.out
    assert cli("copy-cfg").code == 0
    copy = tmp_path / "default_copy.yaml"
    assert copy.read_text() == DEFAULT_CFG_PATH.read_text()
    copy.write_text("mine")
    assert cli("copy-cfg").code == 0  # never overwrites the user's copy
    assert copy.read_text() == "mine" and (tmp_path / "default_copy-2.yaml").is_file()


def test_run_folders_are_numbered_as_upstream_8_4(tmp_path):
    run = tmp_path / "predict"
    assert increment_path(run) == run
    run.mkdir()
    assert increment_path(run).name == "predict-2"
    (tmp_path / "predict-2").mkdir()
    assert increment_path(run).name == "predict-3"
    (tmp_path / "results.txt").write_text("x")
    assert increment_path(tmp_path / "results.txt").name == "results-2.txt"


def test_version_is_not_an_upstream_release():
    version = Version(__version__)
    assert version.local is not None  # upstream never publishes local versions (PyPI refuses them)
    assert version.release[:2] == (8, 4)  # the upstream API level it mirrors: `>=8.4` checks still pass
