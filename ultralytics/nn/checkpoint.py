"""Load upstream YOLOv8 / YOLO11 / YOLO26 `.pt` checkpoints without running arbitrary code.

A `.pt` file is a pickle, and unpickling can call any importable function. The restricted unpickler
below resolves only the globals a YOLO detection checkpoint is made of (torch tensor rebuilders,
a handful of torch.nn layers, our model classes, plain containers, numpy scalars, paths); any other
global stops the load with its name and points at `trust=True` for files the user vouches for.

Checkpoints from every 8.x release load: 8.0.x pickles layers as `ultralytics.nn.modules.Conv`
(re-exported there), pre-8.1 releases used `ultralytics.yolo.*` module paths (remapped here), and
Windows-saved checkpoints carry `pathlib.WindowsPath` (swapped for the host's path class).
"""

from __future__ import annotations

import os
import pickle
import types
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ultralytics.utils import DEFAULT_CFG_DICT, DEFAULT_CFG_KEYS, IterableSimpleNamespace

__all__ = ["CheckpointError", "checkpoint_imgsz", "load_checkpoint"]


class CheckpointError(ValueError):
    """The file is not a YOLO detection checkpoint (YOLOv8/YOLO11/YOLO26) this package can load (or refused to load)."""


class _ForbiddenGlobal(CheckpointError):
    """A pickle referenced a global outside the allow-list; carries the global's dotted name."""

    def __init__(self, global_name: str):
        super().__init__(global_name)
        self.global_name = global_name


# Old module paths -> current ones (longest prefix first), as upstream's own loader remaps them.
_MODULE_RENAMES = (
    ("ultralytics.yolo.utils", "ultralytics.utils"),
    ("ultralytics.yolo.v8", "ultralytics.models.yolo"),
    ("ultralytics.yolo.data", "ultralytics.data"),
)
# Python 2 names that protocol-2 pickles (torch.save's default) still use.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def _rename_module(module: str) -> str:
    module = _PY2_MODULES.get(module, module)
    for old, new in _MODULE_RENAMES:
        if module == old or module.startswith(old + "."):
            return new + module[len(old) :]
    return module


