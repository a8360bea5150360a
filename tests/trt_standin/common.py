"""Small helpers shared by the behaviour modules: logging through the user's ILogger, dtype maps."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto

# ONNX element type → TensorRT DataType member name (only types TensorRT can carry at I/O).
ONNX_TO_TRT = {
    TensorProto.FLOAT: "FLOAT",
    TensorProto.FLOAT16: "HALF",
    TensorProto.INT8: "INT8",
    TensorProto.INT32: "INT32",
    TensorProto.INT64: "INT64",
    TensorProto.BOOL: "BOOL",
    TensorProto.UINT8: "UINT8",
    TensorProto.BFLOAT16: "BF16",
}
TRT_TO_ONNX = {v: k for k, v in ONNX_TO_TRT.items()}

TRT_TO_NUMPY = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "UINT8": np.uint8,
}


def settable(attr: str, cast: Any = None) -> property:
    """A TensorRT attribute the user reads and sets (`config.builder_optimization_level = 3`), kept in
    `attr`; `cast` converts what is set, as TensorRT's bindings do (int, bool, ...)."""

    def get(self: Any) -> Any:
        return getattr(self, attr)

    def set_(self: Any, value: Any) -> None:
        setattr(self, attr, value if cast is None else cast(value))

    return property(get, set_)


def log(logger: Any, severity: str, message: str) -> None:
    """Send `message` to the ILogger the user gave us, as TensorRT does (the user's log() decides)."""
    if logger is None:
        return
    ctx = type(logger)._ctx
    logger.log(getattr(ctx.classes["ILogger.Severity"], severity), message)


def dims_list(value: Any) -> list[int]:
    """Dims / tuple / list → list of Python ints."""
    return [int(v) for v in value]


class BitFlags:
    """The `flags` bit set that IBuilderConfig and OnnxParser both expose (one bit per enum member)."""

    _flags = 0

    flags = settable("_flags", int)

    def set_flag(self, flag):
        self._flags |= 1 << int(flag)

    def clear_flag(self, flag):
        self._flags &= ~(1 << int(flag))

    def get_flag(self, flag):
        return bool(self._flags & (1 << int(flag)))
