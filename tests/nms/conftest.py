"""Shared pieces for the nms=True tests: letterboxed shapes images, the .pt's raw output and its NMS
(the normal path every NMS-in-the-graph export must reproduce)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from tests.conftest import SHAPES
from ultralytics.trt.device import HOST_MEMORY_ENV

IMGSZ = 320
IMAGES = sorted((SHAPES / "val" / "images").glob("*.jpg"))[:4]


@pytest.fixture(autouse=True)
def host_memory(monkeypatch):
    """The stand-in reads host pointers: let the builder and backend use CPU tensors (the documented hook)."""
    monkeypatch.setenv(HOST_MEMORY_ENV, "1")


@pytest.fixture(scope="session")
def batch() -> torch.Tensor:
    """The val images letterboxed to IMGSZ x IMGSZ exactly as predict does, as one BCHW RGB 0..1 batch."""
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox((IMGSZ, IMGSZ), auto=False)
    images = np.stack([letterbox(image=cv2.imread(str(p))) for p in IMAGES])
    return torch.from_numpy(np.ascontiguousarray(images[..., ::-1].transpose(0, 3, 1, 2))).float() / 255


@pytest.fixture(scope="session")
def model(shapes_pt):
    from ultralytics.nn.checkpoint import load_checkpoint

    detection_model, _ = load_checkpoint(shapes_pt)
    return detection_model.float().eval()


@pytest.fixture(scope="session")
def raw(model, batch) -> torch.Tensor:
    """The .pt's raw head output (B, 4 + nc, A) on `batch`."""
    with torch.no_grad():
        out = model(batch)
    return (out[0] if isinstance(out, (list, tuple)) else out).float()


def normal_path(raw: torch.Tensor, conf=0.25, iou=0.7, max_det=300, agnostic=False) -> list[np.ndarray]:
    """What predict does after a backend without NMS: the package's NMS on the raw output."""
    from ultralytics.utils.ops import non_max_suppression

    return [d.numpy() for d in non_max_suppression(raw, conf, iou, max_det=max_det, agnostic=agnostic)]


def assert_same_detections(out: torch.Tensor, expected: list[np.ndarray], box_tol: float, score_tol: float) -> None:
    """`out` (B, max_det, 6) holds the expected detections in order, then zero rows only."""
    out = out.detach().float().cpu().numpy()
    assert out.shape[0] == len(expected) and out.shape[2] == 6
    for image, (got, ref) in enumerate(zip(out, expected)):
        n = len(ref)
        assert n > 0, "the reference should have detections: the test would prove nothing"
        assert np.count_nonzero(got[:, 4] > 0) == n, (image, got[: n + 2], ref)
        np.testing.assert_allclose(got[:n, :4], ref[:, :4], atol=box_tol, rtol=0)
        np.testing.assert_allclose(got[:n, 4], ref[:, 4], atol=score_tol, rtol=0)
        np.testing.assert_array_equal(got[:n, 5], ref[:, 5])
        assert not got[n:].any(), "rows after the last detection must be zeros"


@pytest.fixture(scope="session")
def plain_graph(model, tmp_path_factory):
    """The shapes model's dynamic FP32 ONNX without NMS, exported once (the slow part of these tests)."""
    from ultralytics.export.metadata import build_metadata
    from ultralytics.export.onnx import export_onnx

    path = tmp_path_factory.mktemp("plain") / "plain.onnx"
    meta = build_metadata(model, imgsz=(IMGSZ, IMGSZ), batch=4, args={})
    export_onnx(model, path, imgsz=(IMGSZ, IMGSZ), batch=4, dynamic=True, opset=17, metadata=meta)
    return onnx.load(str(path))


@pytest.fixture
def graph_with_nms(plain_graph, tmp_path):
    """Write the plain graph (optionally FP16) with the NMS subgraph appended; metadata says nms=True."""
    from ultralytics.export.metadata import to_onnx_props
    from ultralytics.export.nms import NmsSettings, append_nms
    from ultralytics.export.onnx import convert_to_fp16

    def make(name: str = "nms", half: bool = False, **settings) -> Path:
        graph = convert_to_fp16(plain_graph) if half else plain_graph
        meta = {p.key: p.value for p in graph.metadata_props}
        graph = append_nms(graph, NmsSettings(**settings))
        meta["args"] = str({"nms": True, "batch": 4, "dynamic": True})
        onnx.helper.set_model_props(graph, to_onnx_props(meta))
        path = tmp_path / f"{name}.onnx"
        onnx.save(graph, str(path))
        return path

    return make
