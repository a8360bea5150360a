"""Engine I/O: the tensor-name API (TensorRT 8.5+) wherever it exists, the binding API elsewhere.

Both classes expose the same small interface to the backend: the list of I/O tensors, setting an
input shape, reading an output shape, binding addresses and enqueueing on a stream. Each class
declares in `REQUIRES` the API it cannot work without; the surface test checks its attribute uses
only against versions that have it, and the constructor refuses a module that lacks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import torch

from ultralytics.trt.precision import dtype_name, torch_dtype


@dataclass
class TensorInfo:
    """One engine input or output as the engine declares it (-1 marks a dynamic dimension)."""

    name: str
    index: int
    is_input: bool
    dtype: torch.dtype
    dtype_name: str
    shape: tuple[int, ...]
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None  # inputs: (min, opt, max)

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.shape)


def _dims(dims) -> tuple[int, ...]:
    return tuple(int(d) for d in dims)


class TensorNameIO:
    """I/O through tensor names: `num_io_tensors`, `set_input_shape`, `set_tensor_address`, `execute_async_v3`."""

    REQUIRES = "ICudaEngine.num_io_tensors"

    def __init__(self, trt: ModuleType, engine, context) -> None:
        if not hasattr(trt.ICudaEngine, "num_io_tensors"):
            raise RuntimeError("this TensorRT has no tensor-name API (added in 8.5)")
        self.trt, self.engine, self.context = trt, engine, context
        self.tensors: list[TensorInfo] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            dtype = engine.get_tensor_dtype(name)
            shape = _dims(engine.get_tensor_shape(name))
            info = TensorInfo(name, i, is_input, torch_dtype(trt, dtype), dtype_name(trt, dtype), shape)
            if is_input and info.dynamic:
                info.profile = tuple(_dims(s) for s in engine.get_tensor_profile_shape(name, 0))
            self.tensors.append(info)

    def set_input_shape(self, info: TensorInfo, shape: tuple[int, ...]) -> bool:
        return bool(self.context.set_input_shape(info.name, self.trt.Dims(list(shape))))

    def current_shape(self, info: TensorInfo) -> tuple[int, ...]:
        return _dims(self.context.get_tensor_shape(info.name))

    def bind(self, info: TensorInfo, address: int) -> None:
        if not self.context.set_tensor_address(info.name, address):
            raise RuntimeError(f"TensorRT refused the buffer address for tensor {info.name!r}")

    def execute(self, stream_handle: int) -> bool:
        return bool(self.context.execute_async_v3(stream_handle))


class BindingIO:
    """I/O through binding indices, for TensorRT without the tensor-name API (before 8.5).

    8.6 still has this API, which is how the tests exercise it; 10.0 removed it.
    """

    REQUIRES = "ICudaEngine.num_bindings"

    def __init__(self, trt: ModuleType, engine, context) -> None:
        if not hasattr(trt.ICudaEngine, "num_bindings"):
            raise RuntimeError("this TensorRT has no binding API (removed in 10.0); use the tensor-name API")
        self.trt, self.engine, self.context = trt, engine, context
        self.tensors: list[TensorInfo] = []
        self.addresses = [0] * engine.num_bindings
        for i in range(engine.num_bindings):
            dtype = engine.get_binding_dtype(i)
            shape = _dims(engine.get_binding_shape(i))
            is_input = bool(engine.binding_is_input(i))
            info = TensorInfo(
                engine.get_binding_name(i), i, is_input, torch_dtype(trt, dtype), dtype_name(trt, dtype), shape
            )
            if is_input and info.dynamic:
                info.profile = tuple(_dims(s) for s in engine.get_profile_shape(0, i))
            self.tensors.append(info)

    def set_input_shape(self, info: TensorInfo, shape: tuple[int, ...]) -> bool:
        return bool(self.context.set_binding_shape(info.index, self.trt.Dims(list(shape))))

    def current_shape(self, info: TensorInfo) -> tuple[int, ...]:
        return _dims(self.context.get_binding_shape(info.index))

    def bind(self, info: TensorInfo, address: int) -> None:
        self.addresses[info.index] = address

    def execute(self, stream_handle: int) -> bool:
        return bool(self.context.execute_async_v2(self.addresses, stream_handle))


def engine_io(trt: ModuleType, engine, context, api: str | None = None) -> TensorNameIO | BindingIO:
    """Pick the I/O API: tensor names wherever they exist; `api` ("names"/"bindings") forces one (tests)."""
    if api is None:
        api = "names" if hasattr(trt.ICudaEngine, "num_io_tensors") else "bindings"
    if api == "names":
        return TensorNameIO(trt, engine, context)
    if api == "bindings":
        return BindingIO(trt, engine, context)
    raise ValueError(f"unknown TensorRT I/O API {api!r}; use 'names' or 'bindings'")