def _host_path_class(name: str) -> str:
    """A concrete pathlib class of the other OS cannot be instantiated here; use the host's."""
    if name in ("WindowsPath", "PosixPath"):
        return "WindowsPath" if os.name == "nt" else "PosixPath"
    return name


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Every (module, name) a YOLOv8/YOLO11/YOLO26 detection checkpoint may reference, mapped to the object it loads as."""
    import copyreg
    import pathlib

    import numpy as np

    from ultralytics.nn import modules
    from ultralytics.nn.tasks import DetectionModel

    allowed: dict[tuple[str, str], Any] = {}

    def allow(obj: Any, *modules_: str, name: str | None = None) -> None:
        for module in modules_ or (obj.__module__,):
            allowed[(module, name or obj.__name__)] = obj

    # Tensors and parameters (storages are resolved by torch.load itself before reaching us).
    for fn_name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                    "_rebuild_parameter_with_state"):  # fmt: skip
        if hasattr(torch._utils, fn_name):
            allow(getattr(torch._utils, fn_name), "torch._utils")
    allow(torch._tensor._rebuild_from_type_v2, "torch._tensor")
    allow(torch.Size, "torch")
    allow(torch.device, "torch")
    allow(torch.Tensor, "torch", "torch._tensor")
    allow(nn.Parameter, "torch.nn.parameter")
    for attr in dir(torch):
        value = getattr(torch, attr, None)
        if isinstance(value, torch.dtype):
            allow(value, "torch", name=attr)

    # The torch.nn layers inside a YOLO detector (Identity: upstream maps a removed block to it).
    for layer in (nn.Sequential, nn.ModuleList, nn.Conv2d, nn.BatchNorm2d, nn.SiLU, nn.MaxPool2d, nn.Upsample,
                  nn.Identity):  # fmt: skip
        allow(layer)

    # Our classes, at their 8.1+ paths and at 8.0.x's single-module path.
    for layer in (modules.Conv, modules.Concat, modules.C2f, modules.Bottleneck, modules.SPPF, modules.DFL,
                  modules.Detect):  # fmt: skip
        allow(layer, layer.__module__, "ultralytics.nn.modules")
    # YOLO11 / YOLO26 layers (8.3+ only, so only at their per-file module paths).
    for layer in (modules.DWConv, modules.C3, modules.C3k, modules.C3k2, modules.C2PSA, modules.PSABlock,
                  modules.Attention):  # fmt: skip
        allow(layer)
    allow(nn.Identity, "ultralytics.nn.modules.block", "ultralytics.nn.modules", name="Silence")
    allow(DetectionModel, "ultralytics.nn.tasks")
    allow(IterableSimpleNamespace, "ultralytics.utils")

    # Plain containers and values.
    for builtin in (set, frozenset, dict, list, tuple, slice, complex, bytearray, object):
        allow(builtin, "builtins")
    allow(OrderedDict, "collections")
    allow(types.SimpleNamespace, "types")
    allow(copyreg._reconstructor, "copyreg")  # protocol 0/1 objects
    import _codecs

    allow(_codecs.encode, "_codecs")  # protocol 2 stores bytes as encode(str, "latin1")

    # numpy scalars/arrays in metrics, under both numpy 1 (numpy.core) and numpy 2 (numpy._core) names.
    multiarray = getattr(np, "_core", None) or np.core
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allow(multiarray.multiarray.scalar, module, name="scalar")
        allow(multiarray.multiarray._reconstruct, module, name="_reconstruct")
    allow(np.dtype, "numpy", name="dtype")
    allow(np.ndarray, "numpy", name="ndarray")

    # Paths (train_args may hold them); the other OS's concrete class becomes the host's.
    for module in ("pathlib", "pathlib._local"):
        for name in ("Path", "PurePath", "PurePosixPath", "PureWindowsPath", "PosixPath", "WindowsPath"):
            allow(getattr(pathlib, _host_path_class(name)), module, name=name)
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; anything else raises `_ForbiddenGlobal`."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if _RestrictedUnpickler._allowed is None:
            _RestrictedUnpickler._allowed = _allowed_globals()
        found = _RestrictedUnpickler._allowed.get((_rename_module(module), name))
        if found is None:
            raise _ForbiddenGlobal(f"{module}.{name}")
        return found


class _TrustedUnpickler(pickle.Unpickler):
    """Plain unpickling (any global) with the same old-path remapping, for files the user trusts."""

    def find_class(self, module: str, name: str) -> Any:
        module = _rename_module(module)
        if module == "pathlib":
            name = _host_path_class(name)
        return super().find_class(module, name)


def _pickle_module(unpickler: type[pickle.Unpickler]) -> types.ModuleType:
    """A stand-in for the `pickle` module that `torch.load(pickle_module=...)` drives."""
    module = types.ModuleType(f"ultralytics_{unpickler.__name__.strip('_').lower()}")
    module.Unpickler = unpickler
    module.load = lambda file, **kwargs: unpickler(file, **kwargs).load()
    return module


def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") for name in archive.namelist())


def _read_pickle(path: Path, trust: bool) -> Any:
    """torch.load through our unpickler, translating every failure into a CheckpointError."""
    if _is_torchscript_archive(path):
        raise CheckpointError(
            f"{path} is a TorchScript archive (format=torchscript export), not a training checkpoint. "
            "Load the original .pt instead, or run the TorchScript file with torch.jit.load."
        )
    from ultralytics.utils.settings import torch_weights_only_forced

    if torch_weights_only_forced():
        raise CheckpointError(
            "TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, which makes torch.load reject the restricted unpickler this "
            "loader uses to read YOLO checkpoints safely. Unset it to load YOLO .pt files."
        )
    unpickler = _TrustedUnpickler if trust else _RestrictedUnpickler
    try:
        return torch.load(path, map_location="cpu", pickle_module=_pickle_module(unpickler), weights_only=False)
    except _ForbiddenGlobal as e:
        if e.global_name.startswith(("models.", "utils.")):
            raise CheckpointError(
                f"{path} looks like a YOLOv5 checkpoint (it references {e.global_name}). This package loads "
                "YOLOv8, YOLO11 and YOLO26 checkpoints; retrain the model with one of those."
            ) from None
        raise CheckpointError(
            f"refusing to load {path}: it references the Python global '{e.global_name}', which a YOLO "
            "detection checkpoint does not need, and unpickling it could run arbitrary code. If you trust "
            "this file and its source, load it with trust=True."
        ) from None
    except (ModuleNotFoundError, ImportError, AttributeError) as e:
        hint = (
            " It looks like a YOLOv5 checkpoint; this package loads YOLOv8/YOLO11/YOLO26." if "models" in str(e) else ""
        )
        raise CheckpointError(
            f"{path} needs Python code this package does not have ({type(e).__name__}: {e}); it is not a "
            f"YOLO detection checkpoint.{hint}"
        ) from None
    except CheckpointError:
        raise
    except Exception as e:  # corrupt zip, bad magic number, truncated pickle, ...
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {e}). Expected a YOLOv8/YOLO11/YOLO26 .pt "
            "file saved by Ultralytics training."
        ) from None


def _as_checkpoint_dict(obj: Any, path: Path) -> dict:
    """Normalise what the pickle held to a dict with 'model' (and maybe 'ema'), or explain why not."""
    if isinstance(obj, nn.Module):
        return {"model": obj}
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a YOLO detection checkpoint (a dict with a model)"
        )
    if obj.get("ema") is None and obj.get("model") is None:
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError(
                f"{path} is a plain state_dict (weights only, no architecture). Build the model and load the "
                "weights into it, e.g. DetectionModel('yolov8n.yaml', nc=...).load_state_dict(torch.load(path)), "
                "or use the checkpoint saved by training (best.pt / last.pt)."
            )
        raise CheckpointError(
            f"{path} has no 'model' or 'ema' entry (keys: {sorted(map(str, obj))[:10]}); not a YOLO detection checkpoint"
        )
    return obj


def _upgrade_loaded_model(model: nn.Module, ckpt: dict, path: Path) -> None:
    """Give models pickled by older releases the attributes our forward and callers rely on."""
    from ultralytics.nn.modules import Detect

    head = model.model[-1] if isinstance(getattr(model, "model", None), nn.Sequential) else None
    if not isinstance(head, Detect):
        raise CheckpointError(f"{path}: the model's last layer is {type(head).__name__}, not a YOLO Detect head")
    nc = int(head.nc)
    names = model.__dict__.get("names") or ckpt.get("names")
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or len(names) != nc:
        names = {i: f"class{i}" for i in range(nc)}
    try:
        model.names = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError):  # keys that are not class indices: keep the order, renumber
        model.names = {i: str(v) for i, v in enumerate(names.values())}
    model.nc = nc
    if not isinstance(model.__dict__.get("stride"), torch.Tensor):
        model.stride = torch.tensor([32.0])
    if not isinstance(head.__dict__.get("stride"), torch.Tensor):
        head.stride = model.stride.clone()
    if "save" not in model.__dict__:
        model.save = sorted({x % layer.i for layer in model.model for x in _as_list(layer.f) if x != -1})
    for module in model.modules():
        if isinstance(module, nn.Upsample) and not hasattr(module, "recompute_scale_factor"):
            module.recompute_scale_factor = None  # torch < 1.11 pickles lack it
    if not isinstance(model.__dict__.get("yaml"), dict):
        model.yaml = {"nc": nc}


def _as_list(f: int | list[int]) -> list[int]:
    return [f] if isinstance(f, int) else list(f)


def _train_args(ckpt: dict) -> dict:
    args = ckpt.get("train_args")
    if isinstance(args, types.SimpleNamespace):
        args = vars(args)
    return args if isinstance(args, dict) else {}


def load_checkpoint(path: str | Path, *, trust: bool = False) -> tuple[nn.Module, dict]:
    """Load an upstream YOLOv8/YOLO11/YOLO26 `.pt` into our DetectionModel: FP32, BatchNorm fused, eval mode.

    Returns (model, checkpoint dict). `trust=True` allows any pickle global: only for files whose
    origin you trust, since unpickling can execute code.
    """
    from ultralytics.nn.tasks import DetectionModel

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    ckpt = _as_checkpoint_dict(_read_pickle(path, trust), path)
    model = ckpt.get("ema") if ckpt.get("ema") is not None else ckpt.get("model")
    if not isinstance(model, DetectionModel):
        raise CheckpointError(
            f"{path} holds a {type(model).__module__}.{type(model).__name__}, not a YOLO DetectionModel "
            "(only detection checkpoints are supported)"
        )
    _upgrade_loaded_model(model, ckpt, path)
    train_args = _train_args(ckpt)
    merged = {**DEFAULT_CFG_DICT, **train_args}
    model.args = {k: v for k, v in merged.items() if k in DEFAULT_CFG_KEYS}
    model.task = "detect"
    model.pt_path = str(path)
    model.float().fuse().eval()
    return model, ckpt


def checkpoint_imgsz(ckpt: dict) -> int | None:
    """The image size the checkpoint was trained at (`train_args['imgsz']`), or None when unrecorded."""
    imgsz = _train_args(ckpt).get("imgsz") if isinstance(ckpt, dict) else None
    if isinstance(imgsz, (list, tuple)) and imgsz and all(isinstance(v, int) for v in imgsz):
        return int(max(imgsz))
    if isinstance(imgsz, (int, float)) and not isinstance(imgsz, bool) and imgsz > 0:
        return int(imgsz)
    return None
