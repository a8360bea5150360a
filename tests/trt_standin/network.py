"""INetworkDefinition, ITensor, ILayer and the ONNX parser.

The network is a list of layers that each emit ONNX nodes when the network is assembled into a model
(`assemble_model`). Parsed ONNX nodes are layers that emit themselves; the add_* API (issue 9) adds
layers that emit equivalent ONNX nodes at build time (their properties can still change after the
add_* call, as in TensorRT). One executor (ONNX Runtime) then runs both routes.
"""

from __future__ import annotations

import os
from typing import Any

import onnx
from onnx import TensorProto, helper

from .common import ONNX_TO_TRT, TRT_TO_ONNX, BitFlags, log, settable

_CPU_KERNELS: set[tuple[str, str]] | None = None


def cpu_kernels() -> set[tuple[str, str]]:
    """(domain, op_type) pairs ONNX Runtime's CPU provider can run: the stand-in's 'importers'."""
    global _CPU_KERNELS
    if _CPU_KERNELS is None:
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

        _CPU_KERNELS = {
            (k.domain or "ai.onnx", k.op_name)
            for k in ort_state.get_all_opkernel_def()
            if k.provider == "CPUExecutionProvider"
        }
    return _CPU_KERNELS


# The TensorRT layer an ONNX op is imported as (approximately; the real importer may fuse or split ops).
_ONNX_LAYER_TYPES = {
    "Conv": "CONVOLUTION", "ConvTranspose": "DECONVOLUTION", "Relu": "ACTIVATION", "Sigmoid": "ACTIVATION",
    "Tanh": "ACTIVATION", "LeakyRelu": "ACTIVATION", "Add": "ELEMENTWISE", "Sub": "ELEMENTWISE",
    "Mul": "ELEMENTWISE", "Div": "ELEMENTWISE", "Pow": "ELEMENTWISE", "Max": "ELEMENTWISE", "Min": "ELEMENTWISE",
    "MaxPool": "POOLING", "AveragePool": "POOLING", "GlobalAveragePool": "REDUCE", "Concat": "CONCATENATION",
    "Slice": "SLICE", "Split": "SLICE", "Reshape": "SHUFFLE", "Transpose": "SHUFFLE", "Flatten": "SHUFFLE",
    "Squeeze": "SHUFFLE", "Unsqueeze": "SHUFFLE", "Softmax": "SOFTMAX", "ReduceSum": "REDUCE",
    "ReduceMean": "REDUCE", "ReduceMax": "REDUCE", "MatMul": "MATRIX_MULTIPLY", "Gemm": "MATRIX_MULTIPLY",
    "Constant": "CONSTANT", "Cast": "CAST", "Resize": "RESIZE", "Gather": "GATHER", "Shape": "SHAPE",
    "Identity": "IDENTITY", "Exp": "UNARY", "Log": "UNARY", "Sqrt": "UNARY", "Abs": "UNARY", "Neg": "UNARY",
    "QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE", "Where": "SELECT", "TopK": "TOPK",
}  # fmt: skip


_SHAPE_MEMO: dict | None = None
# ONNX ops the parser imports as dedicated layers (op_type -> importer(network, node)); filled by the
# modules that model those layers (nms.py: NonMaxSuppression -> INMSLayer). Other ops emit themselves.
PARSER_IMPORTERS: dict = {}


