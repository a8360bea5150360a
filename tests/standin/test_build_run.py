"""Build → serialize → deserialize → execute through the stand-in, checked against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from tests.standin.helpers import (
    build_engine,
    collecting_logger,
    conv_silu_model,
    network_flags,
    parse,
    unsupported_op_model,
)


def ort_reference(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def run_v3(trt, engine, x: torch.Tensor) -> torch.Tensor:
    """Execute like a TensorRT 10 backend does: shapes, raw addresses, execute_async_v3."""
    context = engine.create_execution_context()
    assert context.set_input_shape("images", tuple(x.shape))
    out = torch.empty(tuple(context.get_tensor_shape("output0")), dtype=torch.float32)
    assert context.set_tensor_address("images", x.data_ptr())
    assert context.set_tensor_address("output0", out.data_ptr())
    assert context.execute_async_v3(0)
    return out


def test_round_trip_reproduces_onnxruntime(trt):
    logger = collecting_logger(trt)
    model = conv_silu_model()
    engine, _ = build_engine(trt, logger, model)
    assert engine.num_io_tensors == 2
    assert [engine.get_tensor_name(i) for i in range(2)] == ["images", "output0"]
    assert engine.get_tensor_mode("images") == trt.TensorIOMode.INPUT
    assert engine.get_tensor_mode("output0") == trt.TensorIOMode.OUTPUT
    assert engine.get_tensor_dtype("output0") == trt.DataType.FLOAT
    assert tuple(engine.get_tensor_shape("images")) == (-1, 3, 8, 8)
    assert [tuple(d) for d in engine.get_tensor_profile_shape("images", 0)] == [
        (1, 3, 8, 8),
        (2, 3, 8, 8),
        (4, 3, 8, 8),
    ]
    rng = np.random.default_rng(1)
    for batch in (1, 3, 4):
        x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
        out = run_v3(trt, engine, torch.from_numpy(x))
        np.testing.assert_allclose(out.numpy(), ort_reference(model, x), rtol=1e-6, atol=1e-6)
    assert not logger.errors()


def test_execute_v2_with_numpy_pointers(trt):
    logger = collecting_logger(trt)
    model = conv_silu_model(seed=3)
    engine, _ = build_engine(trt, logger, model)
    context = engine.create_execution_context()
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert context.set_input_shape("images", x.shape)
    out = np.zeros(tuple(context.get_tensor_shape("output0")), np.float32)
    assert context.execute_v2([x.ctypes.data, out.ctypes.data])
    np.testing.assert_allclose(out, ort_reference(model, x), rtol=1e-6, atol=1e-6)


def test_binding_api_of_8_6(install_tensorrt_standin):
    trt = install_tensorrt_standin("8.6.1")
    logger = collecting_logger(trt)
    engine, _ = build_engine(trt, logger, conv_silu_model())
    assert engine.num_bindings == 2 and engine.binding_is_input(0) and not engine.binding_is_input(1)
    assert engine.get_binding_name(1) == "output0" and engine.get_binding_index("images") == 0
    assert engine["output0"] == 1 and engine[0] == "images"
    assert tuple(engine.get_binding_shape(0)) == (-1, 3, 8, 8)
    assert engine.get_binding_dtype(1) == trt.DataType.FLOAT
    assert [tuple(d) for d in engine.get_profile_shape(0, 0)][2] == (4, 3, 8, 8)
    context = engine.create_execution_context()
    assert context.set_binding_shape(0, (2, 3, 8, 8))
    assert tuple(context.get_binding_shape(1)) == (2, 4, 8, 8)


def test_plan_survives_a_file_and_another_runtime(trt, tmp_path):
    logger = collecting_logger(trt)
    builder, network = parse(trt, logger, conv_silu_model())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("images", (1, 3, 8, 8), (1, 3, 8, 8), (2, 3, 8, 8))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    path = tmp_path / "model.plan"
    with open(path, "wb") as f:
        f.write(serialized)  # IHostMemory supports the buffer protocol, like the real one
    assert serialized.nbytes == path.stat().st_size
    engine = trt.Runtime(logger).deserialize_cuda_engine(path.read_bytes())
    assert engine is not None and engine.num_optimization_profiles == 1
    assert bytes(engine.serialize()) == path.read_bytes()


@pytest.mark.parametrize("damage", ["random", "truncated", "flipped", "empty"])
def test_corrupt_plans_give_none_and_an_error(trt, damage):
    logger = collecting_logger(trt)
    _, plan = build_engine(trt, logger, conv_silu_model())
    data = {
        "random": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "truncated": plan[: len(plan) // 2],
        "flipped": plan[:100] + bytes([plan[100] ^ 0xFF]) + plan[101:],
        "empty": b"",
    }[damage]
    assert trt.Runtime(logger).deserialize_cuda_engine(data) is None
    assert logger.errors(), "the reason must be logged at ERROR"


def test_plan_from_another_version_is_refused(install_tensorrt_standin):
    trt8 = install_tensorrt_standin("8.6.1")
    _, plan = build_engine(trt8, collecting_logger(trt8), conv_silu_model())
    trt10 = install_tensorrt_standin("10.16.1.11")
    logger = collecting_logger(trt10)
    assert trt10.Runtime(logger).deserialize_cuda_engine(plan) is None
    assert any("8.6.1" in m and "10.16.1.11" in m for m in logger.errors())


def test_onnx_parser_needs_explicit_batch_on_8_6(install_tensorrt_standin):
    trt = install_tensorrt_standin("8.6.1")
    logger = collecting_logger(trt)
    network = trt.Builder(logger).create_network(0)  # implicit batch
    parser = trt.OnnxParser(network, logger)
    assert not parser.parse(conv_silu_model())
    assert parser.num_errors == 1 and "explicit batch" in parser.get_error(0).desc().lower()
    assert network.num_inputs == 0


def test_strongly_typed_flag_is_accepted_where_recorded(trt):
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly is None:
        pytest.skip(f"{trt.__version__} has no STRONGLY_TYPED flag")
    logger = collecting_logger(trt)
    network = trt.Builder(logger).create_network(1 << int(strongly))
    assert trt.OnnxParser(network, logger).parse(conv_silu_model())
    assert network.get_flag(strongly)


def test_ops_onnxruntime_cannot_run_are_parser_errors(trt, tmp_path):
    logger = collecting_logger(trt)
    network = trt.Builder(logger).create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    path = tmp_path / "bad.onnx"
    path.write_bytes(unsupported_op_model())
    assert not parser.parse_from_file(str(path))
    error = parser.get_error(0)
    assert error.code() == trt.ErrorCode.UNSUPPORTED_NODE and error.node() == 0 and "NoSuchOp" in error.desc()
    assert logger.errors()
    assert not parser.parse(b"\x00not an onnx model")
    assert parser.get_error(parser.num_errors - 1).code() == trt.ErrorCode.MODEL_DESERIALIZE_FAILED


def test_dynamic_input_without_profile_fails_the_build(trt):
    logger = collecting_logger(trt)
    builder, network = parse(trt, logger, conv_silu_model())
    assert builder.build_serialized_network(network, builder.create_builder_config()) is None
    assert any("optimization profile" in m for m in logger.errors())


@pytest.mark.parametrize(
    "shapes",
    [
        [(4, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8)],  # min > max
        [(1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 16, 16)],  # changes a fixed dimension
        [(1, 3, 8), (2, 3, 8), (4, 3, 8)],  # wrong rank
    ],
)
def test_invalid_profiles_fail_the_build(trt, shapes):
    logger = collecting_logger(trt)
    builder, network = parse(trt, logger, conv_silu_model())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("images", *shapes)
    config.add_optimization_profile(profile)
    assert builder.build_serialized_network(network, config) is None
    assert logger.errors()


def test_input_shape_outside_the_profile_is_refused(trt):
    logger = collecting_logger(trt)
    engine, _ = build_engine(trt, logger, conv_silu_model())
    context = engine.create_execution_context()
    assert context.set_input_shape("images", (8, 3, 8, 8)) is False
    assert context.set_input_shape("images", (2, 3, 9, 8)) is False
    assert logger.errors()
    assert context.set_input_shape("images", (2, 3, 8, 8)) is True


def test_bad_addresses_fail_cleanly(trt):
    logger = collecting_logger(trt)
    engine, _ = build_engine(trt, logger, conv_silu_model())
    context = engine.create_execution_context()
    context.set_input_shape("images", (1, 3, 8, 8))
    out = torch.empty(1, 4, 8, 8)
    context.set_tensor_address("output0", out.data_ptr())
    assert context.execute_async_v3(0) is False  # input address never set
    context.set_tensor_address("images", 16)  # not memory of this process
    assert context.execute_async_v3(0) is False
    assert len(logger.errors()) == 2


def test_fp16_flag_rounds_like_half_precision(trt):
    if not hasattr(trt.BuilderFlag, "FP16"):
        pytest.skip(f"{trt.__version__} has no weak typing (BuilderFlag.FP16)")
    logger = collecting_logger(trt)
    model = conv_silu_model(seed=5)
    engine, _ = build_engine(trt, logger, model, fp16=True)
    assert engine.get_tensor_dtype("images") == trt.DataType.FLOAT  # I/O keeps the ONNX dtypes
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = run_v3(trt, engine, torch.from_numpy(x)).numpy()
    reference = ort_reference(model, x)
    error = np.abs(out - reference)
    assert error.max() > 0, "FP16 must show reduced precision"
    # Every output is an FP16 value, so the error is bounded by FP16's resolution at that magnitude.
    assert np.array_equal(out, out.astype(np.float16).astype(np.float32))
    assert np.all(error <= 1e-2 * np.maximum(np.abs(reference), 1.0))


def test_fp16_typed_graph_keeps_its_types(trt):
    """Strong typing (and any version): an FP16 ONNX graph gives HALF engine I/O and ORT's FP16 result."""
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["images"], ["s"]), helper.make_node("Mul", ["images", "s"], ["output0"])],
        "fp16",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT16, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT16, [1, 3, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model_bytes = model.SerializeToString()
    logger = collecting_logger(trt)
    builder, network = parse(trt, logger, model_bytes)
    assert network.get_input(0).dtype == trt.DataType.HALF
    engine = trt.Runtime(logger).deserialize_cuda_engine(
        builder.build_serialized_network(network, builder.create_builder_config())
    )
    assert engine.get_tensor_dtype("output0") == trt.DataType.HALF
    x = torch.randn(1, 3, 8, 8).half()
    out = torch.empty(1, 3, 8, 8, dtype=torch.float16)
    context = engine.create_execution_context()
    assert context.execute_v2([x.data_ptr(), out.data_ptr()])
    np.testing.assert_array_equal(out.numpy(), ort_reference(model_bytes, x.numpy()))


def test_int8_calibrator_protocol(trt):
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        pytest.skip(f"{trt.__version__} has no INT8 calibrators")
    logger = collecting_logger(trt)
    batches = [np.random.default_rng(i).standard_normal((2, 3, 8, 8)).astype(np.float32) for i in range(3)]

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self, cache: bytes | None):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.calls: list[str] = []
            self.cache = cache
            self.remaining = list(batches)
            self.current = None

        def get_batch_size(self):
            self.calls.append("get_batch_size")
            return 2

        def get_batch(self, names):
            self.calls.append("get_batch")
            assert names == ["images"]
            if not self.remaining:
                return None
            self.current = self.remaining.pop(0)
            return [self.current.ctypes.data]

        def read_calibration_cache(self):
            self.calls.append("read_calibration_cache")
            return self.cache

        def write_calibration_cache(self, cache):
            self.calls.append("write_calibration_cache")
            self.cache = bytes(cache)

    def build(calibrator):
        builder, network = parse(trt, logger, conv_silu_model())
        config = builder.create_builder_config()
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        profile = builder.create_optimization_profile()
        profile.set_shape("images", (1, 3, 8, 8), (2, 3, 8, 8), (2, 3, 8, 8))
        config.add_optimization_profile(profile)
        return builder.build_serialized_network(network, config)

    fresh = Calibrator(None)
    assert build(fresh) is not None, logger.errors()
    assert fresh.calls[0] == "read_calibration_cache" and fresh.calls[1] == "get_batch_size"
    assert fresh.calls.count("get_batch") == len(batches) + 1  # until it returns None
    assert fresh.calls[-1] == "write_calibration_cache" and fresh.cache
    cached = Calibrator(fresh.cache)
    assert build(cached) is not None
    assert cached.calls == ["read_calibration_cache"]  # a cache skips calibration


