"""Precision: builder flags where TensorRT is weakly typed (<= 10.x), dtype names everywhere."""

from __future__ import annotations

from types import ModuleType

import torch


def enable_fp16(trt: ModuleType, config) -> bool:
    """Let the builder pick FP16 kernels; False where precision comes from the ONNX types alone.

    8.6-10.x (weak typing): `BuilderFlag.FP16` is needed even for an FP16 ONNX, otherwise TensorRT
    may run layers in FP32 between casts. 11.0 removed the flag (always strongly typed).
    """
    if hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
        return True
    return False


def enable_int8(trt: ModuleType, config) -> bool:
    """Allow INT8 kernels (needed on <= 10.x both for a calibrator and for a Q/DQ ONNX); False on 11.0+."""
    if hasattr(trt.BuilderFlag, "INT8"):
        config.set_flag(trt.BuilderFlag.INT8)
        return True
    return False


def int8_route(trt: ModuleType) -> str:
    """How this TensorRT builds INT8: "calibrator" where it still calibrates during the build
    (<= 10.x: `BuilderFlag.INT8` and a calibrator class), else "qdq" (11.0+: only an ONNX with
    explicit Q/DQ nodes carries INT8)."""
    if hasattr(trt.BuilderFlag, "INT8") and (
        hasattr(trt, "IInt8EntropyCalibrator2") or hasattr(trt, "IInt8MinMaxCalibrator")
    ):
        return "calibrator"
    return "qdq"


def dtype_name(trt: ModuleType, dtype) -> str:
    """A TensorRT DataType as a short lower-case name ("float32", "float16", ...) for metadata and messages."""
    names = {trt.DataType.FLOAT: "float32", trt.DataType.HALF: "float16", trt.DataType.INT8: "int8"}
    names[trt.DataType.INT32] = "int32"
    names[trt.DataType.BOOL] = "bool"
    if hasattr(trt.DataType, "INT64"):  # added in 10.0
        names[trt.DataType.INT64] = "int64"
    return names.get(dtype, str(getattr(dtype, "name", dtype)).lower())


TORCH_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "int8": torch.int8,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}


def torch_dtype(trt: ModuleType, dtype) -> torch.dtype:
    """The torch dtype for a TensorRT DataType; an error for types a YOLO engine never has."""
    name = dtype_name(trt, dtype)
    if name not in TORCH_DTYPES:
        raise TypeError(f"TensorRT tensor type {name} has no torch equivalent handled here")
    return TORCH_DTYPES[name]
