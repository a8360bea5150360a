"""ONNX export: FP16/FP32 I/O types, parity with PyTorch, dynamic shapes, opsets, metadata."""

from __future__ import annotations

import ast

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from tests.conftest import REFERENCE
from tests.onnx.conftest import IMGSZ, match_boxes
from ultralytics import YOLO
from ultralytics.export.metadata import parse_metadata, read_onnx_metadata
from ultralytics.export.onnx import DYNAMIC_AXES, convert_to_fp16, max_supported_opset, resolve_opset
from ultralytics.nn.backends.onnxruntime import OnnxRuntimeBackend


def _elem_types(path) -> tuple[int, int]:
    graph = onnx.load(str(path)).graph
    return graph.input[0].type.tensor_type.elem_type, graph.output[0].type.tensor_type.elem_type


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference relative to the largest reference magnitude."""
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_fp32_export_lands_next_to_weights(fp32_onnx, export_dir):
    assert fp32_onnx == export_dir / "shapes.onnx"
    assert _elem_types(fp32_onnx) == (TensorProto.FLOAT, TensorProto.FLOAT)
    graph = onnx.load(str(fp32_onnx)).graph
    assert [i.name for i in graph.input] == ["images"] and [o.name for o in graph.output] == ["output0"]
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, IMGSZ, IMGSZ]


def test_fp16_export_on_cpu_has_fp16_io_and_weights(fp16_onnx):
    assert _elem_types(fp16_onnx) == (TensorProto.FLOAT16, TensorProto.FLOAT16)
    model = onnx.load(str(fp16_onnx))
    weights = [i for i in model.graph.initializer if i.dims and np.prod(i.dims) > 16]
    assert weights and all(i.data_type == TensorProto.FLOAT16 for i in weights)
    backend = OnnxRuntimeBackend(fp16_onnx, fp16=False)  # the model's dtype wins over the caller's
    assert backend.fp16


def test_keep_io_types_gives_fp32_io_around_fp16_body(fp32_onnx):
    converted = convert_to_fp16(onnx.load(str(fp32_onnx)), keep_io_types=True)
    graph = converted.graph
    assert graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    convs = [n for n in graph.node if n.op_type == "Conv"]
    conv_weights = {n.input[1] for n in convs}
    assert all(i.data_type == TensorProto.FLOAT16 for i in graph.initializer if i.name in conv_weights)
    onnx.checker.check_model(converted, full_check=True)


def test_fp32_raw_outputs_match_pytorch(fp32_onnx, pt_yolo):
    data = np.load(REFERENCE / "shapes_raw_320.npz")
    backend = OnnxRuntimeBackend(fp32_onnx)
    checked = 0
    for k in range(4):
        x = data[f"input_{k}"]
        if x.shape[2:] != (IMGSZ, IMGSZ):  # rect-letterboxed inputs do not fit the static graph
            continue
        with torch.no_grad():
            expected = pt_yolo.model(torch.from_numpy(x)).numpy()
        got = backend.forward(torch.from_numpy(x)).numpy()
        assert _rel_err(got, expected) < 1e-4
        checked += 1
    assert checked >= 2


def test_fp32_onnx_predicts_like_pytorch(fp32_onnx, pt_square_predictions, val_images):
    # rect=False in the fixture: the .pt letterboxes to the full square too, so both see identical input tensors.
    pt = pt_square_predictions
    ox = YOLO(fp32_onnx).predict(val_images, imgsz=IMGSZ, batch=25, verbose=False)
    assert len(pt) == len(ox) == 100
    for a, b in zip(pt, ox):
        assert len(a.boxes) == len(b.boxes), a.path
        order_a, order_b = np.argsort(-a.boxes.conf.numpy()), np.argsort(-b.boxes.conf.numpy())
        np.testing.assert_array_equal(a.boxes.cls.numpy()[order_a], b.boxes.cls.numpy()[order_b])
        np.testing.assert_allclose(a.boxes.xyxy.numpy()[order_a], b.boxes.xyxy.numpy()[order_b], atol=0.05)
        np.testing.assert_allclose(a.boxes.conf.numpy()[order_a], b.boxes.conf.numpy()[order_b], atol=1e-4)


def test_fp16_onnx_matches_fp32_boxes(fp32_onnx, fp16_onnx, val_images):
    fp32 = YOLO(fp32_onnx).predict(val_images, imgsz=IMGSZ, batch=25, verbose=False)
    fp16 = YOLO(fp16_onnx).predict(val_images, imgsz=IMGSZ, batch=25, verbose=False)
    total = matched = extra = 0
    for a, b in zip(fp32, fp16):
        n, m, e = match_boxes(a, b, iou_thres=0.95)
        total, matched, extra = total + n, matched + m, extra + e
    assert total > 100
    assert matched >= 0.99 * total, f"only {matched}/{total} FP32 boxes matched in FP16"
    assert extra == 0, f"{extra} FP16 boxes above conf 0.5 have no FP32 counterpart"


def test_dynamic_export_runs_at_several_batches_and_sizes(dynamic_onnx, pt_yolo):
    graph = onnx.load(str(dynamic_onnx)).graph
    for value, axes in ((graph.input[0], DYNAMIC_AXES["images"]), (graph.output[0], DYNAMIC_AXES["output0"])):
        dims = value.type.tensor_type.shape.dim
        assert {i: dims[i].dim_param for i in axes} == axes
    backend = OnnxRuntimeBackend(dynamic_onnx)
    assert backend.dynamic and backend.imgsz is None
    rng = np.random.default_rng(0)
    for batch, (h, w) in [(1, (320, 320)), (3, (320, 320)), (8, (320, 320)), (3, (256, 384))]:
        x = torch.from_numpy(rng.random((batch, 3, h, w), dtype=np.float32))
        with torch.no_grad():
            expected = pt_yolo.model(x).numpy()
        got = backend.forward(x).numpy()
        assert (
            got.shape
            == expected.shape
            == (batch, 8, (h // 8) * (w // 8) + (h // 16) * (w // 16) + (h // 32) * (w // 32))
        )
        assert _rel_err(got, expected) < 1e-4, (batch, h, w)


def test_fp16_conversion_of_dynamic_graph_runs(dynamic_onnx):
    """Dynamic graphs build the anchor grid with Range, which has no FP16 kernel: it must stay FP32."""
    import onnxruntime as ort

    converted = convert_to_fp16(onnx.load(str(dynamic_onnx)))
    session = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in [(2, 3, 320, 320), (1, 3, 256, 448)]:
        out = session.run(None, {"images": np.full(shape, 0.5, np.float16)})[0]
        assert out.dtype == np.float16 and np.isfinite(out).all()


def test_opset_default_and_checks():
    newest = max_supported_opset()
    assert resolve_opset(None) == min(18, newest)
    assert resolve_opset(newest) == newest
    for bad in (newest + 1, 5, "abc", 17.5, True):
        with pytest.raises(ValueError, match="opset"):
            resolve_opset(bad)


def _upstream_read(raw: dict[str, str]) -> dict:
    """Upstream's reading rules, written out independently: int() for counts, literal_eval for the rest."""
    out = dict(raw)
    for key in ("stride", "batch", "channels"):
        if key in out:
            out[key] = int(out[key])
    for key in ("imgsz", "names", "kpt_shape", "args", "end2end"):
        if key in out:
            out[key] = ast.literal_eval(out[key])
    return out


