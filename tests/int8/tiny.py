"""A tiny Conv → SiLU → Conv graph whose every quantization scale can be checked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_model(path: Path, size: int = 32) -> tuple[Path, np.ndarray, np.ndarray]:
    """images → Conv(3→4) → SiLU → Conv(4→8, 1x1) → output; the last Conv has no activation (a 'head')."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(4, 3, 3, 3)).astype(np.float32) * np.array([1, 0.1, 5, 0.01], np.float32)[:, None, None, None]
    w2 = rng.normal(size=(8, 4, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["images", "w1"], ["c1"], pads=[1, 1, 1, 1], name="feature/Conv"),
            helper.make_node("Sigmoid", ["c1"], ["s1"], name="feature/Sigmoid"),
            helper.make_node("Mul", ["c1", "s1"], ["a1"], name="feature/Mul"),
            helper.make_node("Conv", ["a1", "w2"], ["output0"], name="predict/Conv"),
        ],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 8, size, size])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path, w1, w2
