"""The `builder="network"` export route: what it can build, and its populate callback.

`export/tensorrt.py` shares everything else with the ONNX route (builder config, precision flags,
timing cache, engine file, metadata); this module holds only what differs, so that the export
checks stay cheap and happen before TensorRT is imported or anything is built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from torch import nn

from ultralytics.export.network_builder import SUPPORTED_LAYERS, populate_network

BUILDERS = ("onnx", "network")


def check_builder(value) -> str:
    """The build route's name ("onnx" when unset), or an error that lists the valid ones."""
    name = "onnx" if value in (None, "") else str(value).strip().lower()
    if name not in BUILDERS:
        raise ValueError(
            f"builder={value!r} is not valid; use builder=onnx (TensorRT's ONNX parser, the default) or "
            "builder=network (TensorRT's network definition API, no ONNX)"
        )
    return name


def check_network_route(model: nn.Module, *, precision: int, onnx_file) -> None:
    """Refuse, before anything is built, what this route cannot do, and say what to use instead."""
    if precision == 8:
        raise ValueError(
            "builder=network builds FP32 and FP16 engines only; INT8 needs calibration or a Q/DQ graph, which "
            "the ONNX route does: export with builder=onnx (the default), or use half=True with builder=network"
        )
    if onnx_file is not None:
        raise ValueError("builder=network builds from the model's weights; an ONNX file cannot be given with it")
    layers = getattr(model, "model", None)
    if not isinstance(layers, nn.Sequential):
        raise ValueError("builder=network needs a YOLOv8 DetectionModel (layers in model.model); use builder=onnx")
    unknown = sorted({type(m).__name__ for m in layers} - SUPPORTED_LAYERS)
    if unknown:
        raise ValueError(
            f"builder=network cannot express the layer type(s) {', '.join(unknown)} (it knows "
            f"{', '.join(sorted(SUPPORTED_LAYERS))}); export with builder=onnx instead"
        )


def network_populate(
    model: nn.Module,
    *,
    imgsz: Sequence[int],
    batch: int,
    profile: Sequence[Sequence[int]] | None,
    half: bool,
    fp32_io: bool,
    nms=None,
) -> Callable[[ModuleType, Any], Any]:
    """The `BuildOptions.populate` callback that adds `model` to the network build_plan creates.

    With a profile (dynamic=True) batch, height and width are dynamic, as on the ONNX route; the anchor
    grid then covers the profile's largest size. `nms` (`export.nms.NmsSettings`) puts NMS in the engine.
    """
    return functools.partial(
        populate_network,
        model=model,
        imgsz=(int(imgsz[0]), int(imgsz[1])),
        batch=int(batch),
        dynamic=profile is not None,
        max_imgsz=(int(profile[2][2]), int(profile[2][3])) if profile is not None else None,
        half=bool(half),
        fp32_io=bool(fp32_io),
        nms=nms,
    )