def test_metadata_readable_by_upstream_rules(fp32_onnx, upstream_onnx, pt_yolo):
    ours = read_onnx_metadata(fp32_onnx)
    theirs = read_onnx_metadata(upstream_onnx)
    assert set(theirs) <= set(ours), f"missing upstream keys: {set(theirs) - set(ours)}"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in ours.items())
    read = _upstream_read(ours)
    assert read["names"] == pt_yolo.names
    assert read["imgsz"] == [IMGSZ, IMGSZ] and read["stride"] == 32 and read["batch"] == 1
    assert read["channels"] == 3 and read["end2end"] is False and read["task"] == "detect"
    assert isinstance(read["args"], dict) and read["args"]["dynamic"] is False
    # parse_metadata gives the same typed values for ours and upstream's
    assert parse_metadata(ours)["names"] == parse_metadata(theirs)["names"] == pt_yolo.names
    assert parse_metadata(theirs)["imgsz"] == [320, 320]


def test_parse_metadata_accepts_engine_json_forms():
    parsed = parse_metadata({"stride": 32, "names": {"0": "a", "1": "b"}, "imgsz": 640, "batch": "4"})
    assert parsed["names"] == {0: "a", 1: "b"} and parsed["imgsz"] == [640, 640] and parsed["batch"] == 4
    with pytest.raises(ValueError, match="stride"):
        parse_metadata({"stride": "thirty-two"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_export_on_cuda_agrees_with_cpu(pt_yolo, fp16_onnx, tmp_path):
    """One FP16 path (export FP32, convert the graph) on every device: the CUDA export must match."""
    from ultralytics.export.onnx import export_onnx

    cuda = export_onnx(pt_yolo.model, tmp_path / "cuda.onnx", imgsz=(IMGSZ, IMGSZ), half=True, device="cuda:0")
    assert _elem_types(cuda) == (TensorProto.FLOAT16, TensorProto.FLOAT16)
    a, b = OnnxRuntimeBackend(fp16_onnx), OnnxRuntimeBackend(cuda)
    x = torch.from_numpy(np.load(REFERENCE / "shapes_raw_320.npz")["input_0"])
    x = x if tuple(x.shape[2:]) == (IMGSZ, IMGSZ) else torch.full((1, 3, IMGSZ, IMGSZ), 0.5)
    assert _rel_err(b.forward(x).float().numpy(), a.forward(x).float().numpy()) < 1e-3
