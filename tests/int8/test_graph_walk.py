"""The one graph walk behind both INT8 paths: hand-checked answers on a small ONNX graph, and the ONNX and
TensorRT adapters finding the same head convolutions on the same fixture models."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import MODELS
from ultralytics.export.calibrator import _head_layers
from ultralytics.export.graph_walk import consumer_relation, downstream, reaches
from ultralytics.export.quantize import head_prediction_convs
from ultralytics.trt.logger import make_logger
from ultralytics.trt.network import network_flags


def diamond() -> onnx.ModelProto:
    """x → a → (b, c); b → d; c → stop → e; d, e → out.  `d` and `e` are the targets; `stop` blocks."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="a"),
        helper.make_node("Relu", ["a"], ["b"], name="b"),
        helper.make_node("Relu", ["a"], ["c"], name="c"),
        helper.make_node("Relu", ["b"], ["d"], name="d"),
        helper.make_node("Relu", ["c"], ["s"], name="stop"),
        helper.make_node("Relu", ["s"], ["e"], name="e"),
        helper.make_node("Add", ["d", "e"], ["out"], name="out"),
        helper.make_node("Relu", ["x"], ["side"], name="side"),  # reads the input, leads nowhere
    ]
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("x", "out", "side")]
    return helper.make_model(helper.make_graph(nodes, "diamond", info[:1], info[1:]))


def test_reaches_follows_consumers_and_stops_where_told():
    model = diamond()
    nodes = list(model.graph.node)
    users = consumer_relation(nodes, lambda n: n.input, lambda n: n.output)
    assert [u.name for u in users(nodes[0])] == ["b", "c"]
    targets = {"d", "e"}
    through_all = reaches(nodes, users, lambda n: n.name in targets)
    assert dict(zip((n.name for n in nodes), through_all)) == {
        "a": True, "b": True, "c": True, "d": False, "stop": True, "e": False, "out": False, "side": False
    }  # fmt: skip
    blocked = reaches(nodes, users, lambda n: n.name in targets, passes_through=lambda n: n.name != "stop")
    assert dict(zip((n.name for n in nodes), blocked))["c"] is False  # only via `stop`
    assert dict(zip((n.name for n in nodes), blocked))["a"] is True  # still via b → d


def test_reaches_holds_across_passes_over_a_protobuf_graph():
    """Answers are by position, not by wrapper identity: a second pass over graph.node gets new wrappers."""
    model = diamond()
    nodes = list(model.graph.node)
    answers = reaches(nodes, consumer_relation(nodes, lambda n: n.input, lambda n: n.output), lambda n: n.name == "e")
    del nodes
    assert [node.name for node, hit in zip(model.graph.node, answers) if hit] == ["a", "c", "stop"]


def test_downstream_lists_what_reads_a_source_in_order():
    nodes = list(diamond().graph.node)
    after = downstream(nodes, lambda n: n.input, lambda n: n.output, lambda n: n.name == "c")
    assert [n.name for n in after] == ["stop", "e", "out"]


@pytest.mark.parametrize("onnx_file", ["shapes_yolov8n_upstream.onnx", "shapes_yolo26n_end2end_upstream.onnx"])
def test_onnx_and_tensorrt_adapters_find_the_same_head(onnx_file, install_tensorrt_standin):
    """The quantizer (ONNX nodes) and the calibrator's precision pins (TensorRT layers, through the
    stand-in's parser) walk different graph types with the same function: they must agree."""
    trt = install_tensorrt_standin("10.16.1.11")
    path = MODELS / onnx_file
    logger = make_logger(trt)
    network = trt.Builder(logger).create_network(network_flags(trt))
    assert trt.OnnxParser(network, logger).parse(path.read_bytes())
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    from_onnx = set(head_prediction_convs(onnx.load(str(path))))
    assert len(from_onnx) in (6, 7)  # YOLOv8: 3 box + 3 class + DFL; YOLO26 (no DFL): 3 + 3
    assert _head_layers(trt, layers) == from_onnx
