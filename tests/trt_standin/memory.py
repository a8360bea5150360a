"""Reading and writing tensors at raw addresses, as TensorRT does with the pointers it is given.

Host pointers (torch CPU `data_ptr()`, numpy `ctypes.data`) are accessed with ctypes after checking the
range is mapped in this process (so a wrong pointer is a clear error, not a segfault). When CUDA is
available (GPU machine: torch, with cupy or libcudart), device pointers are detected with
cudaPointerGetAttributes and copied with cudaMemcpy.
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


class _CtypesCudart:
    """The few CUDA runtime calls we need, through ctypes, when cupy is not installed."""

    memcpyHostToDevice, memcpyDeviceToHost = 1, 2  # noqa: N815 - cupy's names

    class _Attributes(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("device", ctypes.c_int), ("devicePointer", ctypes.c_void_p),
                    ("hostPointer", ctypes.c_void_p)]  # fmt: skip

    def __init__(self, lib):
        self.lib = lib

    def pointerGetAttributes(self, address):  # noqa: N802 - cupy's name
        attrs = self._Attributes()
        if self.lib.cudaPointerGetAttributes(ctypes.byref(attrs), ctypes.c_void_p(address)) != 0:
            self.lib.cudaGetLastError()
            raise RuntimeError("cudaPointerGetAttributes failed")
        return attrs

    def memcpy(self, dst, src, nbytes, kind):
        if self.lib.cudaMemcpy(ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes), kind) != 0:
            raise AddressError(f"cudaMemcpy of {nbytes} bytes failed (kind {kind})")

    def streamSynchronize(self, stream):  # noqa: N802 - cupy's name
        self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream))


def _load_cudart():
    import glob
    import os

    candidates = ["libcudart.so", "libcudart.so.12", "libcudart.so.13", "libcudart.so.11.0"]
    for path in sys.path:
        candidates += sorted(glob.glob(os.path.join(path, "nvidia", "cuda_runtime", "lib", "libcudart.so*")))
    for name in candidates:
        try:
            return _CtypesCudart(ctypes.CDLL(name))
        except OSError:
            continue
    return None


_RUNTIME: list = []


def _cuda_runtime():
    """A CUDA runtime (cupy's, else libcudart via ctypes) when a GPU is usable; None on CPU machines."""
    if _RUNTIME:
        return _RUNTIME[0]
    runtime = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        try:
            from cupy.cuda import runtime
        except Exception:
            runtime = _load_cudart()
    if torch is not None:  # decided for good once torch is loaded (device pointers come from torch/cupy)
        _RUNTIME.append(runtime)
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
    runtime = _cuda_runtime()
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
    runtime = _cuda_runtime()
    if runtime is not None and _is_device_pointer(runtime, address):
        runtime.memcpy(address, array.ctypes.data, nbytes, runtime.memcpyHostToDevice)
        runtime.streamSynchronize(stream)
        return
    _check_host(address, nbytes)
    ctypes.memmove(address, array.ctypes.data, nbytes)


_PAGE = 4096
_IS_MMAPPED, _PREV_INUSE = 2, 1


def _mapped(lo: int, hi: int) -> bool:
    ranges = _mapped_ranges()
    i = bisect.bisect_right([r[0] for r in ranges], lo) - 1
    return i >= 0 and hi <= ranges[i][1]


def allocation_size(address: int) -> int | None:
    """Usable bytes of the glibc malloc block that starts at `address` (numpy and torch CPU buffers),
    or None when the address does not look like the start of one (then nothing can be said).

    TensorRT reads calibration batches with cudaMemcpy from device buffers, where reading past the end
    is an illegal address; on host memory the stand-in needs the block's size to call a short buffer an
    error. The chunk header (size | flags) sits just before the block; it is only trusted when it is
    consistent: a multiple of 16, a mapped chunk, and an in-use bit on the next chunk (or, for a block
    of its own mapping, a page-aligned mapping start).
    """
    if address % 16 or not _mapped(address - 16, address):
        return None
    field = ctypes.c_size_t.from_address(address - 8).value
    size = field & ~7
    if size < 32 or size % 16 or size > 1 << 42:
        return None
    chunk = address - 16
    if field & _IS_MMAPPED:
        offset = ctypes.c_size_t.from_address(chunk).value  # memalign's gap before the chunk
        start = chunk - offset
        if offset % 16 or start % _PAGE or not _mapped(start, chunk + size):
            return None
        return size - 16
    if not _mapped(chunk, chunk + size + 16):
        return None
    next_field = ctypes.c_size_t.from_address(chunk + size + 8).value
    if not next_field & _PREV_INUSE:
        return None
    return size - 8
