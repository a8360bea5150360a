"""A tiny detector-shaped ONNX graph (images → Conv → (B, 8, anchors)) for fast error-path tests.

8 output channels read as 4 box values + 4 classes, like the shapes model, without its export cost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_onnx(
    path: Path, dynamic: bool = False, size: int = 64, extra_nodes: list | None = None, fp16_inside: bool = False
) -> Path:
    """`fp16_inside`: FP32 inputs/outputs around an FP16 body, the graph `fp32_io=True` builds from."""
    rng = np.random.default_rng(0)
    wdtype = np.float16 if fp16_inside else np.float32
    weight = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(wdtype), "w")
    shape = numpy_helper.from_array(np.array([0, 8, -1], dtype=np.int64), "shape")
    dims = ["batch", 3, "height", "width"] if dynamic else [1, 3, size, size]
    out_dims = ["batch", 8, "anchors"] if dynamic else [1, 8, size * size]
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["conv", "shape"], ["output0"]),
    ]
    if fp16_inside:
        nodes = [
            helper.make_node("Cast", ["images"], ["images16"], to=TensorProto.FLOAT16),
            helper.make_node("Conv", ["images16", "w"], ["conv"], pads=[1, 1, 1, 1]),
            helper.make_node("Reshape", ["conv", "shape"], ["out16"]),
            helper.make_node("Cast", ["out16"], ["output0"], to=TensorProto.FLOAT),
        ]
    nodes += extra_nodes or []
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_dims)],
        initializer=[weight, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
