"""Networks built with INetworkDefinition.add_* run through the stand-in and match PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.standin.helpers import collecting_logger, conv_silu_model, network_flags, parse

VERSIONS = ["8.6.1", "10.16.1.11", "11.4.0.106"]


def run_network(trt, logger, builder, network, inputs: dict[str, np.ndarray], config=None) -> dict[str, np.ndarray]:
    config = config or builder.create_builder_config()
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, logger.errors()
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    context = engine.create_execution_context()
    addresses, outputs = [], {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            array = np.ascontiguousarray(inputs[name])
            assert context.set_input_shape(name, array.shape)
        else:
            dtype = trt.nptype(engine.get_tensor_dtype(name))
            array = np.zeros(tuple(context.get_tensor_shape(name)), dtype)
            outputs[name] = array
        inputs[name] = array
        addresses.append(array.ctypes.data)
    assert context.execute_v2(addresses), logger.errors()
    return outputs


@pytest.mark.parametrize("version", VERSIONS)
def test_conv_block_matches_torch(install_tensorrt_standin, version):
    trt = install_tensorrt_standin(version)
    logger = collecting_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((8, 4, 3, 3)).astype(np.float32) * 0.2
    bias = rng.standard_normal(8).astype(np.float32)
    x = network.add_input("images", trt.float32, (1, 4, 16, 16))

    conv = network.add_convolution_nd(x, 8, (3, 3), trt.Weights(weight), trt.Weights(bias))
    conv.stride_nd = (2, 2)
    conv.padding_nd = (1, 1)
    assert tuple(conv.get_output(0).shape) == (1, 8, 8, 8)
    sigmoid = network.add_activation(conv.get_output(0), trt.ActivationType.SIGMOID)
    silu = network.add_elementwise(conv.get_output(0), sigmoid.get_output(0), trt.ElementWiseOperation.PROD)
    pool = network.add_pooling_nd(silu.get_output(0), trt.PoolingType.MAX, (5, 5))
    pool.stride_nd = (1, 1)
    pool.padding_nd = (2, 2)
    up = network.add_resize(pool.get_output(0))
    up.scales = [1.0, 1.0, 2.0, 2.0]
    up.resize_mode = trt.InterpolationMode.NEAREST
    half = network.add_slice(up.get_output(0), (0, 0, 0, 0), (1, 4, 16, 16), (1, 1, 1, 1))
    other = network.add_slice(up.get_output(0), (0, 4, 0, 0), (1, 4, 16, 16), (1, 1, 1, 1))
    cat = network.add_concatenation([other.get_output(0), half.get_output(0)])
    assert cat.axis == 1  # default: rank - 3
    shuffle = network.add_shuffle(cat.get_output(0))
    shuffle.reshape_dims = (1, 2, 4, -1)
    shuffle.second_transpose = (0, 2, 1, 3)
    assert tuple(shuffle.get_output(0).shape) == (1, 4, 2, 256)
    softmax = network.add_softmax(shuffle.get_output(0))
    softmax.axes = 1 << 1
    proj = network.add_constant((1, 1, 1, 256), trt.Weights(np.arange(256, dtype=np.float32)))
    weighted = network.add_elementwise(softmax.get_output(0), proj.get_output(0), trt.ElementWiseOperation.PROD)
    reduce = network.add_reduce(weighted.get_output(0), trt.ReduceOperation.SUM, 1 << 3, False)
    reduce.get_output(0).name = "output0"
    network.mark_output(reduce.get_output(0))

    image = rng.standard_normal((1, 4, 16, 16)).astype(np.float32)
    out = run_network(trt, logger, builder, network, {"images": image})["output0"]

    t = torch.from_numpy(image)
    y = F.conv2d(t, torch.from_numpy(weight), torch.from_numpy(bias), stride=2, padding=1)
    y = y * torch.sigmoid(y)
    y = F.max_pool2d(y, 5, 1, 2)
    y = F.interpolate(y, scale_factor=2, mode="nearest")
    y = torch.cat([y[:, 4:], y[:, :4]], 1).reshape(1, 2, 4, -1).permute(0, 2, 1, 3)
    y = (y.softmax(1) * torch.arange(256, dtype=torch.float32).reshape(1, 1, 1, 256)).sum(3)
    np.testing.assert_allclose(out, y.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("version", VERSIONS)
def test_matmul_cast_and_dynamic_batch(install_tensorrt_standin, version):
    trt = install_tensorrt_standin(version)
    logger = collecting_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((6, 5)).astype(np.float32)
    x = network.add_input("x", trt.float32, (-1, 3, 6))
    const = network.add_constant((1, 6, 5), trt.Weights(matrix))
    mm = network.add_matrix_multiply(x, trt.MatrixOperation.NONE, const.get_output(0), trt.MatrixOperation.NONE)
    assert tuple(mm.get_output(0).shape) == (-1, 3, 5)
    cast = network.add_cast(mm.get_output(0), trt.float16)
    assert cast.get_output(0).dtype == trt.float16
    cast.get_output(0).name = "y"
    network.mark_output(cast.get_output(0))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 6), (2, 3, 6), (4, 3, 6))
    config.add_optimization_profile(profile)
    data = rng.standard_normal((3, 3, 6)).astype(np.float32)
    out = run_network(trt, logger, builder, network, {"x": data}, config)["y"]
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, (data @ matrix).astype(np.float16))


def test_layer_without_onnx_equivalent_fails_the_build(install_tensorrt_standin):
    trt = install_tensorrt_standin("10.16.1.11")
    logger = collecting_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    x = network.add_input("x", trt.float32, (1, 4, 8, 8))
    conv = network.add_convolution_nd(x, 2, (3, 3), trt.Weights(np.zeros(5, np.float32)))  # wrong count
    network.mark_output(conv.get_output(0))
    assert builder.build_serialized_network(network, builder.create_builder_config()) is None
    assert any("kernel" in m for m in logger.errors())


def test_weights_and_parsed_layer_types(install_tensorrt_standin):
    trt = install_tensorrt_standin("10.16.1.11")
    values = np.arange(6, dtype=np.float32)
    from_pointer = trt.Weights(trt.float32, values.ctypes.data, values.size)
    assert from_pointer.size == 6 and from_pointer.dtype == trt.float32
    np.testing.assert_array_equal(from_pointer.numpy(), values)
    half = trt.Weights(values.astype(np.float16))
    assert half.dtype == trt.float16 and half.nbytes == 12

    _, network = parse(trt, collecting_logger(trt), conv_silu_model())
    types = [network.get_layer(i).type for i in range(network.num_layers)]
    assert types == [trt.LayerType.CONVOLUTION, trt.LayerType.ACTIVATION, trt.LayerType.ELEMENTWISE]
    assert network.get_layer(0).get_output(0) is network.get_layer(2).get_input(0)


@pytest.mark.parametrize("version", ["8.6.1", "11.4.0.106"])
def test_dynamic_batch_slice_and_reshape_through_shape_tensors(install_tensorrt_standin, version):
    """The usual dynamic-batch pattern: sizes computed from add_shape and fed with set_input."""
    trt = install_tensorrt_standin(version)
    logger = collecting_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    x = network.add_input("x", trt.float32, (-1, 6, 4))
    shape = network.add_shape(x).get_output(0)
    int_dtype = np.int64 if hasattr(trt.DataType, "INT64") else np.int32
    half = network.add_constant((3,), trt.Weights(np.array([1, 2, 1], int_dtype))).get_output(0)
    size = network.add_elementwise(shape, half, trt.ElementWiseOperation.FLOOR_DIV).get_output(0)
    second = network.add_slice(x, (0, 3, 0), (0, 0, 0), (1, 1, 1))
    second.set_input(2, size)  # (batch, 3, 4), batch unknown until run time
    assert tuple(second.get_output(0).shape) == (-1, -1, -1)
    flat = network.add_shuffle(second.get_output(0))
    flat_dims = network.add_constant((2,), trt.Weights(np.array([0, -1], int_dtype))).get_output(0)
    flat.set_input(1, flat_dims)  # (batch, 12) with 0 = copy the batch dimension
    flat.get_output(0).name = "y"
    network.mark_output(flat.get_output(0))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 6, 4), (2, 6, 4), (4, 6, 4))
    config.add_optimization_profile(profile)
    data = np.random.default_rng(3).standard_normal((3, 6, 4)).astype(np.float32)
    out = run_network(trt, logger, builder, network, {"x": data}, config)["y"]
    np.testing.assert_array_equal(out, data[:, 3:, :].reshape(3, -1))
