"""The `yolo` commands that run no model: checks, settings, cfg, copy-cfg, version.

They exist because upstream users type them on day one (`yolo checks` is the first thing asked for
in a bug report). Each returns the process exit code; all print to stdout.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys
from pathlib import Path

from ultralytics.utils import DEFAULT_CFG_PATH
from ultralytics.utils.atomic_file import atomic_copy
from ultralytics.utils.files import increment_path
from ultralytics.utils.settings import SWITCHES, env_value

# Environment switches the package reads (there is no settings file): name → what it does.
# What `yolo checks` reports: (label, import name, distribution names to ask for a version).
PACKAGES = (
    ("torch", "torch", ("torch",)),
    ("onnx", "onnx", ("onnx",)),
    ("onnxruntime", "onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
    ("onnxslim", "onnxslim", ("onnxslim",)),
    ("opencv", "cv2", ("opencv-python-headless", "opencv-python")),
    ("numpy", "numpy", ("numpy",)),
    ("TensorRT", "tensorrt", ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_cu12", "tensorrt_cu13")),
)
TENSORRT_CHECK_MODULE = "ultralytics.engine.tensorrt_check"


def version() -> int:
    from ultralytics import __version__

    print(__version__)
    return 0


def _package_version(import_name: str, distributions: tuple[str, ...]) -> str | None:
    """The installed version, or None when the package cannot be imported (never crashes the report)."""
    for dist in distributions:
        try:
            found = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        if importlib.util.find_spec(import_name) is not None:
            return found
    try:
        module = importlib.import_module(import_name)
    except Exception:  # a broken optional install is reported as missing, not raised
        return None
    return str(getattr(module, "__version__", "installed (version unknown)"))


def checks() -> int:
    """Report Python, the platform, torch/CUDA and every inference dependency; always exits 0."""
    from ultralytics import __version__

    rows: list[tuple[str, str]] = [
        ("ultralytics", f"{__version__} ({Path(__file__).resolve().parents[1]})"),
        ("Python", platform.python_version()),
        ("OS", platform.platform()),
        ("CPU count", str(os.cpu_count())),
    ]
    for label, import_name, dists in PACKAGES:
        found = _package_version(import_name, dists)
        rows.append((label, found or "not installed"))
        if label == "torch" and found:
            rows.extend(_cuda_rows())
        if label == "onnxruntime" and found:
            rows.append(("ORT providers", _ort_providers()))
    width = max(len(k) for k, _ in rows) + 2
    print("\n".join(f"{k:<{width}}{v}" for k, v in rows))
    if not _package_version("tensorrt", PACKAGES[-1][2]):
        print("\nTensorRT is optional: format=onnx works without it; install NVIDIA's wheel for format=engine.")
    return 0


def _cuda_rows() -> list[tuple[str, str]]:
    import torch

    if not torch.cuda.is_available():
        return [("CUDA", f"not available (torch built for CUDA {torch.version.cuda or 'none: CPU-only build'})")]
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return [("CUDA", str(torch.version.cuda)), ("GPUs", f"{torch.cuda.device_count()}: {names}")]


def _ort_providers() -> str:
    try:
        import onnxruntime

        return ", ".join(onnxruntime.get_available_providers())
    except Exception as e:  # report, never crash the report
        return f"unavailable ({type(e).__name__})"


def tensorrt_check(argv: list[str]) -> int:
    """`yolo checks tensorrt ...`: the TensorRT acceptance check, when this build has it."""
    try:
        module = importlib.import_module(TENSORRT_CHECK_MODULE)
    except ModuleNotFoundError as e:
        if e.name != TENSORRT_CHECK_MODULE:
            raise
        print(
            "The TensorRT acceptance check (yolo checks tensorrt) is not available in this build; "
            "run 'yolo checks' for the installed versions."
        )
        return 2
    return int(module.main(list(argv)) or 0)


def settings(argv: list[str]) -> int:
    """Upstream keeps a settings JSON; this package has none, only environment switches — list them."""
    if argv:
        print(
            f"'yolo settings {' '.join(argv)}': this package keeps no settings file, so there is nothing to change; "
            "set the environment variables listed by 'yolo settings' instead."
        )
        return 2
    print("No settings file: this package is configured per call (key=value) and by these environment variables:")
    width = max(map(len, SWITCHES)) + 2
    for name, (values, what) in SWITCHES.items():
        print(f"  {name:<{width}}{env_value(name):<10} {what} ({values})")
    print("Run folders go to runs/detect/ under the current folder unless project= says otherwise.")
    return 0


def show_cfg() -> int:
    """`yolo cfg`: print the default configuration file and where it lives."""
    print(f"Printing '{DEFAULT_CFG_PATH}'\n")
    sys.stdout.write(DEFAULT_CFG_PATH.read_text(encoding="utf-8"))
    return 0


def copy_cfg() -> int:
    """`yolo copy-cfg`: copy default.yaml into the current folder as a starting point for `cfg=`.

    An existing copy is never overwritten: the next free name (default_copy-2.yaml, ...) is used.
    """
    target = increment_path(Path.cwd() / f"{DEFAULT_CFG_PATH.stem}_copy{DEFAULT_CFG_PATH.suffix}")
    atomic_copy(DEFAULT_CFG_PATH, target)
    print(
        f"{DEFAULT_CFG_PATH} copied to {target}\n"
        f"Example YOLO command with this new custom cfg:\n    yolo cfg='{target}' imgsz=320 batch=8"
    )
    return 0