class ITensor:
    def _setup(self, network, onnx_name: str, dtype, shape, *, is_input=False):
        self._network = network
        self._onnx_name = onnx_name
        self._name = onnx_name
        self._dtype = dtype
        self._shape = [int(d) for d in shape] if shape is not None else None
        self._is_input = is_input
        self._dynamic_range = None
        self._dimension_names: dict[int, str] = {}
        self._location = type(self)._ctx.classes["TensorLocation"].DEVICE
        self._allowed_formats = 1 << int(type(self)._ctx.classes["TensorFormat"].LINEAR)

    name = settable("_name", str)

    @property
    def dtype(self):
        producer = getattr(self, "_producer", None)
        if self._dtype is None and producer is not None:
            return producer._output_dtype(self._producer_index)
        return self._dtype if self._dtype is not None else type(self)._ctx.classes["DataType"].FLOAT

    def _natural_elem(self) -> int:
        """ONNX element type the graph produces for this tensor (before any dtype the user set)."""
        if hasattr(self, "_onnx_elem"):
            return self._onnx_elem
        producer = getattr(self, "_producer", None)
        if producer is not None:
            return TRT_TO_ONNX[producer._output_dtype(self._producer_index).name]
        return TRT_TO_ONNX[self.dtype.name]

    @dtype.setter
    def dtype(self, value):
        self._dtype = value

    @property
    def shape(self):
        producer = getattr(self, "_producer", None)
        if producer is not None and self._shape is None:
            # Memoized for the duration of one outermost query: shapes are recomputed from the producers
            # (parameters stay editable), and x * sigmoid(x) chains would otherwise cost 2**depth.
            global _SHAPE_MEMO
            outermost = _SHAPE_MEMO is None
            if outermost:
                _SHAPE_MEMO = {}
            try:
                if id(self) not in _SHAPE_MEMO:
                    _SHAPE_MEMO[id(self)] = producer._output_shape(self._producer_index)
                dims = _SHAPE_MEMO[id(self)]
            finally:
                if outermost:
                    _SHAPE_MEMO = None
            return type(self)._ctx.new("Dims", dims)
        return type(self)._ctx.new("Dims", self._shape if self._shape is not None else [])

    @shape.setter
    def shape(self, value):
        self._shape = [int(v) for v in value]

    @property
    def is_network_input(self):
        return self._is_input

    @property
    def is_network_output(self):
        return any(t is self for t in self._network._outputs)

    @property
    def is_shape_tensor(self):
        return False

    @property
    def is_execution_tensor(self):
        return True

    location = settable("_location")

    allowed_formats = settable("_allowed_formats", int)

    @property
    def broadcast_across_batch(self):
        return False

    @property
    def dynamic_range(self):
        return self._dynamic_range

    @dynamic_range.setter
    def dynamic_range(self, value):
        self._dynamic_range = None if value is None else (float(value[0]), float(value[1]))

    def set_dynamic_range(self, min, max):  # noqa: A002 - recorded parameter names
        self._dynamic_range = (float(min), float(max))
        return True

    def reset_dynamic_range(self):
        self._dynamic_range = None

    def get_dimension_name(self, index):
        return self._dimension_names.get(int(index))

    def set_dimension_name(self, index, name):
        self._dimension_names[int(index)] = name

    def __repr__(self):
        return f"<tensorrt.tensorrt.ITensor {self._name!r}>"


class ILayer:
    """A network layer. `_emit(nodes, initializers)` appends its ONNX equivalent at assembly time."""

    def _setup(self, network, name: str, inputs: list, outputs: list, layer_type_name: str = "PLUGIN"):
        self._network = network
        self._name = name
        self._inputs = list(inputs)
        self._outputs = list(outputs)
        self._layer_type_name = layer_type_name
        self._precision = None
        self._output_types: dict[int, Any] = {}
        self._metadata = ""

    name = settable("_name", str)

    @property
    def type(self):
        layer_type = type(self)._ctx.classes["LayerType"]
        return getattr(layer_type, self._layer_type_name, None) or layer_type.PLUGIN_V2

    @property
    def num_inputs(self):
        return len(self._inputs)

    @property
    def num_outputs(self):
        return len(self._outputs)

    def get_input(self, index):
        return self._inputs[index] if 0 <= index < len(self._inputs) else None

    def get_output(self, index):
        return self._outputs[index] if 0 <= index < len(self._outputs) else None

    def set_input(self, index, tensor):
        # Extra inputs make parameters dynamic (slice start/size/stride, shuffle/resize shape tensors).
        while len(self._inputs) <= index:
            self._inputs.append(None)
        self._inputs[index] = tensor

    @property
    def precision(self):
        return self._precision if self._precision is not None else type(self)._ctx.classes["DataType"].FLOAT

    @precision.setter
    def precision(self, value):
        self._precision = value

    @property
    def precision_is_set(self):
        return self._precision is not None

    def reset_precision(self):
        self._precision = None

    def set_output_type(self, index, dtype):
        self._output_types[int(index)] = dtype

    def get_output_type(self, index):
        return self._output_types.get(int(index), type(self)._ctx.classes["DataType"].FLOAT)

    def output_type_is_set(self, index):
        return int(index) in self._output_types

    def reset_output_type(self, index):
        self._output_types.pop(int(index), None)

    metadata = settable("_metadata", str)

    def _emit(self, nodes: list, initializers: list) -> None:
        node = getattr(self, "_onnx_node", None)
        if node is None:
            raise NotImplementedError(f"layer {self._name!r} has no ONNX equivalent in the stand-in")
        nodes.append(node)


