"""Behaviour of the small value types: ILogger/Logger, Dims, IHostMemory, and module functions."""

from __future__ import annotations

import ctypes
import sys
import time
from typing import Any

import numpy as np

from .common import TRT_TO_NUMPY, settable
from .surface import wants_ctx

_SEVERITY_LETTER = {0: "F", 1: "E", 2: "W", 3: "I", 4: "V"}


class ILogger:
    def __init__(self):
        pass


class Logger:
    """trt.Logger prints messages at or above min_severity (lower value = more severe)."""

    def __init__(self, min_severity=None):
        if min_severity is None:
            min_severity = type(self)._ctx.classes["ILogger.Severity"].WARNING
        self._min_severity = min_severity

    def log(self, severity, msg):
        if int(severity) <= int(self._min_severity):
            stamp = time.strftime("%m/%d/%Y-%H:%M:%S")
            print(f"[{stamp}] [TRT] [{_SEVERITY_LETTER.get(int(severity), '?')}] {msg}", file=sys.stderr)

    min_severity = settable("_min_severity")


class Dims:
    """Tuple-like shape; the real bindings convert tuples and lists implicitly."""

    def __init__(self, *args, **kwargs):
        args = args + tuple(kwargs.values())
        if len(args) == 1 and not hasattr(args[0], "__index__"):
            args = tuple(args[0])
        self._dims = [int(v) for v in args]

    def _setup(self, values=()):
        self._dims = [int(v) for v in values]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self._dims[index])
        return self._dims[index]

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            self._dims[index] = [int(v) for v in value]
        else:
            self._dims[index] = int(value)

    def __len__(self):
        return len(self._dims)

    def __iter__(self):
        return iter(self._dims)

    def __eq__(self, other):
        try:
            return self._dims == [int(v) for v in other]
        except TypeError:
            return False

    def __repr__(self):
        return repr(tuple(self._dims))

    def __str__(self):
        return str(tuple(self._dims))

    @property
    def MAX_DIMS(self):  # noqa: N802 - recorded name
        return 8


class IHostMemory:
    """Plan bytes; see make_host_memory for how the buffer protocol is provided."""

    @property
    def nbytes(self):
        return ctypes.sizeof(self)

    @property
    def dtype(self):
        return type(self)._ctx.classes["DataType"].UINT8


def make_host_memory(ctx, data: bytes):
    """An IHostMemory that supports the buffer protocol (f.write(mem), bytes(mem), memoryview(mem)).

    Python 3.11 classes cannot implement the buffer protocol in Python, so the instance's class also
    derives from a ctypes byte array (which adds no public attribute names).
    """
    base = ctx.classes["IHostMemory"]
    sub = type("IHostMemory", (base, ctypes.c_ubyte * len(data)), {"_ctx": ctx, "_user_subclass": False})
    sub.__qualname__ = "IHostMemory"
    sub.__module__ = "tensorrt.tensorrt"
    return sub.from_buffer_copy(data) if data else sub()


def volume(iterable):
    result = 1
    for v in iterable:
        result *= v
    return result


@wants_ctx
def nptype(ctx, trt_type):
    name = getattr(trt_type, "name", None)
    if name not in TRT_TO_NUMPY:
        raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype: {trt_type!r}")
    return TRT_TO_NUMPY[name]


@wants_ctx
def get_nv_onnx_parser_version(ctx):
    major, minor, patch = (int(p) for p in ctx.version.split(".")[:3])
    return major * 10000 + minor * 100 + patch


def init_libnvinfer_plugins(logger, namespace):
    return True  # the stand-in has no plugins to register


def common_enter(this):
    return this


def common_exit(this, exc_type, exc_value, traceback):
    return None


FUNCTIONS = {
    "volume": volume,
    "nptype": nptype,
    "get_nv_onnx_parser_version": get_nv_onnx_parser_version,
    "init_libnvinfer_plugins": init_libnvinfer_plugins,
    "common_enter": common_enter,
    "common_exit": common_exit,
}

REGISTRY: dict[str, Any] = {"ILogger": ILogger, "Logger": Logger, "Dims": Dims, "IHostMemory": IHostMemory}

_ = np  # numpy is part of nptype's contract (returns numpy types)
