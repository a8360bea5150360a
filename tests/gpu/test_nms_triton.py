"""The Triton NMS kernels against the torch path of gpu/nms.py and a plain numpy greedy NMS.

Skipped where Triton is not installed (it is optional). Without a GPU the kernels run under Triton's
interpreter (TRITON_INTERPRET=1, numpy) on CPU tensors, so the cases stay small; on a CUDA machine the
same tests run the compiled kernels, plus CUDA-only checks against the torch path on the GPU and inside a
CUDA-graph capture. "Equal" is the packed row's meaning: the first `count` detections bit for bit, then
count, candidates and converged (rows past the count are zeros here, leftovers in the torch path).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from unittest import mock

import numpy as np
import pytest
import torch

pytest.importorskip("triton")
# the interpreter divides 0 by 0 in the IoU tiles' padding lanes (masked out); the GPU does not warn
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")

from tests.conftest import MODELS, SHAPES  # noqa: E402
from tests.gpu.conftest import requires_cuda, triton_device  # noqa: E402
from tests.gpu.test_nms import greedy_nms, random_preds  # noqa: E402
from ultralytics.gpu import nms_triton  # noqa: E402
from ultralytics.gpu.nms import BatchedNMS, capped_top_k  # noqa: E402
from ultralytics.gpu.nms_triton import nms_packed  # noqa: E402
from ultralytics.utils.settings import TRITON_ENV  # noqa: E402


@pytest.fixture
def device(monkeypatch) -> Iterator[torch.device]:
    monkeypatch.delenv(TRITON_ENV, raising=False)
    yield from triton_device(monkeypatch, nms_triton._kernels)


def torch_packed(preds: torch.Tensor, nms: BatchedNMS, top_k: int) -> torch.Tensor:
    """The torch path's packed rows for the same settings (the Triton switch off)."""
    nms.prepare_classes(preds.device)
    with mock.patch.dict(os.environ, {TRITON_ENV: "0"}):
        return nms.run_on_device(preds, top_k, 64)


def triton_packed(preds: torch.Tensor, nms: BatchedNMS, top_k: int) -> torch.Tensor:
    classes = None if nms.classes is None else torch.tensor(nms.classes, device=preds.device)
    return nms_packed(preds, nms.conf_thres, nms.iou_thres, classes, nms.agnostic, nms.max_det, top_k)


def assert_rows_equal(got: torch.Tensor, want: torch.Tensor, max_det: int) -> None:
    got, want = got.cpu(), want.cpu()
    assert got.shape == want.shape == (want.shape[0], max_det * 6 + 3)
    for i, (row, ref) in enumerate(zip(got, want)):
        count = int(ref[-3])
        assert row[-3:].tolist() == [count, ref[-2].item(), 1.0], f"image {i}: count, candidates, converged"
        torch.testing.assert_close(row[: count * 6], ref[: count * 6], rtol=0, atol=0, msg=f"image {i}")
        assert not row[count * 6 : -3].any(), f"image {i}: rows past the count are not zero"


def assert_matches_greedy(packed: torch.Tensor, preds: torch.Tensor, max_det: int, **kw) -> None:
    for i in range(preds.shape[0]):
        ref = greedy_nms(preds[i].float().cpu().numpy(), max_det=max_det, **kw)
        count = int(packed[i, -3])
        got = packed[i, : count * 6].reshape(count, 6).cpu().numpy()
        assert got.shape == ref.shape, f"image {i}: {count} boxes, reference {len(ref)}"
        np.testing.assert_allclose(got, ref, atol=1e-3)


