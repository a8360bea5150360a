"""The PyTorch network channels-last on CUDA (gpu/channels_last.py): who converts, what every path feeds the
network, that the caller's model and its exports stay as they were, and (CUDA) bit-identical boxes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests.conftest import MODELS
from tests.gpu.conftest import requires_cuda
from tests.gpu.test_pipeline import assert_boxes_match, boxes_of, predictor_for
from ultralytics import YOLO
from ultralytics.engine.gpu_pipeline import GpuStages
from ultralytics.gpu.channels_last import network_input, network_memory_format, to_channels_last, wants_channels_last
from ultralytics.nn.autobackend import AutoBackend
from ultralytics.utils.settings import CHANNELS_LAST_ENV, settings

CL = torch.channels_last
CUDA = torch.device("cuda")


def four_d(module: torch.nn.Module) -> list[torch.Tensor]:
    return [t for t in (*module.parameters(), *module.buffers()) if t.ndim == 4]


def all_channels_last(module: torch.nn.Module) -> bool:
    """Every 4-D tensor channels-last (a 1x1 kernel's layout is both), and the 3x3 ones no longer NCHW."""
    tensors = four_d(module)
    changed = any(not t.is_contiguous() for t in tensors)
    return changed and all(t.is_contiguous(memory_format=CL) for t in tensors)


def all_contiguous(module: torch.nn.Module) -> bool:
    return all(t.is_contiguous() for t in four_d(module))


def test_switch_is_off_by_default_and_one_turns_it_on(monkeypatch):
    """Off by default: on the H200 batches of 8 moved FP16 boxes by an FP16 step or two (the CUDA tests below)."""
    monkeypatch.delenv(CHANNELS_LAST_ENV, raising=False)
    assert settings().gpu_channels_last is False
    monkeypatch.setenv(CHANNELS_LAST_ENV, "1")
    assert settings().gpu_channels_last is True
    monkeypatch.setenv(CHANNELS_LAST_ENV, "yes")
    with pytest.raises(ValueError, match=rf"^{CHANNELS_LAST_ENV}='yes' is not valid: use '0' \(the default\) or '1'$"):
        settings()


def test_only_pytorch_backends_on_cuda_switch(shapes_pt, monkeypatch):
    """The decision, with the device flag faked: CUDA + PyTorch yes; the CPU, an ONNX model, or the
    switch off no. Where it says no, nothing is converted."""
    monkeypatch.delenv(CHANNELS_LAST_ENV, raising=False)
    torch_model = AutoBackend(shapes_pt)
    assert not wants_channels_last(torch_model)  # the CPU
    assert network_memory_format(torch_model) == torch.contiguous_format
    assert all_contiguous(torch_model.backend.model)

    onnx_model = AutoBackend(MODELS / "shapes_yolov8n_upstream.onnx")
    onnx_model.device = CUDA
    assert not wants_channels_last(onnx_model)  # an exported model takes the layout it was built with

    torch_model.device = CUDA  # what a CUDA backend reports; the weights stay on the CPU for this test
    assert not wants_channels_last(torch_model)  # FP32: TF32 convolutions round differently in NHWC
    torch_model.fp16 = True  # what an FP16 backend reports (its dtype)
    monkeypatch.setenv(CHANNELS_LAST_ENV, "0")
    assert not wants_channels_last(torch_model)
    assert network_memory_format(torch_model) == torch.contiguous_format
    assert all_contiguous(torch_model.backend.model)
    monkeypatch.setenv(CHANNELS_LAST_ENV, "1")
    assert wants_channels_last(torch_model)
    assert network_memory_format(torch_model) == CL
    assert all_channels_last(torch_model.backend.model)


@pytest.mark.parametrize("weights", ["shapes_yolov8n.pt", "shapes_yolo11n.pt", "shapes_yolo26n.pt"])
def test_converted_network_computes_the_same_output(weights, shapes_images):
    """Every layer of the three families accepts channels-last tensors (no `.view` that needs NCHW
    strides) and gives the NCHW network's numbers (up to the CPU kernels' rounding)."""
    model = YOLO(MODELS / weights).model
    image = torch.from_numpy(shapes_images[0][1][..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = model(image)
        converted = to_channels_last(model)
        assert converted is model and all_channels_last(model)
        got = model(network_input(image, CL))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("kernel", ["torch", "triton"])
def test_letterbox_writes_the_network_layout_with_the_same_values(photos, monkeypatch, dtype, kernel):
    """The letterbox writes its canvas channels-last directly (the Triton kernel through its output
    strides, here under Triton's interpreter on a CPU): the values are the NCHW canvas's, bit for bit."""
    from ultralytics.data.augment import letterbox_params
    from ultralytics.gpu import letterbox_triton
    from ultralytics.gpu.letterbox import letterbox_batch
    from ultralytics.utils.settings import TRITON_ENV

    if kernel == "triton":
        pytest.importorskip("triton")
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        letterbox_triton._kernel.cache_clear()
    else:
        monkeypatch.setenv(TRITON_ENV, "0")
    image = photos[2]  # 300x451: a border on two sides
    frames = torch.from_numpy(np.stack([image, image[::-1].copy()]))
    geometries = [letterbox_params(image.shape[:2], (160, 224), auto=False)] * 2
    try:
        if kernel == "triton":
            assert letterbox_triton.try_letterbox_triton(frames, geometries, dtype, CL) is not None
        nchw = letterbox_batch(frames, geometries, dtype)
        nhwc = letterbox_batch(frames, geometries, dtype, CL)
    finally:
        letterbox_triton._kernel.cache_clear()
    assert nchw.is_contiguous() and nhwc.is_contiguous(memory_format=CL) and not nhwc.is_contiguous()
    assert nhwc.dtype == dtype and torch.equal(nhwc, nchw)


def _onnx_export(yolo: YOLO, name: str) -> onnx.ModelProto:
    path = Path(yolo.export(format="onnx", imgsz=160))
    kept = shutil.copy(path, path.with_name(f"{path.stem}_{name}.onnx"))
    return onnx.load(kept)


def _same_onnx(a: onnx.ModelProto, b: onnx.ModelProto) -> None:
    from onnx import numpy_helper

    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    weights_a = {i.name: numpy_helper.to_array(i) for i in a.graph.initializer}
    weights_b = {i.name: numpy_helper.to_array(i) for i in b.graph.initializer}
    assert weights_a.keys() == weights_b.keys() and weights_a
    for name, value in weights_a.items():
        np.testing.assert_array_equal(value, weights_b[name], err_msg=name)


def test_callers_model_is_copied_not_converted_and_exports_stay_the_same(
    shapes_pt, tmp_path, shapes_images, monkeypatch
):
    """A ready model is borrowed by the backend as is; switching the backend to channels-last must copy
    it first, so `YOLO.model` keeps its layout and `export()` after a CUDA predict writes the same ONNX.
    A model converted in place (what a user may do) exports the same ONNX too."""
    monkeypatch.setenv(CHANNELS_LAST_ENV, "1")
    weights = shutil.copy(shapes_pt, tmp_path / "shapes.pt")
    yolo = YOLO(weights)
    before = _onnx_export(yolo, "before")

    backend = yolo._backend(torch.device("cpu"), False)
    assert backend.backend.model is yolo.model  # borrowed: a loaded checkpoint is fused, eval, FP32
    backend.device, backend.fp16 = CUDA, True  # the decision's inputs only
    assert network_memory_format(backend) == CL
    assert backend.backend.model is not yolo.model
    assert all_channels_last(backend.backend.model) and all_contiguous(yolo.model)
    _same_onnx(_onnx_export(yolo, "after_predict"), before)

    to_channels_last(yolo.model)
    assert all_channels_last(yolo.model)
    converted = _onnx_export(yolo, "converted")
    _same_onnx(converted, before)
    import onnxruntime as ort

    image = torch.from_numpy(shapes_images[0][1][..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    image = torch.nn.functional.interpolate(image, size=(160, 160)).numpy()
    run = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]) for m in (converted, before)]
    outputs = [session.run(None, {session.get_inputs()[0].name: image})[0] for session in run]
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_every_path_feeds_the_network_in_the_states_layout(shapes_pt, shapes_images):
    """The device stages on the CPU with the state's layout set to channels-last (as CUDA + PyTorch sets
    it): a same-size batch, a mixed-size batch and a caller's tensor all reach the network channels-last,
    and the detections are the NCHW run's."""
    images = [im for _, im in shapes_images]
    same = [im for im in images if im.shape == images[0].shape][:2]
    reference = predictor_for(YOLO(shapes_pt), "cpu", batch=2, imgsz=320)
    reference.gpu = GpuStages(reference.model, reference.args)
    assert reference.gpu.state.memory_format == torch.contiguous_format  # the CPU: torch's layout
    expected = [boxes_of(reference(src)) for src in (same, images[:3])]

    ours = predictor_for(YOLO(shapes_pt), "cpu", batch=2, imgsz=320)
    ours.gpu = GpuStages(ours.model, ours.args)
    ours.model.backend.use_channels_last()
    ours.gpu.state.memory_format = CL
    network = ours.model.backend.model
    seen = record_input_layouts(network)
    got = [boxes_of(ours(src)) for src in (same, images[:3])]
    assert sum(len(b) for b in expected[0]) > 0
    for a, b in zip(got, expected):
        assert_boxes_match(a, b, px=0.01, conf=1e-4)
    canvas = reference.gpu.preprocess(same)  # NCHW 0..1 RGB, what a user could pass as a tensor
    assert canvas.is_contiguous()
    ours.gpu.inference(ours.gpu.preprocess(canvas))
    assert len(seen) == 3 and all(seen), seen  # two list batches, one tensor


# ---------------------------------------------------------------------------------------------- CUDA


def _cuda_boxes(shapes_pt, images, monkeypatch, switch: str, half: bool, graphed: bool, batch: int) -> list:
    from ultralytics.cfg import get_cfg
    from ultralytics.engine.predictor import DetectionPredictor

    monkeypatch.setenv(CHANNELS_LAST_ENV, switch)
    yolo = YOLO(shapes_pt)
    args = get_cfg({"conf": 0.25, "batch": batch, "save": False, "verbose": False, "mode": "predict", "imgsz": 320})
    predictor = DetectionPredictor(args, yolo._backend(torch.device("cuda:0"), half))
    if not graphed:
        predictor.gpu = GpuStages(predictor.model, predictor.args, predictor.imgsz, use_graphs=False)
    on = switch == "1" and half  # FP32 stays NCHW (TF32 convolutions round differently in NHWC)
    assert predictor.gpu.state.memory_format == (CL if on else torch.contiguous_format)
    network = predictor.model.backend.model
    assert all_channels_last(network) if on else all_contiguous(network)
    assert all_contiguous(yolo.model)  # the caller's model keeps its layout
    seen = record_input_layouts(network)
    got = boxes_of(predictor(images))
    frames = torch.from_numpy(np.stack([images[0]] * 2)).cuda()
    tensor = (frames.flip(-1).permute(0, 3, 1, 2).float() / 255).contiguous()  # a caller's NCHW RGB batch
    got += boxes_of(predictor(tensor))
    assert seen and all(seen) == on and any(seen) == on, seen
    return got


@requires_cuda
@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("graphed", [True, False], ids=["graphed", "eager"])
def test_cuda_boxes_equal_with_channels_last_on_and_off(shapes_pt, shapes_images, monkeypatch, half, batch, graphed):
    """yolov8n, FP32/FP16, batch 1 and 8 (the fused graph when graphed), graphed and
    eager: the same detections with the network channels-last and in NCHW — bit for bit at batch 1; at
    batch 8 (H200) cuDNN's NHWC kernels moved FP16 boxes by an FP16 step or two (43.7188 vs 43.75), which is
    why the switch is off by default."""
    square = [im for _, im in shapes_images if im.shape[:2] == (320, 320)]
    images = (square * 8)[:batch]
    off = _cuda_boxes(shapes_pt, images, monkeypatch, "0", half, graphed, batch)
    on = _cuda_boxes(shapes_pt, images, monkeypatch, "1", half, graphed, batch)
    assert sum(len(b) for b in off) > 0
    assert len(on) == len(off)
    for a, b in zip(on, off):
        if batch == 1:
            assert torch.equal(torch.from_numpy(a), torch.from_numpy(b))
        else:
            assert_within_two_fp16_steps(a, b)


def assert_within_two_fp16_steps(a: np.ndarray, b: np.ndarray) -> None:
    """Same detections, each value within two FP16 steps at its magnitude (the network's precision: with
    the fused graph at batch 32 and 8 one confidence of ~0.9 moved by two, 0.00098, on the H200)."""
    assert a.shape == b.shape
    step = np.spacing(np.maximum(np.abs(a), np.abs(b)).astype(np.float16)).astype(np.float32)
    assert (np.abs(a - b) <= 2 * step).all(), np.abs(a - b).max()


@requires_cuda
def test_cuda_mixed_sizes_and_chunks_equal_with_channels_last_on_and_off(shapes_pt, shapes_images, monkeypatch):
    """Frames of several sizes (the per-frame letterbox) and a 40-frame list (chunks of 32, the
    pipelined long-call path): the same detections either way."""
    images = [im for _, im in shapes_images]
    images = (images * 7)[:40]
    off = _cuda_boxes(shapes_pt, images, monkeypatch, "0", True, True, 40)
    on = _cuda_boxes(shapes_pt, images, monkeypatch, "1", True, True, 40)
    assert sum(len(b) for b in off) > 0
    for a, b in zip(on, off):
        assert_within_two_fp16_steps(a, b)


def record_input_layouts(network: torch.nn.Module) -> list[bool]:
    """From now on, whether each input `network` gets is channels-last (and not also NCHW-contiguous)."""
    seen: list[bool] = []
    forward = network.forward

    def spy(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.is_contiguous(memory_format=CL) and not x.is_contiguous())
        return forward(x)

    network.forward = spy
    return seen


def test_gpu_pipeline_false_feeds_a_converted_backend_in_its_layout(shapes_pt, shapes_images):
    """The backend is shared between the CUDA pipeline and `gpu_pipeline=False`: once the pipeline made its
    network channels-last, the CPU stages feed it channels-last too (not NCHW against NHWC weights)."""
    from types import SimpleNamespace

    predictor = predictor_for(YOLO(shapes_pt), "cpu", imgsz=320)
    assert predictor.gpu is None  # CpuStages
    predictor.model.backend.use_channels_last()
    predictor.model.gpu_state = SimpleNamespace(memory_format=CL)  # what a CUDA pipeline state records
    seen = record_input_layouts(predictor.model.backend.model)
    predictor([shapes_images[0][1]])
    assert seen == [True]
