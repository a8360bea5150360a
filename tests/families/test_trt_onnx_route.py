"""YOLO11 and YOLO26 through the ONNX → TensorRT route (stand-in, every recorded surface): FP32, FP16,
dynamic, INT8, both engine layouts, YOLO26's end-to-end head, and nms=True (INMSLayer) for YOLO11."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tests.conftest import FIXTURES
from ultralytics.export.engine_file import read_engine_file
from ultralytics.nn.checkpoint import load_checkpoint
from ultralytics.trt.device import HOST_MEMORY_ENV

FAMILIES = ["shapes_yolo11n", "shapes_yolo26n"]
IMGSZ = (320, 320)


@pytest.fixture(autouse=True)
def host_memory(monkeypatch):
    monkeypatch.setenv(HOST_MEMORY_ENV, "1")


@pytest.fixture(scope="module")
def models():
    return {name: load_checkpoint(FIXTURES / "models" / f"{name}.pt")[0].float().eval() for name in FAMILIES}


@pytest.fixture(scope="module")
def images():
    """Upstream's own letterboxed inputs from the raw-output references (320x320 ones)."""
    ref = np.load(FIXTURES / "reference" / "shapes_yolo11n_raw_320.npz")
    return torch.from_numpy(np.concatenate([ref["input_0"], ref["input_1"]])).float()


@pytest.fixture(scope="module")
def onnx_files(models, tmp_path_factory):
    """One ONNX per (family, variant), exported once and reused by every TensorRT version."""
    from ultralytics.export.metadata import build_metadata
    from ultralytics.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("family_onnx")
    cache = {}

    def get(name: str, variant: str):
        """fp32 and dynamic share one dynamic export; fp16 is our converter applied to it (as export_onnx does)."""
        key = (name, "fp16" if variant == "fp16" else "end2end" if variant == "end2end" else "dynamic")
        if key not in cache:
            if key[1] == "fp16":
                import onnx

                from ultralytics.export.onnx import convert_to_fp16

                cache[key] = out / f"{name}_fp16.onnx"
                onnx.save(convert_to_fp16(onnx.load(str(get(name, "dynamic")))), str(cache[key]))
                return cache[key]
            model = copy.deepcopy(models[name])
            if key[1] == "end2end":
                model.select_head(True, max_det=300)
            kw = dict(dynamic=True, batch=2) if key[1] == "dynamic" else {}
            meta = build_metadata(model, imgsz=IMGSZ, batch=kw.get("batch", 1), args={})
            cache[key] = export_onnx(model, out / f"{name}_{key[1]}.onnx", imgsz=IMGSZ, metadata=meta, opset=17, **kw)
        return cache[key]

    return get


def engine(models, onnx_files, tmp_path, name: str, variant: str, **overrides):
    from ultralytics.cfg import get_cfg, resolve_precision
    from ultralytics.export.tensorrt import export_engine

    dynamic = {"dynamic": True, "batch": 2}  # the fp32 and fp16 graphs are dynamic too (one export serves all)
    settings = {"fp32": dynamic, "fp16": {"half": True, **dynamic}, "dynamic": dynamic, "end2end": {"nms": False}}
    cfg = get_cfg(
        {"format": "engine", "imgsz": list(IMGSZ), "verbose": False, **settings.get(variant, {}), **overrides}
    )
    cfg.precision = resolve_precision(cfg.half, cfg.int8, cfg.quantize)
    model = models[name]
    if variant == "end2end":  # as YOLO.export does for nms=False: the one-to-one head, whose metadata says end2end
        model = copy.deepcopy(model)
        model.select_head(True, max_det=300)
    return export_engine(model, tmp_path / f"{name}_{variant}.engine", cfg, onnx_file=onnx_files(name, variant))


def backend(path):
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(path, device=torch.device("cpu"))


def torch_raw(model, images):
    with torch.no_grad():
        out = model(images)
    return out[0] if isinstance(out, (list, tuple)) else out


@pytest.mark.parametrize("name", FAMILIES)
def test_fp32_engine_raw_output_matches_torch(trt, models, onnx_files, tmp_path, images, name):
    b = backend(engine(models, onnx_files, tmp_path, name, "fp32"))
    for batch in (images[:1], images):  # batch 1 and 2 through one engine
        out, ref = b.forward(batch).clone(), torch_raw(models[name], batch)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("version", ["8.6.1", "11.4.0.106"])