def test_timing_cache_round_trip(trt):
    logger = collecting_logger(trt)
    builder, network = parse(trt, logger, conv_silu_model())
    config = builder.create_builder_config()
    cache = config.create_timing_cache(b"")
    assert config.set_timing_cache(cache, False)
    profile = builder.create_optimization_profile()
    profile.set_shape("images", (1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8))
    config.add_optimization_profile(profile)
    config.builder_optimization_level = 5
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    assert builder.build_serialized_network(network, config) is not None
    blob = bytes(config.get_timing_cache().serialize())
    assert len(blob) > len(bytes(config.create_timing_cache(b"").serialize()))
    reloaded = config.create_timing_cache(blob)
    assert bytes(reloaded.serialize()) == blob
    engine, _ = build_engine(trt, logger, conv_silu_model())
    assert engine.profiling_verbosity == trt.ProfilingVerbosity.LAYER_NAMES_ONLY


def test_parsed_network_reports_onnx_io(trt):
    logger = collecting_logger(trt)
    _, network = parse(trt, logger, conv_silu_model())
    model = onnx.load_from_string(conv_silu_model())
    assert network.num_inputs == 1 and network.num_outputs == 1 and network.num_layers == len(model.graph.node)
    tensor = network.get_input(0)
    assert tensor.name == "images" and tensor.is_network_input and tuple(tensor.shape) == (-1, 3, 8, 8)
    assert network.get_output(0).is_network_output and tuple(network.get_output(0).shape) == (-1, 4, 8, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (GPU machine)")
def test_cuda_device_pointers(install_tensorrt_standin):
    """On the GPU machine the stand-in reads and writes CUDA tensors through their device pointers."""
    trt = install_tensorrt_standin("10.16.1.11")
    logger = collecting_logger(trt)
    model = conv_silu_model(seed=7)
    engine, _ = build_engine(trt, logger, model)
    x = torch.randn(2, 3, 8, 8, device="cuda")
    stream = torch.cuda.Stream()
    context = engine.create_execution_context()
    assert context.set_input_shape("images", tuple(x.shape))
    out = torch.empty(tuple(context.get_tensor_shape("output0")), device="cuda")
    context.set_tensor_address("images", x.data_ptr())
    context.set_tensor_address("output0", out.data_ptr())
    assert context.execute_async_v3(stream.cuda_stream), logger.errors()
    stream.synchronize()
    np.testing.assert_allclose(out.cpu().numpy(), ort_reference(model, x.cpu().numpy()), rtol=1e-6, atol=1e-6)