@pytest.fixture(scope="module")
def shapes_heads() -> torch.Tensor:
    """Real head outputs: the fixture yolov8n trained on shapes, on three of its val images (B, 8, 2100)."""
    import cv2

    from ultralytics import YOLO

    net = YOLO(str(MODELS / "shapes_yolov8n.pt")).model.eval()
    paths = sorted((SHAPES / "val" / "images").glob("*.jpg"))[:3]
    frames = np.stack([cv2.resize(cv2.imread(str(p)), (320, 320))[..., ::-1] for p in paths])
    with torch.no_grad():
        out = net(torch.from_numpy(frames.copy()).permute(0, 3, 1, 2).float() / 255)
    return (out[0] if isinstance(out, (list, tuple)) else out).float().contiguous()


@pytest.mark.parametrize("conf", [0.25, 0.01])
def test_real_head_output_equals_torch_path_and_greedy(device, shapes_heads, conf):
    preds = shapes_heads.to(device)
    nms = BatchedNMS(conf, 0.7)
    top_k = capped_top_k(256, preds.shape[2])
    packed = triton_packed(preds, nms, top_k)
    assert (packed[:, -2] > 0).all() and (packed[:, -2] <= top_k).all(), "the case should have candidates, all kept"
    assert_rows_equal(packed, torch_packed(preds, nms, top_k), nms.max_det)
    assert_matches_greedy(packed, preds, nms.max_det, conf=conf, iou=0.7)


@pytest.mark.parametrize("agnostic", [False, True])
def test_class_offsets_or_agnostic(device, agnostic):
    preds = random_preds(b=2, nc=4, a=300, seed=5).to(device)
    nms = BatchedNMS(0.25, 0.45, agnostic=agnostic)
    packed = triton_packed(preds, nms, 256)
    assert_rows_equal(packed, torch_packed(preds, nms, 256), nms.max_det)
    assert_matches_greedy(packed, preds, nms.max_det, conf=0.25, iou=0.45, agnostic=agnostic)


def test_class_filter_and_max_det(device):
    preds = random_preds(b=2, a=300, seed=1).to(device)
    nms = BatchedNMS(0.2, 0.5, classes=[1, 3], max_det=7)
    packed = triton_packed(preds, nms, 256)
    assert (packed[:, -3] == 7).all(), "max_det should truncate here"
    assert_rows_equal(packed, torch_packed(preds, nms, 256), 7)
    assert_matches_greedy(packed, preds, 7, conf=0.2, iou=0.5, classes=[1, 3])


def test_no_candidates(device):
    preds = (random_preds(b=2, a=200) * torch.tensor([1, 1, 1, 1, 0, 0, 0, 0.0])[None, :, None]).to(device)
    packed = triton_packed(preds, BatchedNMS(0.25, 0.7, max_det=5), 64)
    assert packed.cpu().tolist() == [[0.0] * 30 + [0.0, 0.0, 1.0]] * 2


def test_overflow_reports_candidates_and_batched_nms_redoes(device):
    """More candidates than top_k: the count says so, and BatchedNMS redoes with room (all on the kernels)."""
    preds = random_preds(b=2, a=300, seed=2).to(device)
    candidates = (preds[:, 4:].max(1).values > 0.3).sum(1).float().cpu()
    packed = triton_packed(preds, BatchedNMS(0.3, 0.6), 16)
    assert torch.equal(packed[:, -2].cpu(), candidates) and (candidates > 16).all()
    nms = BatchedNMS(0.3, 0.6, top_k=16)
    with mock.patch.object(nms_triton, "nms_packed", wraps=nms_packed) as kernels:
        out = nms(preds)
    assert kernels.call_count == 2 and nms.top_k > 16
    for i, dets in enumerate(out):
        np.testing.assert_allclose(dets, greedy_nms(preds[i].cpu().numpy(), 0.3, 0.6), atol=1e-3)