@pytest.mark.parametrize("name", FAMILIES)
def test_fp16_and_dynamic_engines(install_tensorrt_standin, version, models, onnx_files, tmp_path, images, name):
    install_tensorrt_standin(version)
    ref = torch_raw(models[name], images)
    b16 = backend(engine(models, onnx_files, tmp_path, name, "fp16"))
    assert b16.fp16 and b16.output.dtype == torch.float16
    out16 = b16.forward(images.half()).float()
    boxes, scores = slice(0, 4), slice(4, None)
    assert (out16[:, boxes] - ref[:, boxes]).abs().max() < 2.0  # FP16 body: pixels, as YOLOv8's FP16 engines
    assert (out16[:, scores] - ref[:, scores]).abs().max() < 5e-3
    dyn = backend(engine(models, onnx_files, tmp_path, name, "dynamic"))
    assert dyn.dynamic
    torch.testing.assert_close(dyn.forward(images).clone(), ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("version", ["10.16.1.11", "11.4.0.106"])  # calibrator / Q/DQ INT8 routes
def test_int8_engine_builds_and_runs(install_tensorrt_standin, version, models, onnx_files, tmp_path, images):
    install_tensorrt_standin(version)
    int8 = {"int8": True, "data": str(FIXTURES / "shapes" / "shapes.yaml"), "split": "train", "fraction": 0.05}
    path = engine(models, onnx_files, tmp_path, "shapes_yolo11n", "fp32", **int8)
    assert read_engine_file(path).metadata["precision"] == "int8"
    out = backend(path).forward(images[:1])
    assert out.shape == (1, 8, 2100) and torch.isfinite(out).all()


def test_yolo26_end2end_engine(trt, models, onnx_files, tmp_path, images):
    layout = "plan" if trt.__version__.startswith("10.16") else "ultralytics"  # both layouts, one build a version
    path = engine(models, onnx_files, tmp_path, "shapes_yolo26n", "end2end", engine_layout=layout)
    meta = read_engine_file(path).metadata
    assert meta["end2end"] is True
    b = backend(path)
    assert b.end2end
    model = copy.deepcopy(models["shapes_yolo26n"])
    model.select_head(True, max_det=300)
    for image in images.split(1):
        out, ref = b.forward(image).clone()[0], torch_raw(model, image)[0]
        n = int((ref[:, 4] > 0.05).sum())  # below that, near-equal scores may come in another order
        assert n > 0 and int((out[:, 4] > 0.05).sum()) == n
        torch.testing.assert_close(out[:n, :5], ref[:n, :5], rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(out[:n, 5], ref[:n, 5])


@pytest.mark.parametrize(("name", "builder"), [("shapes_yolo11n", "onnx"), ("shapes_yolo26n", "network")])
def test_nms_engines_equal_the_normal_path(install_tensorrt_standin, models, onnx_files, tmp_path, images, name,
                                           builder):  # fmt: skip
    """nms=True (INMSLayer) for the new families: YOLO11 through the parser, YOLO26's one-to-many head
    through add_nms."""
    import onnx

    from tests.nms.conftest import assert_same_detections, normal_path
    from ultralytics.cfg import get_cfg, resolve_precision
    from ultralytics.export.nms import NmsSettings, append_nms
    from ultralytics.export.tensorrt import export_engine

    install_tensorrt_standin("11.4.0.106")
    dynamic = {"dynamic": True, "batch": 2} if builder == "onnx" else {}  # the shared ONNX is dynamic
    cfg = get_cfg(
        {"format": "engine", "imgsz": list(IMGSZ), "verbose": False, "nms": True, "builder": builder, **dynamic}
    )
    cfg.precision = resolve_precision(cfg.half, cfg.int8, cfg.quantize)
    onnx_file = None
    if builder == "onnx":
        onnx_file = tmp_path / "nms.onnx"
        onnx.save(append_nms(onnx.load(onnx_files(name, "fp32")), NmsSettings()), str(onnx_file))
    b = backend(export_engine(models[name], tmp_path / f"{name}.engine", cfg, onnx_file=onnx_file))
    assert b.end2end
    for image in images.split(1):
        expected = normal_path(torch_raw(models[name], image))
        assert_same_detections(b.forward(image).clone(), expected, box_tol=1e-3, score_tol=1e-4)
