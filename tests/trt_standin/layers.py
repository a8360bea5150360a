"""The INetworkDefinition add_* API: each layer keeps TensorRT's parameters (changeable until the build)
and emits equivalent ONNX nodes when the network is assembled, so ONNX Runtime executes both the
parser route and the layer-by-layer route.

Defaults follow the TensorRT C++ API reference (docs.nvidia.com/deeplearning/tensorrt/api/c_api/):
stride 1, padding 0, dilation 1, groups 1; concatenation and softmax act on axis rank-3 (0 below rank
3) unless set; resize is NEAREST / ASYMMETRIC / FLOOR rounding; shuffle treats 0 in reshape_dims as
"copy this dimension" (zero_is_placeholder=True).
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from .common import TRT_TO_NUMPY, TRT_TO_ONNX, dims_list
from .network import ILayer, INetworkDefinition

_NUMPY_TO_TRT = {np.dtype(v): k for k, v in TRT_TO_NUMPY.items()}


class LayerBuildError(ValueError):
    """A layer whose parameters have no ONNX equivalent in the stand-in; the build fails with this."""


# ---------------------------------------------------------------------------------------- Weights


class Weights:
    def __init__(self, *args, **kwargs):
        values = list(args) + list(kwargs.values())
        self._array = None
        self._dtype_member = None
        if values and isinstance(values[0], np.ndarray):
            self._array = np.ascontiguousarray(values[0]).copy()
        elif len(values) == 3:
            dtype_member, pointer, count = values
            np_dtype = np.dtype(TRT_TO_NUMPY[dtype_member.name])
            buffer = (ctypes.c_char * (int(count) * np_dtype.itemsize)).from_address(int(pointer))
            self._array = np.frombuffer(buffer, dtype=np_dtype).copy()
        elif values:
            self._dtype_member = values[0]

    @property
    def dtype(self):
        if self._array is None:
            return self._dtype_member or type(self)._ctx.classes["DataType"].FLOAT
        return getattr(type(self)._ctx.classes["DataType"], _NUMPY_TO_TRT[self._array.dtype])

    @property
    def size(self):
        return 0 if self._array is None else int(self._array.size)

    @property
    def nbytes(self):
        return 0 if self._array is None else int(self._array.nbytes)

    def numpy(self):
        return np.empty(0, np.float32) if self._array is None else self._array

    def __len__(self):
        return self.size


def weights_array(value) -> np.ndarray | None:
    """numpy array behind a Weights / ndarray argument, or None for empty weights."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return value if value.size else None
    array = value._array
    return array if array is not None and array.size else None


# ---------------------------------------------------------------------------------------- helpers


def _prop(key: str, kind: str = "raw"):
    """A layer property backed by self._p[key]; kind 'dims' returns Dims, 'int' coerces."""

    def fget(self):
        value = self._p[key]
        if kind == "dims":
            return type(self)._ctx.new("Dims", value)
        return value

    def fset(self, value):
        if kind == "dims":
            value = dims_list(value)
        elif kind == "int":
            value = int(value)
        elif kind == "float":
            value = float(value)
        elif kind == "bool":
            value = bool(value)
        self._p[key] = value

    return property(fget, fset)


def check_shape_tensor(layer, tensor, what: str) -> None:
    """Shape tensors (dynamic slice start/size/stride, reshape dims, resize output shape) must be INT32
    or INT64 (TensorRT developer guide, "Execution Tensors vs. Shape Tensors": shape tensors have type
    Int32, Int64, Float or Bool, and the layers' shape inputs take Int32/Int64 only)."""
    if tensor.dtype.name not in ("INT32", "INT64"):
        raise LayerBuildError(
            f"{layer._name}: the {what} shape tensor {tensor.name!r} is {tensor.dtype.name}; shape inputs must be "
            "INT32 or INT64 (add a cast)"
        )


def _axes_from_mask(mask: int, rank: int) -> list[int]:
    return [axis for axis in range(rank) if mask & (1 << axis)]


def _default_axis(rank: int) -> int:
    return max(rank - 3, 0)


class _Layer(ILayer):
    """Base of add_* layers: parameters in self._p, ONNX emission in _emit, shapes in _output_shape."""

    _type_name = "PLUGIN"

    def _init_layer(self, network, inputs: list, params: dict, num_outputs: int = 1):
        ctx = type(self)._ctx
        outputs = []
        for i in range(num_outputs):
            tensor = ctx.new("ITensor", network, network._fresh_name(f"{self._type_name.lower()}_out"), None, None)
            tensor._producer, tensor._producer_index = self, i
            outputs.append(tensor)
        self._setup(network, network._fresh_name(self._type_name.lower()), inputs, outputs, self._type_name)
        self._p: dict[str, Any] = dict(params)
        for tensor in outputs:
            network._tensors[tensor._onnx_name] = tensor
        network._layers.append(self)
        return self

    def _in(self, i: int = 0):
        return self._inputs[i]

    def _in_shape(self, i: int = 0) -> list[int]:
        return list(self._inputs[i].shape)

    def _out_names(self) -> list[str]:
        return [t._onnx_name for t in self._outputs]

    def _output_shape(self, index: int) -> list[int]:
        return self._in_shape(0)

    def _output_dtype(self, index: int):
        return self._inputs[0].dtype

    def _const(self, initializers: list, array: np.ndarray, stem: str) -> str:
        name = self._network._fresh_name(f"{self._name}_{stem}")
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def _np_dtype(self):
        return TRT_TO_NUMPY[self._in().dtype.name]


