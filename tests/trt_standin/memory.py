"""Reading and writing tensors at raw addresses, as TensorRT does with the pointers it is given.

Host pointers (torch CPU `data_ptr()`, numpy `ctypes.data`) are accessed with ctypes after checking the
range is mapped in this process (so a wrong pointer is a clear error, not a segfault). When CUDA is
available (GPU machine: torch + cupy), device pointers are detected with cudaPointerGetAttributes and
copied with cudaMemcpy.
"""

from __future__ import annotations

import bisect
import ctypes
import sys

import numpy as np


class AddressError(ValueError):
    """An address the stand-in cannot read or write; the message says what to pass instead."""


def _mapped_ranges() -> list[tuple[int, int]]:
    ranges = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                lo, hi = line.split(" ", 1)[0].split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    except OSError:
        return []
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _check_host(address: int, nbytes: int) -> None:
    if address == 0:
        raise AddressError("address is 0 (null): set_tensor_address needs tensor.data_ptr() of an allocated tensor")
    ranges = _mapped_ranges()
    if not ranges:
        return  # no /proc: cannot check
    i = bisect.bisect_right([lo for lo, _ in ranges], address) - 1
    if i < 0 or address + nbytes > ranges[i][1]:
        raise AddressError(
            f"address 0x{address:x} (+{nbytes} bytes) is not memory of this process: pass tensor.data_ptr() "
            "of a live, contiguous tensor large enough for the tensor's shape"
        )


def _cupy_runtime():
    """cupy's CUDA runtime when a GPU is usable, else None (CPU machines: always None)."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if not torch.cuda.is_available():
            return None
    try:
        import cupy  # noqa: F401
        from cupy.cuda import runtime
    except Exception:
        return None
    try:
        if runtime.getDeviceCount() == 0:
            return None
    except Exception:
        return None
    return runtime


def _is_device_pointer(runtime, address: int) -> bool:
    try:
        attrs = runtime.pointerGetAttributes(address)
    except Exception:
        return False
    return attrs.type in (2, 3)  # cudaMemoryTypeDevice, cudaMemoryTypeManaged


def read_tensor(address: int, shape: list[int], dtype, stream: int = 0) -> np.ndarray:
    """Copy a tensor of `shape`/`dtype` from `address` into a new numpy array."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    out = np.empty(shape, dtype=dtype)
    if nbytes == 0:
        return out
    runtime = _cupy_runtime()
    if runtime is not None and _is_device_pointer(runtime, address):
        runtime.streamSynchronize(stream)
        runtime.memcpy(out.ctypes.data, address, nbytes, runtime.memcpyDeviceToHost)
        return out
    _check_host(address, nbytes)
    ctypes.memmove(out.ctypes.data, address, nbytes)
    return out


def write_tensor(address: int, array: np.ndarray, stream: int = 0) -> None:
    """Copy `array` (C-contiguous) to `address`."""
    array = np.ascontiguousarray(array)
    nbytes = array.nbytes
    if nbytes == 0:
        return
    runtime = _cupy_runtime()
    if runtime is not None and _is_device_pointer(runtime, address):
        runtime.memcpy(address, array.ctypes.data, nbytes, runtime.memcpyHostToDevice)
        runtime.streamSynchronize(stream)
        return
    _check_host(address, nbytes)
    ctypes.memmove(address, array.ctypes.data, nbytes)