class INetworkDefinition:
    def _setup(self, builder, flags: int):
        ctx = type(self)._ctx
        self._builder = builder
        self._logger = builder._logger
        self._flags = int(flags)
        flag_enum = ctx.classes["NetworkDefinitionCreationFlag"]
        explicit = getattr(flag_enum, "EXPLICIT_BATCH", None)
        # Implicit batch exists only where the builder still has max_batch_size (8.6); there the
        # network is explicit-batch only with the creation flag. Later versions ignore the flag.
        implicit_batch_supported = ctx.has("Builder", "max_batch_size")
        self._explicit_batch = not implicit_batch_supported or (
            explicit is not None and bool(self._flags & (1 << int(explicit)))
        )
        strongly = getattr(flag_enum, "STRONGLY_TYPED", None)
        has_weak_typing = hasattr(ctx.classes["BuilderFlag"], "FP16")
        self._strongly_typed = not has_weak_typing or (
            strongly is not None and bool(self._flags & (1 << int(strongly)))
        )
        self._inputs: list = []
        self._outputs: list = []
        self._layers: list = []
        self._initializers: list[TensorProto] = []
        self._opsets: dict[str, int] = {"": 17}
        self._ir_version = 8
        self._name = "Unnamed Network 0"
        self._tensors: dict[str, Any] = {}
        self._unique = 0

    # -- public API -----------------------------------------------------------------------------
    name = settable("_name", str)

    @property
    def num_inputs(self):
        return len(self._inputs)

    @property
    def num_outputs(self):
        return len(self._outputs)

    @property
    def num_layers(self):
        return len(self._layers)

    @property
    def flags(self):
        return self._flags

    def get_flag(self, flag):
        return bool(self._flags & (1 << int(flag)))

    @property
    def has_implicit_batch_dimension(self):
        return not self._explicit_batch

    @property
    def has_explicit_precision(self):
        return False

    @property
    def builder(self):
        return self._builder

    def get_input(self, index):
        return self._inputs[index] if 0 <= index < len(self._inputs) else None

    def get_output(self, index):
        return self._outputs[index] if 0 <= index < len(self._outputs) else None

    def get_layer(self, index):
        return self._layers[index] if 0 <= index < len(self._layers) else None

    def __getitem__(self, index):
        if not -len(self._layers) <= index < len(self._layers):
            raise IndexError(f"layer index {index} out of range for a network with {len(self._layers)} layers")
        return self._layers[index]

    def __len__(self):
        return len(self._layers)

    def add_input(self, name, dtype, shape):
        tensor = type(self)._ctx.new("ITensor", self, name, dtype, list(shape), is_input=True)
        self._inputs.append(tensor)
        self._tensors[name] = tensor
        return tensor

    def mark_output(self, tensor):
        if not any(t is tensor for t in self._outputs):
            self._outputs.append(tensor)

    def unmark_output(self, tensor):
        self._outputs = [t for t in self._outputs if t is not tensor]

    # -- stand-in internals ---------------------------------------------------------------------
    def _tensor(self, onnx_name: str, dtype=None, shape=None):
        """The ITensor for a graph value, created on first use."""
        if onnx_name not in self._tensors:
            ctx = type(self)._ctx
            dtype = dtype if dtype is not None else ctx.classes["DataType"].FLOAT
            self._tensors[onnx_name] = ctx.new("ITensor", self, onnx_name, dtype, shape)
        return self._tensors[onnx_name]

    def _fresh_name(self, stem: str) -> str:
        self._unique += 1
        return f"{stem}__standin_{self._unique}"

    def _assemble_model(self) -> onnx.ModelProto:
        """The network as one ONNX model whose I/O names and dtypes are the network's."""
        nodes: list = []
        initializers = list(self._initializers)
        graph_inputs, graph_outputs = [], []
        for tensor in self._inputs:
            elem = TRT_TO_ONNX[tensor.dtype.name]
            dims = [d if d >= 0 else f"{tensor._name}_dim{i}" for i, d in enumerate(tensor._shape)]
            graph_inputs.append(helper.make_tensor_value_info(tensor._name, elem, dims))
            onnx_elem = tensor._natural_elem()
            if tensor._name != tensor._onnx_name or onnx_elem != elem:
                nodes.append(helper.make_node("Cast", [tensor._name], [tensor._onnx_name], to=onnx_elem))
        for layer in self._layers:
            layer._emit(nodes, initializers)
        for tensor in self._outputs:
            elem = TRT_TO_ONNX[tensor.dtype.name]
            if tensor._name != tensor._onnx_name or tensor._natural_elem() != elem:
                nodes.append(helper.make_node("Cast", [tensor._onnx_name], [tensor._name], to=elem))
            graph_outputs.append(helper.make_tensor_value_info(tensor._name, elem, None))
        graph = helper.make_graph(nodes, self._name, graph_inputs, graph_outputs, initializers)
        opsets = [helper.make_opsetid(domain, version) for domain, version in self._opsets.items()]
        return helper.make_model(graph, opset_imports=opsets, ir_version=self._ir_version)


