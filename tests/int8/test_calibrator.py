"""The TensorRT <= 10 calibrator and head-layer precision pins, driven by the stand-in's builder.

The stand-in runs TensorRT's calibration protocol (read cache → get_batch_size → get_batch until None →
write cache) but does not model INT8 arithmetic, so accuracy is measured on the Q/DQ path instead
(test_quantize.py, docs/int8.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MODELS, SHAPES, TRT_VERSIONS
from tests.int8.tiny import tiny_model
from ultralytics.export import calibration
from ultralytics.export.calibration import CalibrationSet
from ultralytics.export.calibrator import constrain_sensitive_layers, make_int8_calibrator
from ultralytics.export.quantize import quantize_onnx
from ultralytics.trt.device import HOST_MEMORY_ENV
from ultralytics.trt.logger import make_logger
from ultralytics.trt.network import network_flags

# Versions with calibrators: the oldest and newest here (10.0.1 and 10.13 appear in single-version tests).
WEAKLY_TYPED = ["8.6.1", "10.16.1.11"]
STRONGLY_TYPED = [v for v in TRT_VERSIONS if v.startswith("11.")]


@pytest.fixture(autouse=True)
def host_memory(monkeypatch):
    """The stand-in reads host pointers: the documented test hook lets the calibrator hand out CPU tensors."""
    monkeypatch.setenv(HOST_MEMORY_ENV, "1")


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "calib"
    folder.mkdir()
    for f in sorted((SHAPES / "calib" / "images").glob("*.jpg"))[:6]:
        shutil.copy(f, folder)
    return folder


def parse(trt, onnx_file: Path):
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_file.read_bytes()), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    return builder, network, logger


def build_int8(trt, onnx_file: Path, calibrator, fp16: bool = True) -> bytes:
    builder, network, logger = parse(trt, onnx_file)
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.INT8)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    config.int8_calibrator = calibrator
    constrain_sensitive_layers(trt, network, config)
    plan = builder.build_serialized_network(network, config)
    assert plan is not None, logger.tail()
    return bytes(memoryview(plan))


@pytest.mark.parametrize("version", WEAKLY_TYPED)
def test_calibration_runs_then_the_cache_is_reused_without_reading_images(
    version, install_tensorrt_standin, tmp_path, image_folder, monkeypatch
):
    trt = install_tensorrt_standin(version)
    model, _, _ = tiny_model(tmp_path / "tiny.onnx")
    cache = tmp_path / "tiny.cache"
    calibrator = make_int8_calibrator(trt, CalibrationSet(image_folder, imgsz=32, batch=2), cache, model=model)
    assert isinstance(calibrator, trt.IInt8MinMaxCalibrator)  # the measured default (docs/int8.md)
    build_int8(trt, model, calibrator)
    assert calibrator.batches_served == 3 and not calibrator.cache_reused
    assert cache.read_bytes().startswith(b"TRT-STANDIN-")  # TensorRT's bytes, untouched
    record = json.loads(cache.with_name("tiny.cache.json").read_text())
    assert record["images"] == 6 and record["method"] == "minmax" and record["trusted"]

    def no_reading(*args, **kwargs):
        raise AssertionError("the cached build must not read calibration images")

    monkeypatch.setattr(calibration.cv2, "imread", no_reading)
    again = make_int8_calibrator(trt, CalibrationSet(image_folder, imgsz=32, batch=2), cache, model=model)
    build_int8(trt, model, again)
    assert again.cache_reused and again.batches_served == 0


def test_cache_is_invalidated_by_model_imgsz_or_method(install_tensorrt_standin, tmp_path, image_folder):
    trt = install_tensorrt_standin("10.13.3.9")
    model, _, _ = tiny_model(tmp_path / "tiny.onnx")
    cache = tmp_path / "tiny.cache"
    build_int8(
        trt, model, make_int8_calibrator(trt, CalibrationSet(image_folder, imgsz=32, batch=2), cache, model=model)
    )

    other = tmp_path / "other.onnx"  # same graph, one weight changed: a retrained model
    import onnx
    from onnx import numpy_helper

    changed = onnx.load(str(model))
    weight = numpy_helper.to_array(changed.graph.initializer[0]).copy()
    weight.flat[0] += 1.0
    changed.graph.initializer[0].CopyFrom(numpy_helper.from_array(weight, changed.graph.initializer[0].name))
    onnx.save(changed, str(other))
    for calib, onnx_file, method in (
        (CalibrationSet(image_folder, imgsz=32, batch=2), other, "minmax"),
        (CalibrationSet(image_folder, imgsz=64, batch=2), model, "minmax"),
        (CalibrationSet(image_folder, imgsz=32, batch=2), model, "entropy"),
    ):
        calibrator = make_int8_calibrator(trt, calib, cache, method, model=model if onnx_file == model else other)
        assert calibrator.read_calibration_cache() is None
    # Only the ONNX's metadata differs (export date): still the same model, the cache is reused.
    relabelled = onnx.load(str(model))
    relabelled.metadata_props.add(key="date", value="2030-01-01")
    onnx.save(relabelled, str(tmp_path / "relabelled.onnx"))
    same = make_int8_calibrator(
        trt, CalibrationSet(image_folder, imgsz=32, batch=2), cache, model=tmp_path / "relabelled.onnx"
    )
    assert same.read_calibration_cache() == cache.read_bytes()


def test_cache_without_a_model_fingerprint_is_never_trusted(install_tensorrt_standin, tmp_path, image_folder):
    trt = install_tensorrt_standin("8.6.1")
    model, _, _ = tiny_model(tmp_path / "tiny.onnx")
    cache = tmp_path / "tiny.cache"
    first = make_int8_calibrator(trt, CalibrationSet(image_folder, imgsz=32, batch=2), cache)
    build_int8(trt, model, first)
    assert cache.is_file()
    second = make_int8_calibrator(trt, CalibrationSet(image_folder, imgsz=32, batch=2), cache)
    build_int8(trt, model, second)
    assert not second.cache_reused and second.batches_served == 3


def test_methods_and_their_errors(install_tensorrt_standin, tmp_path, image_folder):
    trt = install_tensorrt_standin("10.0.1")
    calib = CalibrationSet(image_folder, imgsz=32, batch=2)
    entropy = make_int8_calibrator(trt, calib, tmp_path / "c.cache", "entropy")
    assert isinstance(entropy, trt.IInt8EntropyCalibrator2)
    assert entropy.get_algorithm() == trt.CalibrationAlgoType.ENTROPY_CALIBRATION_2
    with pytest.raises(ValueError, match="'percentile' exists only for Q/DQ"):
        make_int8_calibrator(trt, calib, tmp_path / "c.cache", "percentile")
    with pytest.raises(ValueError, match="use 'minmax' or 'entropy'"):
        make_int8_calibrator(trt, calib, tmp_path / "c.cache", "kl")


@pytest.mark.parametrize("version", STRONGLY_TYPED)
def test_tensorrt_11_has_no_calibrator_and_no_precision_pins(version, install_tensorrt_standin, tmp_path, image_folder):
    trt = install_tensorrt_standin(version)
    assert not hasattr(trt, "IInt8MinMaxCalibrator")
    with pytest.raises(RuntimeError, match="TensorRT 11 removed calibration.*quantize_onnx"):
        make_int8_calibrator(trt, CalibrationSet(image_folder, imgsz=32, batch=2), tmp_path / "c.cache")
    builder, network, _ = parse(trt, MODELS / "shapes_yolov8n_upstream.onnx")
    assert constrain_sensitive_layers(trt, network, builder.create_builder_config()) == []


@pytest.mark.parametrize("version", STRONGLY_TYPED)
def test_tensorrt_11_builds_the_qdq_onnx(version, install_tensorrt_standin, tmp_path, image_folder):
    """On 11.x the engine comes from the Q/DQ ONNX: the parser takes it and the build needs no INT8 flag."""
    trt = install_tensorrt_standin(version)
    model, _, _ = tiny_model(tmp_path / "tiny.onnx")
    qdq = quantize_onnx(model, tmp_path / "tiny.int8.onnx", CalibrationSet(image_folder, imgsz=32, batch=2))
    builder, network, logger = parse(trt, qdq)
    names = [network.get_layer(i).name for i in range(network.num_layers)]
    assert any("QuantizeLinear" in n for n in names) and any("Dequant" in n for n in names)
    plan = builder.build_serialized_network(network, builder.create_builder_config())
    assert plan is not None, logger.tail()


@pytest.mark.parametrize(("version", "fp16"), [("8.6.1", True), ("10.16.1.11", False)])
def test_head_layers_are_pinned_out_of_int8(version, fp16, install_tensorrt_standin):
    trt = install_tensorrt_standin(version)
    builder, network, _ = parse(trt, MODELS / "shapes_yolov8n_upstream.onnx")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    pinned = set(constrain_sensitive_layers(trt, network, config))
    layers = {network.get_layer(i).name: network.get_layer(i) for i in range(network.num_layers)}
    heads = {n for n in layers if n.endswith(".2/Conv") or n == "/model.22/dfl/conv/Conv"}
    assert len(heads) == 7 and heads <= pinned
    head_type = trt.DataType.HALF if fp16 else trt.DataType.FLOAT
    assert all(layers[n].precision == head_type for n in heads)
    decode = pinned - heads  # everything after the prediction convs: DFL softmax, decode, class sigmoid
    assert {"/model.22/dfl/Softmax", "/model.22/Sigmoid", "/model.22/Concat_3"} <= decode
    assert all(layers[n].precision == trt.DataType.FLOAT for n in decode)
    assert not layers["/model.22/cv2.0/cv2.0.1/conv/Conv"].precision_is_set  # features stay free for INT8
    assert all(not layers[n].precision_is_set for n in layers if n.startswith("/model.2/"))
    assert config.get_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)


def test_calibrator_batches_are_the_calibration_set(install_tensorrt_standin, tmp_path, image_folder):
    """What TensorRT reads at the pointer is exactly the letterboxed batch (host memory under the hook)."""
    import ctypes

    trt = install_tensorrt_standin("10.16.1.11")
    calib = CalibrationSet(image_folder, imgsz=32, batch=2)
    calibrator = make_int8_calibrator(trt, calib, tmp_path / "c.cache")
    assert calibrator.get_batch_size() == 2
    for expected in calib.batches():
        (pointer,) = calibrator.get_batch(["images"])
        got = np.ctypeslib.as_array((ctypes.c_float * expected.size).from_address(pointer)).reshape(expected.shape)
        np.testing.assert_array_equal(got, expected)
    assert calibrator.get_batch(["images"]) is None
    with pytest.raises(ValueError, match="one image input"):
        make_int8_calibrator(trt, calib, tmp_path / "c.cache").get_batch(["a", "b"])
