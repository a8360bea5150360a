"""The ONNX Runtime backend on upstream's ONNX, on models without metadata, and on non-YOLO files."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from tests.conftest import REFERENCE
from tests.onnx.conftest import match_boxes
from ultralytics import YOLO
from ultralytics.nn.backends.onnxruntime import OnnxRuntimeBackend


def test_upstream_onnx_raw_outputs_match_reference(upstream_onnx):
    data = np.load(REFERENCE / "shapes_raw_320.npz")
    backend = OnnxRuntimeBackend(upstream_onnx)
    assert (backend.imgsz, backend.batch, backend.dynamic, backend.fp16) == ((320, 320), 1, False, False)
    assert backend.names == {0: "circle", 1: "square", 2: "triangle", 3: "star"} and backend.stride == 32
    checked = 0
    for k in range(4):
        x, expected = data[f"input_{k}"], data[f"output_{k}"]
        if x.shape[2:] != backend.imgsz:
            continue
        got = backend.forward(torch.from_numpy(x)).numpy()
        assert np.abs(got - expected).max() <= 1e-3 * np.abs(expected).max()
        checked += 1
    assert checked >= 2


def test_upstream_onnx_predicts_like_pt(upstream_onnx, pt_square_predictions, val_images):
    # rect=False in the fixture: the .pt letterboxes to the full square too, so both see identical input tensors.
    pt = pt_square_predictions
    up = YOLO(upstream_onnx).predict(val_images, batch=25, verbose=False)  # imgsz from the model
    total = matched = extra = 0
    for a, b in zip(pt, up):
        assert len(a.boxes) == len(b.boxes), a.path
        n, m, e = match_boxes(a, b, iou_thres=0.99)
        total, matched, extra = total + n, matched + m, extra + e
    assert total > 100 and matched == total and extra == 0


def _strip_metadata(src, dst):
    model = onnx.load(str(src))
    del model.metadata_props[:]
    onnx.save(model, str(dst))
    return dst


def test_model_without_metadata_gets_default_names(upstream_onnx, tmp_path, caplog):
    path = _strip_metadata(upstream_onnx, tmp_path / "bare.onnx")
    import logging

    logger = logging.getLogger("ultralytics")
    logger.addHandler(caplog.handler)
    try:
        backend = OnnxRuntimeBackend(path)
    finally:
        logger.removeHandler(caplog.handler)
    assert backend.names == {0: "class0", 1: "class1", 2: "class2", 3: "class3"} and backend.stride == 32
    assert "no Ultralytics metadata" in caplog.text


def _save_graph(path, in_shape, out_shape, op="Identity"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
    nodes = [helper.make_node(op, ["x"], ["y"])] if op == "Identity" else op
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_non_yolo_onnx_is_rejected_clearly(tmp_path):
    path = _save_graph(tmp_path / "identity.onnx", [1, 3, 32, 32], [1, 3, 32, 32])
    with pytest.raises(ValueError, match="not a YOLO detection model"):
        OnnxRuntimeBackend(path)
    flat = tmp_path / "flat.onnx"
    reshape = [
        helper.make_node("Constant", [], ["s"], value=helper.make_tensor("s", TensorProto.INT64, [2], [1, -1])),
        helper.make_node("Reshape", ["x", "s"], ["y"]),
    ]
    _save_graph(flat, [1, 3, 32, 32], [1, 3072], op=reshape)
    with pytest.raises(ValueError, match="not a YOLO detection model"):
        OnnxRuntimeBackend(flat)


def test_unreadable_file_is_rejected_clearly(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"this is not protobuf")
    with pytest.raises(ValueError, match="could not load"):
        OnnxRuntimeBackend(path)


def test_metadata_that_disagrees_with_the_graph_is_rejected(upstream_onnx, tmp_path):
    model = onnx.load(str(upstream_onnx))
    for prop in model.metadata_props:
        if prop.key == "names":
            prop.value = str({i: f"c{i}" for i in range(80)})
    onnx.save(model, str(tmp_path / "wrong.onnx"))
    with pytest.raises(ValueError, match="80 classes"):
        OnnxRuntimeBackend(tmp_path / "wrong.onnx")


def test_static_model_rejects_other_shapes(upstream_onnx):
    backend = OnnxRuntimeBackend(upstream_onnx)
    with pytest.raises(ValueError, match="static model"):
        backend.forward(torch.zeros(1, 3, 256, 320))


def test_missing_onnxruntime_gives_install_hint(upstream_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ModuleNotFoundError, match="pip install onnxruntime"):
        OnnxRuntimeBackend(upstream_onnx)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_returns_cuda_tensor(upstream_onnx):
    backend = OnnxRuntimeBackend(upstream_onnx, device=torch.device("cuda:0"))
    data = np.load(REFERENCE / "shapes_raw_320.npz")
    x = torch.from_numpy(data["input_0"])
    if tuple(x.shape[2:]) != backend.imgsz:
        x = torch.zeros(1, 3, *backend.imgsz)
    cpu = OnnxRuntimeBackend(upstream_onnx).forward(x)
    for _ in range(2):  # the second call reuses the remembered output shape
        out = backend.forward(x.cuda())
        assert out.device.type == "cuda"
        torch.testing.assert_close(out.cpu(), cpu, rtol=1e-3, atol=1e-2)