class ParserError:
    def _setup(self, code, desc: str, node: int = -1, func: str = "parse"):
        self._code, self._desc, self._node, self._func = code, desc, node, func

    def code(self):
        return self._code

    def desc(self):
        return self._desc

    def node(self):
        return self._node

    def file(self):
        return "ModelImporter.cpp (tensorrt stand-in)"

    def line(self):
        return 0

    def func(self):
        return self._func

    def __str__(self):
        where = f" (node {self._node})" if self._node >= 0 else ""
        return f"In function {self._func}:\n[{int(self._code)}] {self._desc}{where}"


class OnnxParser(BitFlags):
    """Imports an ONNX model into the network; ops ONNX Runtime's CPU provider lacks are errors."""

    def __init__(self, network, logger):
        self._network = network
        self._logger = logger
        self._errors: list = []
        self._flags = 0

    @property
    def num_errors(self):
        return len(self._errors)

    def get_error(self, index):
        return self._errors[index] if 0 <= index < len(self._errors) else None

    def clear_errors(self):
        self._errors = []

    def supports_operator(self, op_name):
        return ("ai.onnx", op_name) in cpu_kernels()

    def parse_from_file(self, model):
        if not os.path.isfile(model):
            self._error("MODEL_DESERIALIZE_FAILED", f"Failed to open file: {model}")
            return False
        try:
            proto = onnx.load(model)
        except Exception as e:
            self._error("MODEL_DESERIALIZE_FAILED", f"Failed to parse ONNX model from file {model}: {e}")
            return False
        return self._import(proto)

    def parse(self, model, path=None):
        try:
            proto = onnx.load_from_string(bytes(memoryview(model)))
        except Exception as e:
            self._error("MODEL_DESERIALIZE_FAILED", f"Failed to parse ONNX model from buffer: {e}")
            return False
        if path is not None:
            try:
                onnx.load_external_data_for_model(proto, os.path.dirname(os.path.abspath(path)))
            except Exception as e:
                self._error("MODEL_DESERIALIZE_FAILED", f"Failed to load external weights next to {path}: {e}")
                return False
        return self._import(proto)

    def parse_model_proto(self, model, path=None):
        return self.parse(model, path)

    # -- internals ------------------------------------------------------------------------------
    def _error(self, code_name: str, desc: str, node: int = -1) -> None:
        ctx = type(self)._ctx
        code = getattr(ctx.classes["ErrorCode"], code_name)
        self._errors.append(ctx.new("ParserError", code, desc, node))
        log(self._logger, "ERROR", f"ModelImporter: {desc}")

    def _import(self, model: onnx.ModelProto) -> bool:
        ctx = type(self)._ctx
        net = self._network
        if not net._explicit_batch:
            # https://docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-861/developer-guide/index.html
            # (ONNX parser: "the ONNX parser requires the network to be created with EXPLICIT_BATCH").
            self._error(
                "INVALID_GRAPH",
                "The ONNX parser only supports networks with an explicit batch dimension: create the network "
                "with flags=1 << int(tensorrt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)",
            )
            return False
        graph = model.graph
        kernels = cpu_kernels()
        ok = True
        for index, node in enumerate(graph.node):
            if (node.domain or "ai.onnx", node.op_type) not in kernels:
                self._error("UNSUPPORTED_NODE", f"No importer registered for op: {node.op_type}", index)
                ok = False
        if not ok:
            return False
        data_type = ctx.classes["DataType"]
        has_int64 = hasattr(data_type, "INT64")
        if not has_int64 and any(init.data_type == TensorProto.INT64 for init in graph.initializer):
            log(
                self._logger,
                "WARNING",
                "onnx2trt_utils: Your ONNX model has been generated with INT64 weights, while TensorRT does not "
                "natively support INT64. Attempting to cast down to INT32.",
            )
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:
            inferred = model
        output_types = {vi.name: vi for vi in inferred.graph.output}

        def trt_type(elem: int, what: str):
            name = ONNX_TO_TRT.get(elem)
            if name == "INT64" and not has_int64:
                name = "INT32"
            if name is None or not hasattr(data_type, name):
                self._error(
                    "UNSUPPORTED_GRAPH",
                    f"{what} has ONNX type {TensorProto.DataType.Name(elem)}, "
                    "which this TensorRT version cannot carry at the network boundary",
                )
                return None
            return getattr(data_type, name)

        initializer_names = {init.name for init in graph.initializer}
        for vi in graph.input:
            if vi.name in initializer_names:
                continue
            elem = vi.type.tensor_type.elem_type
            dtype = trt_type(elem, f"input {vi.name!r}")
            if dtype is None:
                return False
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
            tensor = net.add_input(vi.name, dtype, dims)
            tensor._onnx_elem = elem
        for node in graph.node:
            if node.op_type in PARSER_IMPORTERS:
                PARSER_IMPORTERS[node.op_type](net, node)
                continue
            outputs = [net._tensor(name) for name in node.output if name]
            inputs = [net._tensor(name) for name in node.input if name]
            layer_type = _ONNX_LAYER_TYPES.get(node.op_type, "PLUGIN_V2")
            layer = ctx.new("ILayer", net, node.name or f"node_of_{node.output[0]}", inputs, outputs, layer_type)
            layer._onnx_node = node
            net._layers.append(layer)
        net._initializers.extend(graph.initializer)
        for opset in model.opset_import:
            net._opsets[opset.domain] = (
                max(opset.version, net._opsets.get(opset.domain, 0)) if opset.domain else opset.version
            )
        net._ir_version = model.ir_version
        for vi in graph.output:
            src = output_types.get(vi.name, vi)
            elem = src.type.tensor_type.elem_type or vi.type.tensor_type.elem_type
            dtype = trt_type(elem, f"output {vi.name!r}")
            if dtype is None:
                return False
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in src.type.tensor_type.shape.dim]
            tensor = net._tensor(vi.name)
            tensor._dtype, tensor._shape, tensor._onnx_elem = dtype, dims, elem
            net.mark_output(tensor)
        return True


REGISTRY = {
    "ITensor": ITensor,
    "ILayer": ILayer,
    "INetworkDefinition": INetworkDefinition,
    "ParserError": ParserError,
    "OnnxParser": OnnxParser,
}
