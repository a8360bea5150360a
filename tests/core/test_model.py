"""DetectionModel: architecture, forward semantics, fusing, ONNX-exportability, the PyTorch backend.

Expected numbers come from independent sources only: upstream's published parameter counts, the
reference outputs upstream 8.4.190 produced (../shared/fixtures/reference), a brute-force numpy
decoder, and onnxruntime.
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import pytest
import torch

from tests.conftest import MODELS, REFERENCE
from ultralytics.nn.checkpoint import load_checkpoint
from ultralytics.nn.modules import Conv, Detect
from ultralytics.nn.tasks import DetectionModel, guess_model_scale

# Upstream's published model summaries at nc=80 (comments of upstream's yolov8.yaml; also quoted in
# ultralytics/ultralytics issues #19662 (s) and #3607 (x)).
PUBLISHED_PARAMS = {"n": 3_157_200, "s": 11_166_560, "m": 25_902_640, "l": 43_691_520, "x": 68_229_648}


@pytest.fixture(scope="module")
def shapes_model() -> DetectionModel:
    return load_checkpoint(MODELS / "shapes_yolov8n.pt")[0]


@pytest.fixture(scope="module")
def fresh_n() -> DetectionModel:
    torch.manual_seed(0)
    return DetectionModel("yolov8n.yaml", nc=5).eval()


@pytest.mark.parametrize("scale", list(PUBLISHED_PARAMS))
def test_parameter_count_matches_upstream(scale):
    model = DetectionModel(f"yolov8{scale}.yaml")
    assert model.yaml["scale"] == scale
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS[scale]
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    assert model.names == {i: str(i) for i in range(80)}


def test_scale_from_name_and_bad_configs(tmp_path):
    assert guess_model_scale("yolov8m.yaml") == "m"
    assert guess_model_scale("path/to/yolov8x.pt") == "x"
    assert guess_model_scale("yolov8.yaml") is None
    with pytest.raises(FileNotFoundError, match="yolov8n.yaml"):
        DetectionModel("yolov9q.yaml")
    not_a_model = tmp_path / "data.yaml"
    not_a_model.write_text("names: [a, b]\n")
    with pytest.raises(ValueError, match="backbone"):
        DetectionModel(not_a_model)
    with pytest.raises(ValueError, match="positive integer"):
        DetectionModel("yolov8n.yaml", nc=0)


def test_eval_output_shape_and_train_output(fresh_n):
    x = torch.rand(2, 3, 256, 320)
    with torch.no_grad():
        y = fresh_n(x)
    anchors = sum((256 // s) * (320 // s) for s in (8, 16, 32))
    assert isinstance(y, torch.Tensor) and y.shape == (2, 4 + 5, anchors)
    assert y.dtype == torch.float32
    scores = y[:, 4:]
    assert bool(((scores >= 0) & (scores <= 1)).all())

    model = copy.deepcopy(fresh_n).train()
    with torch.no_grad():
        levels = model(x)
    assert [tuple(t.shape) for t in levels] == [(2, 64 + 5, 256 // s, 320 // s) for s in (8, 16, 32)]


def _numpy_decode(levels: list[np.ndarray], strides: list[float], nc: int) -> np.ndarray:
    """Brute-force reference decoder: one anchor at a time, DFL as an explicit softmax expectation."""
    batch = levels[0].shape[0]
    rows = []
    for level, stride in zip(levels, strides):
        _, _, h, w = level.shape
        for y in range(h):
            for x in range(w):
                cell = level[:, :, y, x]  # (B, 64 + nc)
                bins = cell[:, :64].reshape(batch, 4, 16)
                probs = np.exp(bins - bins.max(-1, keepdims=True))
                probs /= probs.sum(-1, keepdims=True)
                left, top, right, bottom = (probs * np.arange(16)).sum(-1).T
                cx, cy = x + 0.5, y + 0.5
                x1, y1, x2, y2 = cx - left, cy - top, cx + right, cy + bottom
                box = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1) * stride
                rows.append(np.concatenate([box, 1 / (1 + np.exp(-cell[:, 64:]))], 1))
    return np.stack(rows, 2)  # (B, 4 + nc, A)


def test_head_decoding_matches_bruteforce(fresh_n):
    head: Detect = fresh_n.model[-1]
    rng = np.random.default_rng(0)
    levels = [rng.normal(size=(2, 64 + 5, 64 // s, 96 // s)).astype(np.float32) for s in (8, 16, 32)]
    with torch.no_grad():
        ours = head.decode([torch.from_numpy(level) for level in levels]).numpy()
    expected = _numpy_decode(levels, [8.0, 16.0, 32.0], nc=5)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)


def test_anchors_follow_the_input_shape(fresh_n):
    """A model that has seen one shape gives, at another shape, what a model that never saw it gives."""
    first = torch.rand(1, 3, 128, 128)
    second = torch.rand(1, 3, 96, 160)
    untouched = copy.deepcopy(fresh_n)
    with torch.no_grad():
        fresh_n(first)
        after_other_shape = fresh_n(second)
        direct = untouched(second)
    torch.testing.assert_close(after_other_shape, direct, rtol=0, atol=0)


def test_fuse_preserves_output_and_is_idempotent(fresh_n):
    model = copy.deepcopy(fresh_n)
    # Non-trivial BatchNorm statistics so that folding them actually changes the weights.
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
    x = torch.rand(1, 3, 160, 224)
    with torch.no_grad():
        before = model(x)
        assert not model.is_fused()
        model.fuse()
        assert model.is_fused()
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        weights = [p.clone() for p in model.parameters()]
        model.fuse()  # second call must not fold anything again
        assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
        after = model(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    assert all(isinstance(m.conv.bias, torch.Tensor) for m in model.modules() if isinstance(m, Conv))


@pytest.mark.parametrize(
    ("weights", "reference"),
    [
        ("shapes_yolov8n.pt", "shapes_raw_320.npz"),
        ("shapes_yolov8n.pt", "shapes_raw_640.npz"),
        ("yolov8n_random_upstream.pt", "yolov8n_random_raw_640.npz"),
    ],
)
def test_raw_output_matches_upstream(weights, reference):
    """Our forward on upstream's own letterboxed inputs reproduces upstream's raw head output."""
    model = load_checkpoint(MODELS / weights)[0]
    ref = np.load(REFERENCE / reference)
    keys = sorted(k for k in ref.files if k.startswith("input_"))
    assert keys, f"{reference} has no input_k arrays"
    for key in keys:
        k = key.removeprefix("input_")
        expected = ref[f"output_{k}"]
        with torch.no_grad():
            ours = model(torch.from_numpy(ref[key])).numpy()
        assert ours.shape == expected.shape, ref[f"name_{k}"]
        relative = np.linalg.norm(ours - expected) / np.linalg.norm(expected)
        assert relative < 1e-3, f"{ref[f'name_{k}']}: relative error {relative:.2e}"
        # Per element: boxes are pixels (hundreds) and scores 0..1, so tolerate 1e-3 of either.
        np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-3)


def test_onnx_export_dynamic_matches_onnxruntime(shapes_model):
    """The forward traces to ONNX with dynamic batch/height/width and runs the same in onnxruntime."""
    onnxruntime = pytest.importorskip("onnxruntime")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            shapes_model,
            torch.zeros(1, 3, 320, 320),
            buffer,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 2: "anchors"}},
            opset_version=17,
            dynamo=False,
        )
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 320, 320), (2, 3, 128, 192)]:
        x = torch.rand(shape)
        (ort_out,) = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            torch_out = shapes_model(x).numpy()
        np.testing.assert_allclose(ort_out, torch_out, rtol=1e-4, atol=1e-3)


def test_half_precision_model(shapes_model):
    model = copy.deepcopy(shapes_model).half()
    assert model.model[-1].stride.dtype == torch.float16  # the head's stride follows the model
    x = torch.from_numpy(np.load(REFERENCE / "shapes_raw_320.npz")["input_0"])[..., 96:224, 96:224]
    with torch.no_grad():
        y16 = model(x.half())
        y32 = shapes_model(x)
    assert y16.dtype == torch.float16
    torch.testing.assert_close(y16[:, :4].float(), y32[:, :4], rtol=0, atol=2.0)  # pixels
    torch.testing.assert_close(y16[:, 4:].float(), y32[:, 4:], rtol=0, atol=2e-2)  # scores


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_capture(shapes_model):
    model = copy.deepcopy(shapes_model).cuda()
    static_in = torch.rand(1, 3, 320, 320, device="cuda")
    with torch.no_grad():
        expected = model(static_in).clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            model(static_in)  # warm up outside the graph
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = model(static_in)
        graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(static_out, expected, rtol=1e-4, atol=1e-3)


# --- PyTorchBackend ------------------------------------------------------------------------------


def test_backend_from_checkpoint(shapes_model):
    from ultralytics.nn.backends.pytorch import PyTorchBackend

    backend = PyTorchBackend(MODELS / "shapes_yolov8n.pt", device=torch.device("cpu"), fp16=False)
    assert backend.pt and backend.dynamic and backend.imgsz is None and backend.batch == 0
    assert backend.stride == 32 and backend.task == "detect" and not backend.fp16
    assert backend.names == {0: "circle", 1: "square", 2: "triangle", 3: "star"}
    assert backend.metadata["train_imgsz"] == 320
    x = torch.rand(2, 3, 96, 160)
    with torch.no_grad():
        torch.testing.assert_close(backend.forward(x), shapes_model(x), rtol=0, atol=0)


def test_backend_from_yaml_and_fp16():
    from ultralytics.nn.backends.pytorch import PyTorchBackend

    backend = PyTorchBackend("yolov8n.yaml", device="cpu", fp16=True)
    assert backend.fp16 and backend.names == {i: str(i) for i in range(80)}
    y = backend.forward(torch.rand(1, 3, 64, 64, dtype=torch.float16))
    assert y.dtype == torch.float16 and y.shape == (1, 84, 84)


def test_backend_leaves_the_callers_model_alone(fresh_n):
    from ultralytics.nn.backends.pytorch import PyTorchBackend

    caller_model = copy.deepcopy(fresh_n).train()
    backend = PyTorchBackend(caller_model, device=torch.device("cpu"), fp16=True)
    assert backend.model is not caller_model and backend.model.is_fused()
    assert caller_model.training and not caller_model.is_fused()
    assert next(caller_model.parameters()).dtype == torch.float32

    ready = copy.deepcopy(fresh_n).fuse().eval()
    assert PyTorchBackend(ready, device=torch.device("cpu")).model is ready  # nothing to change: no copy

    with pytest.raises(TypeError, match="DetectionModel"):
        PyTorchBackend(torch.nn.Linear(2, 2))