def test_long_suppression_chain(device):
    """Each box suppresses the next: greedy keeps every other one (the fixed point needs n steps)."""
    n = 24
    preds = torch.zeros(1, 5, n)
    preds[0, 0], preds[0, 1], preds[0, 2], preds[0, 3] = torch.arange(n) * 10.0 + 100, 100, 20, 20
    preds[0, 4] = torch.linspace(0.9, 0.5, n)
    preds = preds.to(device)
    packed = triton_packed(preds, BatchedNMS(0.25, 0.3), 32)
    assert int(packed[0, -3]) == n // 2
    assert_matches_greedy(packed, preds, 300, conf=0.25, iou=0.3)


def test_fp16_input_and_ties(device):
    """FP16 head output (scores tie often): the reference order is score desc, then anchor index asc."""
    preds = random_preds(b=2, a=200, seed=6)
    preds[:, 4:] = (preds[:, 4:] * 16).round() / 16  # few distinct scores: many exact ties
    preds = preds.half().to(device)
    packed = triton_packed(preds, BatchedNMS(0.2, 0.5), 256)
    assert (packed[:, -2] <= 256).all(), "every candidate should be kept for this comparison"
    assert_matches_greedy(packed, preds, 300, conf=0.2, iou=0.5)


def test_batched_nms_uses_kernels_unless_switched_off(device, monkeypatch):
    preds = random_preds(b=1, a=200, seed=7).to(device)
    nms = BatchedNMS(0.25, 0.6)
    with mock.patch.object(nms_triton, "nms_packed", wraps=nms_packed) as kernels:
        on = nms(preds)
        key_on = nms.graph_key(256, 6)
        monkeypatch.setenv(TRITON_ENV, "0")
        off = nms(preds)
        key_off = nms.graph_key(256, 6)
    assert kernels.call_count == 1, "ULTRALYTICS_GPU_TRITON=0 should keep the torch path"
    assert key_on != key_off, "a captured NMS graph must not be reused across the switch"
    for a, b in zip(on, off):
        np.testing.assert_array_equal(a, b)


def test_cpu_tensors_keep_the_torch_path_without_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    preds = random_preds(b=1, a=100, seed=12)
    with mock.patch.object(nms_triton, "nms_packed") as kernels:
        out = BatchedNMS(0.25, 0.6)(preds)
    assert kernels.call_count == 0
    np.testing.assert_allclose(out[0], greedy_nms(preds[0].numpy(), 0.25, 0.6), atol=1e-3)


def test_failure_warns_once_then_torch_path(device, monkeypatch):
    monkeypatch.setattr(nms_triton, "HEALTH", nms_triton.KernelHealth())
    preds = random_preds(b=1, a=100, seed=8).to(device)
    with (
        mock.patch.object(nms_triton, "nms_packed", side_effect=RuntimeError("no compiler")) as kernels,
        mock.patch.object(nms_triton.LOGGER, "warning") as warning,
    ):
        first, second = BatchedNMS(0.25, 0.6)(preds), BatchedNMS(0.25, 0.6)(preds)
    assert kernels.call_count == 1 and warning.call_count == 1 and "no compiler" in warning.call_args[0][0]
    np.testing.assert_allclose(first[0], greedy_nms(preds[0].cpu().numpy(), 0.25, 0.6), atol=1e-3)
    np.testing.assert_array_equal(first[0], second[0])


def test_nan_scores_are_no_candidates(device):
    """torch.max of scores with a NaN is NaN, never above conf: the anchor is dropped by both paths."""
    preds = random_preds(b=1, a=200, seed=11)
    preds[0, 5, :10] = float("nan")
    preds = preds.to(device)
    nms = BatchedNMS(0.25, 0.6)
    packed = triton_packed(preds, nms, 200)
    assert_rows_equal(packed, torch_packed(preds, nms, 200), nms.max_det)
    assert int(packed[0, -2]) == int((preds[0, 4:].max(0).values > 0.25).sum()) <= 200


def _compile_for_hopper(kernel, signature: dict, constants: dict, warps: int) -> str:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(kernel, {**signature, **dict.fromkeys(constants, "constexpr")}, constants)
    options = {"num_warps": warps, **nms_triton.COMPILE_OPTIONS}
    return nms_triton.triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]


