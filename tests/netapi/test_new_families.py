"""The network-API route for YOLO11 and YOLO26 (C3k2, C3k, C2PSA/PSABlock attention as matmul + softmax,
DWConv, reg_max 1, the one-to-one head): raw output vs PyTorch through the TensorRT stand-in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.netapi.conftest import VERSIONS
from tests.netapi.test_network_builder import MODELS, assert_matches_torch, build_engine, run, shapes_images
from ultralytics.nn.checkpoint import load_checkpoint

FAMILIES = ["shapes_yolo11n", "shapes_yolo26n"]


@pytest.fixture(scope="module")
def family_models():
    return {name: load_checkpoint(MODELS / f"{name}.pt")[0].float().eval() for name in FAMILIES}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", FAMILIES)
def test_static_raw_output_matches_torch(install_tensorrt_standin, version, name, family_models):
    trt = install_tensorrt_standin(version)
    model = family_models[name]
    assert {"C3k2", "C2PSA"} <= {type(m).__name__ for m in model.model}  # the new modules really are in there
    imgsz = (160, 192)
    images = shapes_images(2, imgsz)
    assert_matches_torch(model, images, run(build_engine(trt, model, imgsz=imgsz, batch=2, dynamic=False), images))


@pytest.mark.parametrize("name", FAMILIES)
def test_dynamic_sizes_through_one_engine(install_tensorrt_standin, name, family_models):
    """Attention reshapes to the feature map's run-time shape: one engine serves several sizes."""
    trt = install_tensorrt_standin("10.16.1.11")
    model = family_models[name]
    engine = build_engine(trt, model, imgsz=(160, 160), batch=2, dynamic=True, max_imgsz=(256, 256))
    for size in ((160, 160), (96, 224)):
        images = shapes_images(2, size)
        assert_matches_torch(model, images, run(engine, images))


@pytest.mark.parametrize("version", ["8.6.1", "11.4.0.106"])
def test_yolo26_one_to_one_head_matches_torch(install_tensorrt_standin, version, family_models):
    """YOLO26's NMS-free branch: (B, 300, 6) detections from TopK + per-image gathers, as Detect.top_k."""
    import copy

    trt = install_tensorrt_standin(version)
    model = copy.deepcopy(family_models["shapes_yolo26n"])
    model.select_head(True, max_det=300)
    imgsz = (320, 320)
    images = shapes_images(2, imgsz)
    engine = build_engine_end2end(trt, model, imgsz)
    out = run_end2end(engine, images)
    with torch.no_grad():
        ref = model(torch.from_numpy(images)).numpy()
    assert out.shape == ref.shape == (2, 300, 6)
    for got, want in zip(out, ref):
        n = int((want[:, 4] > 0.05).sum())  # below that, near-equal scores may come in another order
        assert n > 0 and int((got[:, 4] > 0.05).sum()) == n
        np.testing.assert_allclose(got[:n, :5], want[:n, :5], rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(got[:n, 5], want[:n, 5])


def build_engine_end2end(trt, model, imgsz):
    from ultralytics.export.network_builder import populate_network
    from ultralytics.trt.network import network_flags

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    writer = populate_network(trt, network, model, imgsz=imgsz, batch=2, dynamic=False)
    serialized = builder.build_serialized_network(network, builder.create_builder_config())
    assert serialized is not None
    del writer
    return trt.Runtime(logger).deserialize_cuda_engine(serialized)


def run_end2end(engine, images):
    context = engine.create_execution_context()
    images = np.ascontiguousarray(images, dtype=np.float32)
    out = np.zeros((images.shape[0], 300, 6), np.float32)
    context.set_tensor_address("images", images.ctypes.data)
    context.set_tensor_address("output0", out.ctypes.data)
    assert context.execute_v2([images.ctypes.data, out.ctypes.data])
    return out


def test_yolo26_one_to_one_head_refuses_dynamic_sizes(install_tensorrt_standin, family_models):
    import copy

    from ultralytics.export.network_builder import NetworkBuildError, populate_network
    from ultralytics.trt.network import network_flags

    trt = install_tensorrt_standin("10.16.1.11")
    model = copy.deepcopy(family_models["shapes_yolo26n"])
    model.select_head(True)
    network = trt.Builder(trt.Logger(trt.Logger.WARNING)).create_network(network_flags(trt))
    with pytest.raises(NetworkBuildError, match="fixed image size"):
        populate_network(trt, network, model, imgsz=(320, 320), batch=1, dynamic=True, max_imgsz=(640, 640))


@pytest.mark.parametrize("version", ["8.6.1", "11.4.0.106"])  # FP16 flag (weak typing) / FP16 weights (strong)
def test_fp16_export_through_yolo(install_tensorrt_standin, version, tmp_path):
    """The user path: YOLO("yolo11n.pt").export(format="engine", builder="network", half=True)."""
    import shutil

    from ultralytics import YOLO
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    install_tensorrt_standin(version)
    weights = tmp_path / "shapes_yolo11n.pt"
    shutil.copy(MODELS / "shapes_yolo11n.pt", weights)
    engine = YOLO(weights).export(format="engine", builder="network", half=True, imgsz=160, device="cpu", verbose=False)
    backend = TensorRTBackend(engine, device=torch.device("cpu"))
    assert backend.fp16 and backend.output.dtype == torch.float16
    images = torch.from_numpy(shapes_images(1, (160, 160)))
    out = backend.forward(images.half()).float()
    with torch.no_grad():
        ref = load_checkpoint(weights)[0].float().eval()(images)
    assert (out[:, :4] - ref[:, :4]).abs().max() < 2.0 and (out[:, 4:] - ref[:, 4:]).abs().max() < 5e-3
