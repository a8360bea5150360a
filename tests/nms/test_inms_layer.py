"""The stand-in's INMSLayer follows TensorRT's documented semantics (see tests/trt_standin/nms.py for the
pages): checked against ONNX Runtime's own NonMaxSuppression, an independent implementation, on every
recorded TensorRT surface."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

B, N, C = 2, 40, 3


def inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 60, (B, N, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (B, N, 2)).astype(np.float32)], 2)  # CORNER_PAIRS
    scores = rng.uniform(-0.2, 1, (B, N, C)).astype(np.float32)  # some negative: below the default threshold 0
    return boxes, scores


def onnx_reference(boxes, scores, max_out: int, iou: float, score: float) -> np.ndarray:
    """ONNX Runtime's NonMaxSuppression (scores as [B, C, N]) rows, re-sorted as TensorRT documents: by batch,
    then by decreasing score."""
    node = helper.make_node("NonMaxSuppression", ["b", "s", "m", "i", "t"], ["o"])
    graph = helper.make_graph(
        [node],
        "ref",
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, boxes.shape),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, scores.transpose(0, 2, 1).shape)],
        [helper.make_tensor_value_info("o", TensorProto.INT64, None)],
        [helper.make_tensor("m", TensorProto.INT64, [1], [max_out]), helper.make_tensor("i", TensorProto.FLOAT, [1], [iou]),
         helper.make_tensor("t", TensorProto.FLOAT, [1], [score])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rows = ort.InferenceSession(model.SerializeToString()).run(None, {"b": boxes, "s": scores.transpose(0, 2, 1)})[0]
    keys = [(b, -scores[b, n, c]) for b, c, n in rows]
    return rows[sorted(range(len(rows)), key=lambda i: keys[i])]


def run_layer(trt, boxes, scores, max_out: int, *, iou=None, score=None, limit=None, fmt=None, float_max=False):
    """Build a network with one INMSLayer through the stand-in and run it; returns (indices, count)."""
    from tests.trt_standin.engine import _session

    logger = trt.Logger(trt.Logger.ERROR)
    network = trt.Builder(logger).create_network(0)
    b = network.add_input("boxes", trt.float32, boxes.shape)
    s = network.add_input("scores", trt.float32, scores.shape)
    keep = []

    def const(array):
        keep.append(array)
        return network.add_constant(array.shape, trt.Weights(array)).get_output(0)

    layer = network.add_nms(b, s, const(np.array(max_out, np.float32 if float_max else np.int32)))
    if iou is not None:
        layer.set_input(3, const(np.array(iou, np.float32)))
    if score is not None:
        layer.set_input(4, const(np.array(score, np.float32)))
    if limit is not None:
        layer.topk_box_limit = limit
    if fmt is not None:
        layer.bounding_box_format = fmt
    for i in range(2):
        network.mark_output(layer.get_output(i))
    assert layer.get_output(0).dtype == trt.int32 and layer.get_output(1).dtype == trt.int32
    model = network._assemble_model()  # what build_serialized_network hands to the executor
    out = _session(model.SerializeToString()).run(None, {"boxes": boxes, "scores": scores})
    return out[0], out[1]


def test_selection_order_and_count_match_the_documented_semantics(trt):
    boxes, scores = inputs()
    indices, count = run_layer(trt, boxes, scores, 4, iou=0.3, score=0.2)
    expected = onnx_reference(boxes, scores, 4, 0.3, 0.2)
    assert indices.dtype == np.int32 and count.shape == () and int(count) == len(indices) == len(expected)
    np.testing.assert_array_equal(indices, expected)
    batches = indices[:, 0]
    assert (np.diff(batches) >= 0).all()
    picked = scores[indices[:, 0], indices[:, 2], indices[:, 1]]
    for b in range(B):  # decreasing score within each batch item, whatever the class
        assert (np.diff(picked[batches == b]) <= 0).all()


def test_default_thresholds_are_zero(trt):
    boxes, scores = inputs(1)
    indices, _ = run_layer(trt, boxes, scores, 100)
    np.testing.assert_array_equal(indices, onnx_reference(boxes, scores, 100, 0.0, 0.0))
    assert (scores[indices[:, 0], indices[:, 2], indices[:, 1]] > 0).all()  # the score must exceed 0.0


def test_topk_box_limit_bounds_the_candidates_per_batch_item(trt):
    boxes, scores = inputs(2)
    indices, _ = run_layer(trt, boxes, scores, 100, iou=1.0, limit=7)  # IoU 1: nothing is suppressed
    for b in range(B):
        mine = indices[indices[:, 0] == b]
        best7 = np.sort(scores[b].ravel())[::-1][:7]
        np.testing.assert_allclose(np.sort(scores[b, mine[:, 2], mine[:, 1]])[::-1], best7)


def test_center_sizes_format_equals_corner_pairs_on_converted_boxes(trt):
    boxes, scores = inputs(3)
    centre = np.concatenate([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], 2)
    corners, _ = run_layer(trt, boxes, scores, 5, iou=0.4, score=0.1)
    sized, _ = run_layer(trt, centre, scores, 5, iou=0.4, score=0.1, fmt=trt.BoundingBoxFormat.CENTER_SIZES)
    np.testing.assert_array_equal(sized, corners)


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"float_max": True}, "0D INT32"), ({"limit": 6000}, "topk_box_limit"), ({"iou": 1.5}, r"outside \[0, 1\]")],
)
def test_invalid_layers_fail_the_build(trt, kw, message):
    from tests.trt_standin.layers import LayerBuildError

    boxes, scores = inputs()
    with pytest.raises(LayerBuildError, match=message):
        run_layer(trt, boxes, scores, 5, **kw)


def test_onnx_parser_imports_non_max_suppression_as_inms_layer(trt, tmp_path):
    boxes, scores = inputs(4)
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "m", "i", "t"], ["rows"])
    as_float = helper.make_node("Cast", ["rows"], ["selected"], to=TensorProto.FLOAT)  # 8.6 has no INT64 outputs
    graph = helper.make_graph(
        [node, as_float],
        "g",
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, boxes.shape),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, (B, C, N))],
        [helper.make_tensor_value_info("selected", TensorProto.FLOAT, None)],
        [helper.make_tensor("m", TensorProto.INT64, [1], [3]), helper.make_tensor("i", TensorProto.FLOAT, [1], [0.5]),
         helper.make_tensor("t", TensorProto.FLOAT, [1], [0.3])],
    )  # fmt: skip
    path = tmp_path / "nms.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    from ultralytics.trt.network import network_flags

    logger = trt.Logger(trt.Logger.ERROR)
    network = trt.Builder(logger).create_network(network_flags(trt))
    assert trt.OnnxParser(network, logger).parse_from_file(str(path))
    types = [network.get_layer(i).type for i in range(network.num_layers)]
    assert trt.LayerType.NMS in types
    from tests.trt_standin.engine import _session

    out = _session(network._assemble_model().SerializeToString()).run(
        None, {"boxes": boxes, "scores": scores.transpose(0, 2, 1)}
    )
    np.testing.assert_array_equal(out[0], onnx_reference(boxes, scores, 3, 0.5, 0.3))