# ------------------------------------------------------------------------------------ convolution


def _spatial_out(size, kernel, stride, pre, post, dilation, mode_name, ceil_mode=False):
    if size < 0:
        return -1
    if mode_name in ("SAME_UPPER", "SAME_LOWER"):
        return math.ceil(size / stride)
    effective = dilation * (kernel - 1) + 1
    span = size + pre + post - effective
    return (math.ceil(span / stride) if ceil_mode or mode_name == "EXPLICIT_ROUND_UP" else span // stride) + 1


class _WindowLayer(_Layer):
    def _spatial(self) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
        n = len(self._p["window"])
        pre = self._p.get("pre") or self._p.get("padding") or [0] * n
        post = self._p.get("post") or self._p.get("padding") or [0] * n
        return self._p["window"], self._p.get("stride") or [1] * n, pre, post, self._p.get("dilation") or [1] * n

    def _auto_pad(self) -> dict:
        mode = self._p["padding_mode"].name
        if mode in ("SAME_UPPER", "SAME_LOWER"):
            return {"auto_pad": mode}
        _, _, pre, post, _ = self._spatial()
        attrs: dict = {"pads": list(pre) + list(post)}
        if mode == "EXPLICIT_ROUND_UP":
            attrs["ceil_mode"] = 1
        return attrs

    def _spatial_shape(self, channels: int) -> list[int]:
        shape = self._in_shape()
        window, stride, pre, post, dilation = self._spatial()
        n = len(window)
        mode = self._p["padding_mode"].name
        spatial = [
            _spatial_out(shape[-n + i], window[i], stride[i], pre[i], post[i], dilation[i], mode) for i in range(n)
        ]
        return shape[: len(shape) - n - 1] + [channels] + spatial

    padding_mode = _prop("padding_mode")
    stride_nd = _prop("stride", "dims")
    padding_nd = _prop("padding", "dims")
    pre_padding = _prop("pre", "dims")
    post_padding = _prop("post", "dims")


class IConvolutionLayer(_WindowLayer):
    _type_name = "CONVOLUTION"

    kernel_size_nd = _prop("window", "dims")
    dilation_nd = _prop("dilation", "dims")
    num_groups = _prop("groups", "int")
    num_output_maps = _prop("maps", "int")
    kernel = _prop("kernel")
    bias = _prop("bias")

    def _output_shape(self, index):
        return self._spatial_shape(self._p["maps"])

    def _emit(self, nodes, initializers):
        kernel = weights_array(self._p["kernel"])
        if kernel is None:
            raise LayerBuildError(f"convolution {self._name!r} has no kernel weights")
        window = self._p["window"]
        in_channels = self._in_shape()[-len(window) - 1]
        shape = [self._p["maps"], in_channels // self._p["groups"], *window]
        if kernel.size != int(np.prod(shape)):
            raise LayerBuildError(
                f"convolution {self._name!r}: kernel has {kernel.size} values, expected {shape} = {int(np.prod(shape))}"
            )
        inputs = [self._in()._onnx_name, self._const(initializers, kernel.reshape(shape), "kernel")]
        bias = weights_array(self._p["bias"])
        if bias is not None:
            inputs.append(self._const(initializers, bias.reshape(-1), "bias"))
        _, stride, _, _, dilation = self._spatial()
        attrs = {"kernel_shape": list(window), "strides": list(stride), "dilations": list(dilation)}
        attrs |= {k: v for k, v in self._auto_pad().items() if k != "ceil_mode"}
        nodes.append(helper.make_node("Conv", inputs, self._out_names(), group=self._p["groups"], **attrs))


class IPoolingLayer(_WindowLayer):
    _type_name = "POOLING"

    window_size_nd = _prop("window", "dims")
    average_count_excludes_padding = _prop("exclude_pad", "bool")
    blend_factor = _prop("blend", "float")

    type = _prop("pool_type")

    def _output_shape(self, index):
        return self._spatial_shape(self._in_shape()[-len(self._p["window"]) - 1])

    def _emit(self, nodes, initializers):
        window, stride, _, _, _ = self._spatial()
        attrs = {"kernel_shape": list(window), "strides": list(stride)} | self._auto_pad()
        kind = self._p["pool_type"].name
        if kind == "MAX":
            nodes.append(helper.make_node("MaxPool", [self._in()._onnx_name], self._out_names(), **attrs))
        elif kind == "AVERAGE":
            include = 0 if self._p["exclude_pad"] else 1
            nodes.append(
                helper.make_node(
                    "AveragePool", [self._in()._onnx_name], self._out_names(), count_include_pad=include, **attrs
                )
            )
        else:
            raise LayerBuildError(f"pooling type {kind} is not modelled by the stand-in")


# ------------------------------------------------------------------------------- pointwise layers

_ACTIVATIONS = {
    "RELU": "Relu",
    "SIGMOID": "Sigmoid",
    "TANH": "Tanh",
    "LEAKY_RELU": "LeakyRelu",
    "ELU": "Elu",
    "SELU": "Selu",
    "SOFTSIGN": "Softsign",
    "SOFTPLUS": "Softplus",
    "HARD_SIGMOID": "HardSigmoid",
    "THRESHOLDED_RELU": "ThresholdedRelu",
}


class IActivationLayer(_Layer):
    _type_name = "ACTIVATION"
    alpha = _prop("alpha", "float")
    beta = _prop("beta", "float")

    type = _prop("act")

    def _emit(self, nodes, initializers):
        kind, x, out = self._p["act"].name, self._in()._onnx_name, self._out_names()
        alpha, beta = self._p["alpha"], self._p["beta"]
        dtype = self._np_dtype()
        if kind in ("LEAKY_RELU", "ELU", "THRESHOLDED_RELU"):
            nodes.append(helper.make_node(_ACTIVATIONS[kind], [x], out, alpha=alpha))
        elif kind in ("SELU", "HARD_SIGMOID"):
            nodes.append(
                helper.make_node(_ACTIVATIONS[kind], [x], out, alpha=alpha, gamma=beta)
                if kind == "SELU"
                else helper.make_node(_ACTIVATIONS[kind], [x], out, alpha=alpha, beta=beta)
            )
        elif kind in _ACTIVATIONS:
            nodes.append(helper.make_node(_ACTIVATIONS[kind], [x], out))
        elif kind == "CLIP":
            lo = self._const(initializers, np.array(alpha, dtype), "min")
            hi = self._const(initializers, np.array(beta, dtype), "max")
            nodes.append(helper.make_node("Clip", [x, lo, hi], out))
        elif kind == "SCALED_TANH":  # alpha * tanh(beta * x)
            inner, tanh = self._network._fresh_name("st_in"), self._network._fresh_name("st_tanh")
            nodes.append(
                helper.make_node("Mul", [x, self._const(initializers, np.array(beta, dtype), "beta")], [inner])
            )
            nodes.append(helper.make_node("Tanh", [inner], [tanh]))
            nodes.append(
                helper.make_node("Mul", [tanh, self._const(initializers, np.array(alpha, dtype), "alpha")], out)
            )
        elif kind == "GELU_ERF":  # 0.5 * x * (1 + erf(x / sqrt(2)))
            names = [self._network._fresh_name("gelu") for _ in range(4)]
            nodes += [
                helper.make_node(
                    "Div", [x, self._const(initializers, np.array(math.sqrt(2), dtype), "s2")], [names[0]]
                ),
                helper.make_node("Erf", [names[0]], [names[1]]),
                helper.make_node("Add", [names[1], self._const(initializers, np.array(1, dtype), "one")], [names[2]]),
                helper.make_node("Mul", [x, names[2]], [names[3]]),
                helper.make_node("Mul", [names[3], self._const(initializers, np.array(0.5, dtype), "half")], out),
            ]
        else:
            raise LayerBuildError(f"activation {kind} is not modelled by the stand-in")


_ELEMENTWISE = {
    "SUM": "Add",
    "PROD": "Mul",
    "MAX": "Max",
    "MIN": "Min",
    "SUB": "Sub",
    "DIV": "Div",
    "POW": "Pow",
    "AND": "And",
    "OR": "Or",
    "XOR": "Xor",
    "EQUAL": "Equal",
    "GREATER": "Greater",
    "LESS": "Less",
}


def _broadcast(a: list[int], b: list[int]) -> list[int]:
    if len(a) != len(b):
        raise LayerBuildError(f"elementwise inputs must have the same rank in TensorRT, got {a} and {b}")
    out = []
    for x, y in zip(a, b):
        if x == 1:
            out.append(y)
        elif y == 1 or x == y:
            out.append(x)
        elif x < 0 or y < 0:
            out.append(max(x, y) if min(x, y) < 0 and max(x, y) > 1 else -1)
        else:
            raise LayerBuildError(f"elementwise inputs {a} and {b} cannot be broadcast")
    return out


class IElementWiseLayer(_Layer):
    _type_name = "ELEMENTWISE"
    op = _prop("op")

    def _output_shape(self, index):
        return _broadcast(self._in_shape(0), self._in_shape(1))

    def _output_dtype(self, index):
        if self._p["op"].name in ("EQUAL", "GREATER", "LESS"):
            return type(self)._ctx.classes["DataType"].BOOL
        return self._inputs[0].dtype

    def _emit(self, nodes, initializers):
        kind = self._p["op"].name
        a, b = self._in(0)._onnx_name, self._in(1)._onnx_name
        if kind == "FLOOR_DIV" and self._inputs[0].dtype.name in ("INT32", "INT64", "INT8", "UINT8"):
            # Integer floor division (shape arithmetic): exact through float64 for |values| < 2**53.
            fresh = self._network._fresh_name
            da, db, q, f = fresh("fd_a"), fresh("fd_b"), fresh("fd_q"), fresh("fd_f")
            to = TRT_TO_ONNX[self._inputs[0].dtype.name]
            nodes += [
                helper.make_node("Cast", [a], [da], to=TensorProto.DOUBLE),
                helper.make_node("Cast", [b], [db], to=TensorProto.DOUBLE),
                helper.make_node("Div", [da, db], [q]),
                helper.make_node("Floor", [q], [f]),
                helper.make_node("Cast", [f], self._out_names(), to=to),
            ]
        elif kind == "FLOOR_DIV":
            quotient = self._network._fresh_name("div")
            nodes += [
                helper.make_node("Div", [a, b], [quotient]),
                helper.make_node("Floor", [quotient], self._out_names()),
            ]
        else:
            nodes.append(helper.make_node(_ELEMENTWISE[kind], [a, b], self._out_names()))


_UNARY = {
    "EXP": "Exp", "LOG": "Log", "SQRT": "Sqrt", "RECIP": "Reciprocal", "ABS": "Abs", "NEG": "Neg", "SIN": "Sin",
    "COS": "Cos", "TAN": "Tan", "SINH": "Sinh", "COSH": "Cosh", "ASIN": "Asin", "ACOS": "Acos", "ATAN": "Atan",
    "ASINH": "Asinh", "ACOSH": "Acosh", "ATANH": "Atanh", "CEIL": "Ceil", "FLOOR": "Floor", "ERF": "Erf",
    "NOT": "Not", "SIGN": "Sign", "ROUND": "Round", "ISINF": "IsInf", "ISNAN": "IsNaN",
}  # fmt: skip


class IUnaryLayer(_Layer):
    _type_name = "UNARY"
    op = _prop("op")

    def _output_dtype(self, index):
        if self._p["op"].name in ("NOT", "ISINF", "ISNAN"):
            return type(self)._ctx.classes["DataType"].BOOL
        return self._inputs[0].dtype

    def _emit(self, nodes, initializers):
        nodes.append(helper.make_node(_UNARY[self._p["op"].name], [self._in()._onnx_name], self._out_names()))


class IIdentityLayer(_Layer):
    _type_name = "IDENTITY"

    def _emit(self, nodes, initializers):
        nodes.append(helper.make_node("Identity", [self._in()._onnx_name], self._out_names()))


class ICastLayer(_Layer):
    _type_name = "CAST"
    to_type = _prop("to")

    def _output_dtype(self, index):
        return self._p["to"]

    def _emit(self, nodes, initializers):
        to = TRT_TO_ONNX[self._p["to"].name]
        nodes.append(helper.make_node("Cast", [self._in()._onnx_name], self._out_names(), to=to))


class ISoftMaxLayer(_Layer):
    _type_name = "SOFTMAX"

    @property
    def axes(self):
        return self._p["axes"] if self._p["axes"] is not None else 1 << _default_axis(len(self._in_shape()))

    @axes.setter
    def axes(self, value):
        self._p["axes"] = int(value)

    def _emit(self, nodes, initializers):
        axes = _axes_from_mask(self.axes, len(self._in_shape()))
        if len(axes) != 1:
            raise LayerBuildError(f"softmax over several axes {axes} is not modelled")
        nodes.append(helper.make_node("Softmax", [self._in()._onnx_name], self._out_names(), axis=axes[0]))


class IScaleLayer(_Layer):
    """out = (x * scale + shift) ** power, per tensor, per channel or per element."""

    _type_name = "SCALE"
    mode = _prop("mode")
    shift = _prop("shift")
    scale = _prop("scale")
    power = _prop("power")
    channel_axis = _prop("channel_axis", "int")

    def _emit(self, nodes, initializers):
        rank, mode = len(self._in_shape()), self._p["mode"].name
        current = self._in()._onnx_name
        steps = [("scale", "Mul"), ("shift", "Add"), ("power", "Pow")]
        present = [(k, op, weights_array(self._p[k])) for k, op in steps if weights_array(self._p[k]) is not None]
        if not present:
            nodes.append(helper.make_node("Identity", [current], self._out_names()))
            return
        for i, (key, op, values) in enumerate(present):
            values = values.astype(self._np_dtype())
            if mode == "CHANNEL":
                shape = [1] * rank
                shape[self._p["channel_axis"]] = values.size
                values = values.reshape(shape)
            elif mode == "ELEMENTWISE":
                values = values.reshape(self._in_shape()[-3:] if rank >= 3 else self._in_shape())
            else:
                values = values.reshape([])
            target = self._out_names()[0] if i == len(present) - 1 else self._network._fresh_name(key)
            nodes.append(helper.make_node(op, [current, self._const(initializers, values, key)], [target]))
            current = target


# ---------------------------------------------------------------------------------- shape layers


class IConcatenationLayer(_Layer):
    _type_name = "CONCATENATION"

    @property
    def axis(self):
        return self._p["axis"] if self._p["axis"] is not None else _default_axis(len(self._in_shape()))

    @axis.setter
    def axis(self, value):
        self._p["axis"] = int(value)

    def _output_shape(self, index):
        shapes = [list(t.shape) for t in self._inputs]
        axis = self.axis % len(shapes[0])
        out = list(shapes[0])
        sizes = [s[axis] for s in shapes]
        out[axis] = -1 if any(s < 0 for s in sizes) else sum(sizes)
        return out

    def _emit(self, nodes, initializers):
        names = [t._onnx_name for t in self._inputs]
        nodes.append(helper.make_node("Concat", names, self._out_names(), axis=self.axis))


class ISliceLayer(_Layer):
    _type_name = "SLICE"
    start = _prop("start", "dims")
    shape = _prop("shape", "dims")
    stride = _prop("stride", "dims")
    mode = _prop("mode")

    def _dynamic(self, i: int):
        """The shape tensor set with set_input(i, ...) (1 start, 2 size, 3 stride), else None."""
        return self._inputs[i] if len(self._inputs) > i else None

    def _output_shape(self, index):
        if self._dynamic(2) is not None:
            return [-1] * len(self._in_shape())
        return list(self._p["shape"])

    def _emit(self, nodes, initializers):
        if self._p["mode"].name not in ("STRICT_BOUNDS", "DEFAULT"):
            raise LayerBuildError(f"slice mode {self._p['mode'].name} is not modelled")
        if any(self._dynamic(i) is not None for i in (1, 2, 3)):
            self._emit_dynamic(nodes, initializers)
            return
        start, shape, stride = self._p["start"], self._p["shape"], self._p["stride"]
        ends = []
        for s, n, st in zip(start, shape, stride):
            end = s + (n - 1) * st + (1 if st > 0 else -1)
            ends.append(end if end >= 0 else -(2**62))
        arrays = [np.array(v, np.int64) for v in (start, ends, list(range(len(start))), stride)]
        inputs = [self._in()._onnx_name] + [self._const(initializers, a, k) for a, k in zip(arrays, "seat")]
        nodes.append(helper.make_node("Slice", inputs, self._out_names()))

    def _emit_dynamic(self, nodes, initializers):
        """Start/size/stride from shape tensors: end = start + (size - 1) * stride + 1 (positive strides)."""
        fresh = self._network._fresh_name
        values = []
        for i, key in ((1, "start"), (2, "shape"), (3, "stride")):
            tensor = self._dynamic(i)
            if tensor is None:
                values.append(self._const(initializers, np.array(self._p[key], np.int64), key))
            else:
                check_shape_tensor(self, tensor, f"slice {key}")
                cast = fresh(f"slice_{key}")
                nodes.append(helper.make_node("Cast", [tensor._onnx_name], [cast], to=TensorProto.INT64))
                values.append(cast)
        start, size, stride = values
        one = self._const(initializers, np.array(1, np.int64), "one")
        names = [fresh("slice_end") for _ in range(3)]
        nodes += [
            helper.make_node("Sub", [size, one], [names[0]]),
            helper.make_node("Mul", [names[0], stride], [names[1]]),
            helper.make_node("Add", [names[1], start], [names[2]]),
        ]
        end = fresh("slice_end")
        nodes.append(helper.make_node("Add", [names[2], one], [end]))
        axes = self._const(initializers, np.arange(len(self._in_shape()), dtype=np.int64), "axes")
        nodes.append(helper.make_node("Slice", [self._in()._onnx_name, start, end, axes, stride], self._out_names()))


class IShuffleLayer(_Layer):
    _type_name = "SHUFFLE"
    first_transpose = _prop("first", "dims")
    second_transpose = _prop("second", "dims")
    zero_is_placeholder = _prop("zero_is_placeholder", "bool")

    @property
    def reshape_dims(self):
        return type(self)._ctx.new("Dims", self._p["reshape"] if self._p["reshape"] is not None else [])

    @reshape_dims.setter
    def reshape_dims(self, value):
        self._p["reshape"] = dims_list(value)

    def _output_shape(self, index):
        shape = self._in_shape()
        if len(self._inputs) > 1 and self._inputs[1] is not None:
            rank = list(self._inputs[1].shape)[0]
            return [-1] * rank
        first = self._p["first"] or list(range(len(shape)))
        shape = [shape[i] for i in first]
        if self._p["reshape"] is not None:
            target = list(self._p["reshape"])
            if self._p["zero_is_placeholder"]:
                target = [shape[i] if d == 0 else d for i, d in enumerate(target)]
            if -1 in target and all(d >= 0 for d in shape):
                known = int(np.prod([d for d in target if d != -1]))
                target[target.index(-1)] = int(np.prod(shape)) // max(known, 1)
            shape = target
        second = self._p["second"] or list(range(len(shape)))
        return [shape[i] for i in second]

    def _emit(self, nodes, initializers):
        current = self._in()._onnx_name
        rank = len(self._in_shape())
        steps = []
        if self._p["first"] and self._p["first"] != list(range(rank)):
            steps.append(("Transpose", {"perm": list(self._p["first"])}, None))
        dynamic = self._inputs[1] if len(self._inputs) > 1 else None
        if dynamic is not None:
            check_shape_tensor(self, dynamic, "reshape dimensions")
            shape_name = self._network._fresh_name("reshape_dims")
            nodes.append(helper.make_node("Cast", [dynamic._onnx_name], [shape_name], to=TensorProto.INT64))
            steps.append(("Reshape", {"allowzero": 0 if self._p["zero_is_placeholder"] else 1}, shape_name))
        elif self._p["reshape"] is not None:
            steps.append(("Reshape", {"allowzero": 0 if self._p["zero_is_placeholder"] else 1}, self._p["reshape"]))
        second = self._p["second"]
        if second and second != list(range(len(second))):
            steps.append(("Transpose", {"perm": list(second)}, None))
        if not steps:
            steps.append(("Identity", {}, None))
        for i, (op, attrs, shape) in enumerate(steps):
            target = self._out_names()[0] if i == len(steps) - 1 else self._network._fresh_name("shuffle")
            if isinstance(shape, str):  # a dynamic shape tensor, already cast to int64
                inputs = [current, shape]
            elif op == "Reshape":
                inputs = [current, self._const(initializers, np.array(shape, np.int64), "shape")]
            else:
                inputs = [current]
            nodes.append(helper.make_node(op, inputs, [target], **attrs))
            current = target


class IReduceLayer(_Layer):
    _type_name = "REDUCE"
    op = _prop("op")
    axes = _prop("axes", "int")
    keep_dims = _prop("keep_dims", "bool")

    def _output_shape(self, index):
        shape = self._in_shape()
        axes = _axes_from_mask(self._p["axes"], len(shape))
        if self._p["keep_dims"]:
            return [1 if i in axes else d for i, d in enumerate(shape)]
        return [d for i, d in enumerate(shape) if i not in axes]

    def _emit(self, nodes, initializers):
        axes = _axes_from_mask(self._p["axes"], len(self._in_shape()))
        keep = int(self._p["keep_dims"])
        kind = self._p["op"].name
        x = self._in()._onnx_name
        if kind == "SUM":  # opset 13+: axes is an input
            axes_name = self._const(initializers, np.array(axes, np.int64), "axes")
            nodes.append(helper.make_node("ReduceSum", [x, axes_name], self._out_names(), keepdims=keep))
            return
        op = {"PROD": "ReduceProd", "MAX": "ReduceMax", "MIN": "ReduceMin", "AVG": "ReduceMean"}.get(kind)
        if op is None:
            raise LayerBuildError(f"reduce op {kind} is not modelled")
        nodes.append(helper.make_node(op, [x], self._out_names(), axes=axes, keepdims=keep))


class IMatrixMultiplyLayer(_Layer):
    _type_name = "MATRIX_MULTIPLY"
    op0 = _prop("op0")
    op1 = _prop("op1")

    def _shapes(self):
        a, b = self._in_shape(0), self._in_shape(1)
        if self._p["op0"].name == "TRANSPOSE":
            a = a[:-2] + [a[-1], a[-2]]
        if self._p["op1"].name == "TRANSPOSE":
            b = b[:-2] + [b[-1], b[-2]]
        return a, b

    def _output_shape(self, index):
        a, b = self._shapes()
        batch = _broadcast(a[:-2], b[:-2]) if len(a) == len(b) else a[:-2]
        return batch + [a[-2], b[-1]]

    def _emit(self, nodes, initializers):
        names = []
        for i, op in enumerate((self._p["op0"], self._p["op1"])):
            name = self._in(i)._onnx_name
            if op.name == "TRANSPOSE":
                rank = len(self._in_shape(i))
                transposed = self._network._fresh_name("mm_t")
                perm = list(range(rank - 2)) + [rank - 1, rank - 2]
                nodes.append(helper.make_node("Transpose", [name], [transposed], perm=perm))
                name = transposed
            elif op.name == "VECTOR":
                raise LayerBuildError("MatrixOperation.VECTOR is not modelled by the stand-in")
            names.append(name)
        nodes.append(helper.make_node("MatMul", names, self._out_names()))


class IConstantLayer(_Layer):
    _type_name = "CONSTANT"
    shape = _prop("shape", "dims")
    weights = _prop("weights")

    def _output_shape(self, index):
        return list(self._p["shape"])

    def _output_dtype(self, index):
        array = weights_array(self._p["weights"])
        data_type = type(self)._ctx.classes["DataType"]
        return data_type.FLOAT if array is None else getattr(data_type, _NUMPY_TO_TRT[array.dtype])

    def _emit(self, nodes, initializers):
        array = weights_array(self._p["weights"])
        shape = list(self._p["shape"])
        if array is None or array.size != int(np.prod(shape)):
            raise LayerBuildError(f"constant {self._name!r}: weights do not fill shape {shape}")
        value = numpy_helper.from_array(array.reshape(shape), self._out_names()[0])
        nodes.append(helper.make_node("Constant", [], self._out_names(), value=value))


class IResizeLayer(_Layer):
    _type_name = "RESIZE"
    resize_mode = _prop("mode")
    coordinate_transformation = _prop("coord")
    nearest_rounding = _prop("rounding")
    cubic_coeff = _prop("cubic", "float")
    exclude_outside = _prop("exclude_outside", "bool")
    selector_for_single_pixel = _prop("selector")

    @property
    def scales(self):
        return list(self._p["scales"] or [])

    @scales.setter
    def scales(self, value):
        self._p["scales"], self._p["sizes"] = [float(v) for v in value], None

    @property
    def shape(self):
        return type(self)._ctx.new("Dims", self._p["sizes"] or [])

    @shape.setter
    def shape(self, value):
        self._p["sizes"], self._p["scales"] = dims_list(value), None

    def _output_shape(self, index):
        if len(self._inputs) > 1 and self._inputs[1] is not None:
            return [-1] * len(self._in_shape())
        if self._p["sizes"]:
            return list(self._p["sizes"])
        shape = self._in_shape()
        scales = self._p["scales"] or [1.0] * len(shape)
        return [-1 if d < 0 else int(math.floor(d * s)) for d, s in zip(shape, scales)]

    def _emit(self, nodes, initializers):
        mode = {"NEAREST": "nearest", "LINEAR": "linear", "CUBIC": "cubic"}[self._p["mode"].name]
        coord = {"ALIGN_CORNERS": "align_corners", "ASYMMETRIC": "asymmetric", "HALF_PIXEL": "half_pixel"}[
            self._p["coord"].name
        ]
        rounding = {
            "HALF_UP": "round_prefer_ceil",
            "HALF_DOWN": "round_prefer_floor",
            "FLOOR": "floor",
            "CEIL": "ceil",
        }[self._p["rounding"].name]
        inputs = [self._in()._onnx_name, ""]
        dynamic = self._inputs[1] if len(self._inputs) > 1 else None
        if dynamic is not None:  # output shape from a shape tensor (set_input(1, ...))
            check_shape_tensor(self, dynamic, "resize output")
            sizes = self._network._fresh_name("resize_sizes")
            nodes.append(helper.make_node("Cast", [dynamic._onnx_name], [sizes], to=TensorProto.INT64))
            inputs += ["", sizes]
        elif self._p["sizes"]:
            inputs += ["", self._const(initializers, np.array(self._p["sizes"], np.int64), "sizes")]
        else:
            rank = len(self._in_shape())
            scales = self._p["scales"] or [1.0] * rank
            inputs += [self._const(initializers, np.array(scales, np.float32), "scales")]
        nodes.append(
            helper.make_node(
                "Resize",
                inputs,
                self._out_names(),
                mode=mode,
                coordinate_transformation_mode=coord,
                nearest_mode=rounding,
                cubic_coeff_a=self._p["cubic"],
                exclude_outside=int(self._p["exclude_outside"]),
            )
        )


class IGatherLayer(_Layer):
    _type_name = "GATHER"
    axis = _prop("axis", "int")
    num_elementwise_dims = _prop("elementwise_dims", "int")
    mode = _prop("mode")

    def _output_shape(self, index):
        data, indices = self._in_shape(0), self._in_shape(1)
        axis = self._p["axis"]
        return data[:axis] + indices + data[axis + 1 :]

    def _emit(self, nodes, initializers):
        names = [self._in(0)._onnx_name, self._in(1)._onnx_name]
        nodes.append(helper.make_node("Gather", names, self._out_names(), axis=self._p["axis"]))


class IShapeLayer(_Layer):
    _type_name = "SHAPE"

    def _output_shape(self, index):
        return [len(self._in_shape())]

    def _output_dtype(self, index):
        data_type = type(self)._ctx.classes["DataType"]
        return getattr(data_type, "INT64", None) or data_type.INT32

    def _emit(self, nodes, initializers):
        if self._output_dtype(0).name == "INT64":
            nodes.append(helper.make_node("Shape", [self._in()._onnx_name], self._out_names()))
        else:
            raw = self._network._fresh_name("shape64")
            nodes.append(helper.make_node("Shape", [self._in()._onnx_name], [raw]))
            nodes.append(helper.make_node("Cast", [raw], self._out_names(), to=TensorProto.INT32))


# ------------------------------------------------------------------------ INetworkDefinition.add_*


class NetworkWithLayers(INetworkDefinition):
    """INetworkDefinition plus the add_* layer API (each returns the layer; outputs via get_output)."""

    def _add(self, cls_name: str, inputs: list, params: dict, num_outputs: int = 1):
        layer = type(self)._ctx.classes[cls_name].__new__(type(self)._ctx.classes[cls_name])
        return layer._init_layer(self, inputs, params, num_outputs)

    def _enum(self, enum_name: str, member: str):
        return getattr(type(self)._ctx.classes[enum_name], member)

    def add_convolution_nd(self, input, num_output_maps, kernel_shape, kernel, bias=None):  # noqa: A002
        window = dims_list(kernel_shape)
        params = {"maps": int(num_output_maps), "window": window, "kernel": kernel, "bias": bias, "groups": 1}
        params |= {"stride": [1] * len(window), "dilation": [1] * len(window), "padding": [0] * len(window)}
        params |= {"pre": None, "post": None, "padding_mode": self._enum("PaddingMode", "EXPLICIT_ROUND_DOWN")}
        return self._add("IConvolutionLayer", [input], params)

    def add_pooling_nd(self, input, type, window_size):  # noqa: A002
        window = dims_list(window_size)
        params = {"pool_type": type, "window": window, "stride": [1] * len(window), "padding": [0] * len(window)}
        params |= {"pre": None, "post": None, "padding_mode": self._enum("PaddingMode", "EXPLICIT_ROUND_DOWN")}
        params |= {"exclude_pad": True, "blend": 0.0}
        return self._add("IPoolingLayer", [input], params)

    def add_activation(self, input, type):  # noqa: A002
        return self._add("IActivationLayer", [input], {"act": type, "alpha": 0.0, "beta": 0.0})

    def add_elementwise(self, input1, input2, op):
        return self._add("IElementWiseLayer", [input1, input2], {"op": op})

    def add_unary(self, input, op):  # noqa: A002
        return self._add("IUnaryLayer", [input], {"op": op})

    def add_identity(self, input):  # noqa: A002
        return self._add("IIdentityLayer", [input], {})

    def add_cast(self, input, to_type):  # noqa: A002
        return self._add("ICastLayer", [input], {"to": to_type})

    def add_softmax(self, input):  # noqa: A002
        return self._add("ISoftMaxLayer", [input], {"axes": None})

    def add_scale(self, input, mode, shift=None, scale=None, power=None):  # noqa: A002
        params = {"mode": mode, "shift": shift, "scale": scale, "power": power, "channel_axis": 1}
        return self._add("IScaleLayer", [input], params)

    def add_scale_nd(self, input, mode, shift=None, scale=None, power=None, channel_axis=1):  # noqa: A002
        layer = self.add_scale(input, mode, shift, scale, power)
        layer._p["channel_axis"] = int(channel_axis)
        return layer

    def add_concatenation(self, inputs):
        return self._add("IConcatenationLayer", list(inputs), {"axis": None})

    def add_slice(self, input, start, shape, stride):  # noqa: A002
        params = {"start": dims_list(start), "shape": dims_list(shape), "stride": dims_list(stride)}
        params["mode"] = self._enum("SampleMode", "STRICT_BOUNDS")
        return self._add("ISliceLayer", [input], params)

    def add_shuffle(self, input):  # noqa: A002
        params = {"first": None, "second": None, "reshape": None, "zero_is_placeholder": True}
        return self._add("IShuffleLayer", [input], params)

    def add_reduce(self, input, op, axes, keep_dims):  # noqa: A002
        return self._add("IReduceLayer", [input], {"op": op, "axes": int(axes), "keep_dims": bool(keep_dims)})

    def add_matrix_multiply(self, input0, op0, input1, op1):
        return self._add("IMatrixMultiplyLayer", [input0, input1], {"op0": op0, "op1": op1})

    def add_constant(self, shape, weights):
        return self._add("IConstantLayer", [], {"shape": dims_list(shape), "weights": weights})

    def add_resize(self, input):  # noqa: A002
        params = {"mode": self._enum("InterpolationMode", "NEAREST"), "scales": None, "sizes": None}
        params |= {"coord": self._enum("ResizeCoordinateTransformation", "ASYMMETRIC")}
        params |= {"rounding": self._enum("ResizeRoundMode", "FLOOR"), "cubic": -0.75, "exclude_outside": False}
        params |= {"selector": self._enum("ResizeSelector", "FORMULA")}
        return self._add("IResizeLayer", [input], params)

    def add_gather(self, input, indices, axis):  # noqa: A002
        mode = self._enum("GatherMode", "DEFAULT")
        return self._add("IGatherLayer", [input, indices], {"axis": int(axis), "elementwise_dims": 0, "mode": mode})

    def add_shape(self, input):  # noqa: A002
        return self._add("IShapeLayer", [input], {})


REGISTRY = {
    "Weights": Weights,
    "INetworkDefinition": NetworkWithLayers,
    "IConvolutionLayer": IConvolutionLayer,
    "IPoolingLayer": IPoolingLayer,
    "IActivationLayer": IActivationLayer,
    "IElementWiseLayer": IElementWiseLayer,
    "IUnaryLayer": IUnaryLayer,
    "IIdentityLayer": IIdentityLayer,
    "ICastLayer": ICastLayer,
    "ISoftMaxLayer": ISoftMaxLayer,
    "IScaleLayer": IScaleLayer,
    "IConcatenationLayer": IConcatenationLayer,
    "ISliceLayer": ISliceLayer,
    "IShuffleLayer": IShuffleLayer,
    "IReduceLayer": IReduceLayer,
    "IMatrixMultiplyLayer": IMatrixMultiplyLayer,
    "IConstantLayer": IConstantLayer,
    "IResizeLayer": IResizeLayer,
    "IGatherLayer": IGatherLayer,
    "IShapeLayer": IShapeLayer,
}
