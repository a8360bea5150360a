"""The network-API route reproduces the PyTorch model's raw output through the TensorRT stand-in."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import FIXTURES
from tests.netapi.conftest import VERSIONS
from ultralytics.export.network_builder import populate_network
from ultralytics.nn.checkpoint import load_checkpoint
from ultralytics.trt.network import network_flags

MODELS = FIXTURES / "models"


def build_engine(trt, model, *, imgsz, batch: int, dynamic: bool, max_imgsz=None):
    """Build through the stand-in; the profile spans batch 1..4 and, with `max_imgsz`, sizes 32..max."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    writer = populate_network(trt, network, model, imgsz=imgsz, batch=batch, dynamic=dynamic, max_imgsz=max_imgsz)
    config = builder.create_builder_config()
    if dynamic:
        profile = builder.create_optimization_profile()
        low, high = ((32, 32), max_imgsz) if max_imgsz else (imgsz, imgsz)
        profile.set_shape("images", (1, 3, *low), (2, 3, *imgsz), (4, 3, *high))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "the stand-in refused to build the network (see its log)"
    del writer  # weights are copied into the plan by now
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    assert [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)] == ["images", "output0"]
    assert engine.get_tensor_dtype("output0") == trt.float32
    return engine


def run(engine, images: np.ndarray) -> np.ndarray:
    context = engine.create_execution_context()
    images = np.ascontiguousarray(images, dtype=np.float32)
    assert context.set_input_shape("images", images.shape)
    out = np.zeros(tuple(context.get_tensor_shape("output0")), np.float32)
    context.set_tensor_address("images", images.ctypes.data)
    context.set_tensor_address("output0", out.ctypes.data)
    assert context.execute_v2([images.ctypes.data, out.ctypes.data])
    return out


def build_and_run(trt, model, images: np.ndarray, *, imgsz, dynamic: bool) -> np.ndarray:
    return run(build_engine(trt, model, imgsz=imgsz, batch=images.shape[0], dynamic=dynamic), images)


def shapes_images(n: int, imgsz: tuple[int, int]) -> np.ndarray:
    """Real validation images, resized to the network input (the match does not depend on letterboxing)."""
    files = sorted((FIXTURES / "shapes" / "val" / "images").glob("*.*"))[:n]
    ims = [cv2.resize(cv2.imread(str(f)), imgsz[::-1])[:, :, ::-1].transpose(2, 0, 1) / 255.0 for f in files]
    return np.stack(ims).astype(np.float32)


def assert_matches_torch(model, images: np.ndarray, out: np.ndarray) -> None:
    with torch.no_grad():
        ref = model(torch.from_numpy(images)).numpy()
    assert out.shape == ref.shape
    # 1e-4 relative to each value, with an absolute floor at 1e-4 of the output's scale for values near 0.
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()) * 1e-2)


@pytest.fixture(scope="module")
def shapes_model():
    return load_checkpoint(MODELS / "shapes_yolov8n.pt")[0].float().eval()


@pytest.mark.parametrize("version", VERSIONS)
def test_shapes_model_static_and_dynamic_batch(install_tensorrt_standin, version, shapes_model):
    trt = install_tensorrt_standin(version)
    imgsz = (160, 192)  # not square: catches swapped H/W in the anchor grid
    images = shapes_images(3, imgsz)
    assert_matches_torch(
        shapes_model, images[:1], build_and_run(trt, shapes_model, images[:1], imgsz=imgsz, dynamic=False)
    )
    assert_matches_torch(shapes_model, images, build_and_run(trt, shapes_model, images, imgsz=imgsz, dynamic=True))


@pytest.mark.parametrize("version", VERSIONS)
def test_dynamic_height_and_width(install_tensorrt_standin, version, shapes_model):
    """One engine, three sizes (not square, and the profile's smallest): anchor centres cut at run time."""
    trt = install_tensorrt_standin(version)
    engine = build_engine(trt, shapes_model, imgsz=(160, 192), batch=2, dynamic=True, max_imgsz=(256, 256))
    for batch, size in ((3, (160, 192)), (1, (256, 224)), (2, (32, 32))):
        images = shapes_images(batch, size)
        assert_matches_torch(shapes_model, images, run(engine, images))


@pytest.mark.parametrize("version", VERSIONS)
def test_random_80_class_model(install_tensorrt_standin, version):
    """Upstream's 80-class architecture with random weights: every channel width of the real yolov8n."""
    trt = install_tensorrt_standin(version)
    model = load_checkpoint(MODELS / "yolov8n_random_upstream.pt")[0].float().eval()
    imgsz = (128, 160)
    images = shapes_images(2, imgsz)
    assert_matches_torch(model, images, build_and_run(trt, model, images, imgsz=imgsz, dynamic=True))


def test_unfused_batchnorm_is_folded(install_tensorrt_standin):
    """An unfused model (BatchNorm with non-trivial statistics) gives the same output as PyTorch."""
    from ultralytics.nn.tasks import DetectionModel

    trt = install_tensorrt_standin("10.16.1.11")
    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=3).eval()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    imgsz = (64, 96)
    images = shapes_images(1, imgsz)
    assert_matches_torch(model, images, build_and_run(trt, model, images, imgsz=imgsz, dynamic=False))
