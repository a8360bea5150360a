"""The `builder="network"` export route: what it can build, its optimization profile, its populate callback.

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

from ultralytics.trt.network_builder import SUPPORTED_LAYERS, populate_network
from ultralytics.trt.profile import resolve_profile

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


def batch_only_profile(
    batch: int,
    channels: int,
    imgsz: Sequence[int],
    min_shape=None,
    opt_shape=None,
    max_shape=None,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes where only the batch varies: the anchor grid fixes height and width.

    The batch limits follow the ONNX route's rule (1 .. `batch`, or the user's shapes); a user shape
    with another height or width is an error rather than something silently replaced.
    """
    h, w = int(imgsz[0]), int(imgsz[1])
    shapes = resolve_profile(batch, channels, (h, w), min_shape, opt_shape, max_shape)
    given = (("min_shape", min_shape), ("opt_shape", opt_shape), ("max_shape", max_shape))
    for (key, value), shape in zip(given, shapes):
        if value is not None and tuple(shape[2:]) != (h, w):
            raise ValueError(
                f"{key}={list(shape)}: builder=network fixes the image size at imgsz={[h, w]} (the anchor grid is "
                f"built into the network), so only the batch may vary. Give height and width {h}, {w}, or export "
                "with builder=onnx for dynamic image sizes."
            )
    lo, opt, hi = ((int(s[0]), channels, h, w) for s in shapes)
    return lo, opt, hi


def network_populate(
    model: nn.Module, *, imgsz: Sequence[int], batch: int, dynamic: bool, half: bool, fp32_io: bool
) -> Callable[[ModuleType, Any], Any]:
    """The `BuildOptions.populate` callback that adds `model` to the network build_plan creates."""
    return functools.partial(
        populate_network,
        model=model,
        imgsz=(int(imgsz[0]), int(imgsz[1])),
        batch=int(batch),
        dynamic=bool(dynamic),
        half=bool(half),
        fp32_io=bool(fp32_io),
    )
