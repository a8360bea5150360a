"""Export arguments and the capability modules: checked before any slow work, per TensorRT version."""

from __future__ import annotations

import sys

import pytest

from ultralytics.cfg import get_cfg
from ultralytics.trt.config import timing_cache_path
from ultralytics.trt.device import HOST_MEMORY_ENV
from ultralytics.trt.network import always_strongly_typed, network_flags
from ultralytics.trt.precision import enable_fp16
from ultralytics.trt.profile import fill_dynamic, resolve_profile


def export(model, tmp_path, **overrides):
    from ultralytics.export.tensorrt import export_engine

    cfg = get_cfg({"format": "engine", "imgsz": [320, 320], "verbose": False, **overrides})
    return export_engine(model, tmp_path / "m.engine", cfg)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"fp32_io": True}, "needs half=True"),
        ({"min_shape": [1, 3, 32, 32]}, "add dynamic=True"),
        ({"engine_layout": "trtexec"}, "engine_layout='trtexec' is not valid"),
        ({"dynamic": True, "min_shape": [4, 3, 64, 64], "max_shape": [2, 3, 640, 640]}, "min_shape <= opt_shape"),
        ({"dynamic": True, "max_shape": [4, 3, 650, 640]}, "multiples of the stride"),
        ({"dynamic": True, "opt_shape": [1, 1, 320, 320]}, "has 1 channels but the model takes 3"),
        ({"dynamic": True, "max_shape": "1,3,640"}, "four positive integers"),
        ({"opt_level": 7}, "from 0 to 5"),
        ({"workspace": -1}, "must be > 0 GiB"),
    ],
)
def test_bad_arguments_fail_before_any_work(detection_model, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        export(detection_model, tmp_path, **overrides)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_missing_tensorrt_gives_install_hint(detection_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # what an uninstalled package looks like to import
    with pytest.raises(ModuleNotFoundError, match="pip install tensorrt"):
        export(detection_model, tmp_path)


def test_cpu_build_without_cuda_is_refused(trt, detection_model, tmp_path, monkeypatch):
    monkeypatch.delenv(HOST_MEMORY_ENV)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        export(detection_model, tmp_path)


def test_default_profile_is_upstreams_rule():
    assert resolve_profile(8, 3, (320, 480)) == ((1, 3, 32, 32), (8, 3, 320, 480), (8, 3, 640, 960))
    custom = resolve_profile(4, 3, (320, 320), min_shape="1,3,64,64", max_shape=[4, 3, 1280, 1280])
    assert custom == ((1, 3, 64, 64), (4, 3, 320, 320), (4, 3, 1280, 1280))
    assert fill_dynamic((-1, 3, -1, 640), (2, 3, 320, 999)) == (2, 3, 320, 640)  # fixed dims stay


def test_network_flags_follow_capabilities(trt):
    flags = network_flags(trt)
    if hasattr(trt.Builder, "max_batch_size"):  # 8.x: implicit batch still exists
        assert flags == 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        assert trt.__version__.startswith("8.")
    else:
        assert flags == 0
    assert always_strongly_typed(trt) == trt.__version__.startswith("11.")


def test_fp16_flag_only_where_weakly_typed(trt):
    from ultralytics.trt.logger import make_logger

    builder = trt.Builder(make_logger(trt))
    config = builder.create_builder_config()
    if enable_fp16(trt, config):
        assert config.get_flag(trt.BuilderFlag.FP16) and not trt.__version__.startswith("11.")
    else:
        assert trt.__version__.startswith("11.") and not hasattr(trt.BuilderFlag, "FP16")


def test_timing_cache_location(tmp_path):
    engine = tmp_path / "yolov8n.engine"
    assert timing_cache_path(None, engine) == tmp_path / "yolov8n.timing.cache"
    assert timing_cache_path(False, engine) is None and timing_cache_path("off", engine) is None
    assert timing_cache_path("/tmp/shared.cache", engine).name == "shared.cache"


@pytest.mark.parametrize("requested, parsed", [(None, 17), (13, 13)])
def test_intermediate_onnx_opset_is_one_every_parser_reads(
    trt, detection_model, tmp_path, monkeypatch, requested, parsed
):
    """TensorRT 8.6's parser reads opsets up to 17: the engine route defaults to it; opset= still wins."""
    import onnx

    from ultralytics.export import onnx as onnx_export

    seen = []
    real_export = onnx_export.export_onnx

    def recording_export(*args, **kwargs):
        path = real_export(*args, **kwargs)
        seen.append(next(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")))
        return path

    monkeypatch.setattr(onnx_export, "export_onnx", recording_export)
    export(detection_model, tmp_path, opset=requested)
    assert seen == [parsed]
