"""Small ONNX graphs and build helpers for testing the stand-in itself."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_silu_model(seed: int = 0, batch: str | int = "batch") -> bytes:
    """Conv(3→4, 3x3, pad 1) + SiLU (as x * sigmoid(x)) on a (batch, 3, 8, 8) input named 'images'."""
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["images", "W", "B"], ["conv"], pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["conv"], ["gate"]),
            helper.make_node("Mul", ["conv", "gate"], ["output0"]),
        ],
        "conv_silu",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 4, 8, 8])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def unsupported_op_model() -> bytes:
    """A graph using an op no ONNX Runtime CPU kernel implements (custom domain)."""
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example")],
        "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    return model.SerializeToString()


def collecting_logger(trt):
    """An ILogger subclass that records (severity, message), as users of real TensorRT write them."""

    class CollectingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[tuple[object, str]] = []

        def log(self, severity, msg):
            self.messages.append((severity, msg))

        def errors(self) -> list[str]:
            return [m for s, m in self.messages if s == trt.ILogger.Severity.ERROR]

    return CollectingLogger()


def network_flags(trt) -> int:
    """EXPLICIT_BATCH where the version has it (8.6 requires it for ONNX; later versions ignore it)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    return 0 if flag is None else 1 << int(flag)


def parse(trt, logger, model_bytes: bytes):
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(model_bytes)
    assert ok, [str(parser.get_error(i)) for i in range(parser.num_errors)]
    return builder, network


def build_engine(trt, logger, model_bytes: bytes, *, fp16: bool = False, batch=(1, 2, 4)):
    builder, network = parse(trt, logger, model_bytes)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 28)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape("images", *[(b, 3, 8, 8) for b in batch])
    assert config.add_optimization_profile(profile) == 0
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, logger.errors()
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    assert engine is not None, logger.errors()
    return engine, bytes(serialized)