@pytest.mark.parametrize("capacity", [32, 1024])
def test_kernels_compile_for_hopper_without_fma_or_approximate_division(monkeypatch, capacity):
    """No GPU needed: Triton compiles for sm_90 here, catching what the interpreter lets through; the IoU
    must be torch's roundings (no fused multiply-add, a correctly rounded division)."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    nms_triton._kernels.cache_clear()
    score_kernel, nms_kernel = nms_triton._kernels()
    try:
        ints = dict.fromkeys(["n_anchors", "stride_b", "stride_c", "stride_a"], "i32")
        score_ptx = _compile_for_hopper(
            score_kernel,
            {"preds_ptr": "*fp16", "keys_ptr": "*i64", "cls_ptr": "*i32", "filter_ptr": "*i64", "n_filter": "i32"}
            | ints
            | {"conf": "fp32"},
            nms_triton.score_constants(80, True),
            4,
        )
        pointers = {"preds_ptr": "*fp32", "keys_ptr": "*i64", "cls_ptr": "*i32", "slots_ptr": "*i64"}
        pointers |= {"boxes_ptr": "*fp32", "bits_ptr": "*u32", "out_ptr": "*fp32"}
        nms_ptx = _compile_for_hopper(
            nms_kernel,
            pointers | {"n_anchors": "i32", "top_k": "i32", "max_det": "i32"} | ints | {"iou_thres": "fp32"},
            nms_triton.nms_constants(capacity, False),
            nms_triton.nms_warps(capacity),
        )
    except ImportError as error:  # a Triton without its CUDA backend
        pytest.skip(f"Triton cannot compile for CUDA here: {error}")
    finally:
        nms_triton._kernels.cache_clear()
    assert ".entry _score_kernel" in score_ptx and ".entry _nms_kernel" in nms_ptx
    assert "div.rn.f32" in nms_ptx
    for ptx in (score_ptx, nms_ptx):
        assert "fma.rn.f32" not in ptx and "div.full.f32" not in ptx and "div.approx.f32" not in ptx


def test_direct_call_errors():
    with pytest.raises(ValueError, match="raw head output"):
        nms_packed(torch.zeros(1, 4, 10), 0.25, 0.7, None, False, 300, 64)
    with pytest.raises(ValueError, match="top_k"):
        nms_packed(torch.zeros(1, 6, 10), 0.25, 0.7, None, False, 300, nms_triton.MAX_TOP_K + 1)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_equals_torch_path_eager_and_in_graph(dtype):
    """The compiled kernels: the torch path's rows (FP32: FP16 scores tie, where topk's order is
    undefined), the greedy reference, and the same rows when replayed from a CUDA graph on new input."""
    preds = random_preds(b=8, a=1000, seed=9).to("cuda", dtype)
    nms = BatchedNMS(0.25, 0.6, classes=[0, 2, 3])
    nms.prepare_classes(preds.device)
    k = capped_top_k(1024, preds.shape[2])  # as every caller asks: at most the anchors there are (torch's topk)
    eager = nms.run_on_device(preds, k, 6)
    assert (eager[:, -2] > 256).all() and (eager[:, -2] <= k).all()
    if dtype == torch.float32:
        assert_rows_equal(eager, torch_packed(preds, nms, k), nms.max_det)
    assert_matches_greedy(eager, preds, nms.max_det, conf=0.25, iou=0.6, classes=[0, 2, 3])

    static = preds.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            nms.run_on_device(static, k, 6)
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        out = nms.run_on_device(static, k, 6)
    fresh = random_preds(b=8, a=1000, seed=10).to("cuda", dtype)
    static.copy_(fresh)
    graph.replay()
    torch.cuda.synchronize()
    assert_rows_equal(out, nms.run_on_device(fresh, k, 6), nms.max_det)
    assert nms_triton.HEALTH.failure is None
