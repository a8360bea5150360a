"""How reduced precision is modelled: the executed ONNX graph is rewritten before ONNX Runtime runs it.

- "fp32": the graph runs as built.
- "fp16" (weak typing, BuilderFlag.FP16 on TensorRT <= 10): every float weight is rounded to the
  nearest FP16 value and every float activation (network inputs and each node's float outputs) is
  stored as FP16 (a Cast to FLOAT16 and back), while arithmetic inside a node stays FP32. That is
  what FP16 storage with FP32 accumulation looks like, so FP16 rounding shows in the outputs, but it
  does not reproduce which layers real TensorRT keeps in FP32 or its kernels' exact rounding.
- INT8 builds (calibrator path) run with the precision above (fp16 when FP16 is also set, else fp32);
  calibration only records per-input ranges. INT8 arithmetic itself is not modelled.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_SUFFIX = "__standin_fp16"


def _round_tensor(tensor: TensorProto) -> TensorProto:
    if tensor.data_type != TensorProto.FLOAT:
        return tensor
    values = numpy_helper.to_array(tensor)
    rounded = np.clip(values, -65504, 65504).astype(np.float16).astype(np.float32)
    return numpy_helper.from_array(rounded, tensor.name)


def to_fp16_storage(model: onnx.ModelProto) -> onnx.ModelProto:
    """Round weights to FP16 and store every float activation as FP16 (see module docstring)."""
    try:
        typed = onnx.shape_inference.infer_shapes(model)
    except Exception:
        typed = model
    elem_types = {}
    for vi in list(typed.graph.value_info) + list(typed.graph.input) + list(typed.graph.output):
        elem_types[vi.name] = vi.type.tensor_type.elem_type
    graph = model.graph
    new_initializers = [_round_tensor(t) for t in graph.initializer]
    del graph.initializer[:]
    graph.initializer.extend(new_initializers)

    def storage_casts(name: str, stored: str) -> list:
        half = stored + "_half"
        return [
            helper.make_node("Cast", [name], [half], to=TensorProto.FLOAT16),
            helper.make_node("Cast", [half], [stored], to=TensorProto.FLOAT),
        ]

    nodes = []
    renamed: dict[str, str] = {}
    initializer_names = {t.name for t in graph.initializer}
    for vi in graph.input:
        if vi.name not in initializer_names and vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            renamed[vi.name] = vi.name + _SUFFIX
            nodes.extend(storage_casts(vi.name, renamed[vi.name]))
    output_names = {vi.name for vi in graph.output}
    for node in graph.node:
        node = _copy(node)
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(_round_tensor(attr.t))
        casts = []
        for i, name in enumerate(node.output):
            if not name or elem_types.get(name) != TensorProto.FLOAT:
                continue
            if name in output_names:  # keep the graph output's name for the stored (rounded) value
                raw = name + "__standin_raw"
                node.output[i] = raw
                casts += storage_casts(raw, name)
            else:
                renamed[name] = name + _SUFFIX
                casts += storage_casts(name, renamed[name])
        nodes.append(node)
        nodes.extend(casts)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _copy(node):
    clone = onnx.NodeProto()
    clone.CopyFrom(node)
    return clone


def prepare(model_bytes: bytes, precision: str) -> bytes:
    """The bytes ONNX Runtime executes for a plan built with `precision`."""
    if precision == "fp32":
        return model_bytes
    if precision == "fp16":
        return to_fp16_storage(onnx.load_from_string(model_bytes)).SerializeToString()
    raise ValueError(f"unknown stand-in precision {precision!r}")
