"""Import TensorRT only when an engine is built or loaded, with an install hint when it is missing."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

INSTALL_HINT = (
    "TensorRT is not installed. Install NVIDIA's wheel matching your CUDA, e.g. `pip install tensorrt-cu12` "
    "(TensorRT 8.6, 10.x and 11.x are supported), or use format='onnx' instead."
)


def import_tensorrt() -> ModuleType:
    """Return the `tensorrt` module, or raise ModuleNotFoundError saying how to install it."""
    try:
        import tensorrt as trt
    except ImportError as e:  # also covers a wheel whose native libraries fail to load
        raise ModuleNotFoundError(f"{INSTALL_HINT} (import error: {e})") from e
    return trt


def tensorrt_installed() -> bool:
    """Whether `import tensorrt` can work, without importing it (so slow work can be skipped early)."""
    if sys.modules.get("tensorrt") is not None:
        return True
    try:
        return importlib.util.find_spec("tensorrt") is not None
    except (ImportError, ValueError):
        return False


def tensorrt_version(trt: ModuleType) -> str:
    """The version string for messages and metadata only; behaviour never branches on it.

    Some broken installs expose no `__version__` (upstream issue #19648), hence the fallback.
    """
    return str(getattr(trt, "__version__", "unknown"))
