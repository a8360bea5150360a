"""Optimization-profile shapes for dynamic engines.

Default (upstream's rule): min (1, C, 32, 32), opt = the export shape (batch, C, H, W),
max (batch, C, 2H, 2W). `min_shape` / `opt_shape` / `max_shape` override any of the three.
Only dimensions that are dynamic (-1) in the parsed network take values from the profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

MIN_SIDE = 32  # the smallest image a stride-32 detector accepts


def default_profile(batch: int, channels: int, imgsz: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Upstream's profile: any batch up to `batch`, any size from 32x32 to twice the export size."""
    h, w = int(imgsz[0]), int(imgsz[1])
    return (1, channels, MIN_SIDE, MIN_SIDE), (batch, channels, h, w), (batch, channels, 2 * h, 2 * w)


def _as_shape(value, key: str, channels: int) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace("(", "").replace(")", "").replace("[", "").replace("]", "").split(",") if v]
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{key}={value!r} is not a shape: give four integers [batch, channels, height, width]"
        ) from None
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"{key}={list(shape)} must be four positive integers [batch, channels, height, width]")
    if shape[1] != channels:
        raise ValueError(f"{key}={list(shape)} has {shape[1]} channels but the model takes {channels}")
    if shape[2] % MIN_SIDE or shape[3] % MIN_SIDE:
        raise ValueError(f"{key}={list(shape)}: height and width must be multiples of the stride {MIN_SIDE}")
    return shape


def resolve_profile(
    batch: int,
    channels: int,
    imgsz: Sequence[int],
    min_shape=None,
    opt_shape=None,
    max_shape=None,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The (min, opt, max) shapes: upstream's defaults with the user's overrides, checked min <= opt <= max."""
    shapes = list(default_profile(batch, channels, imgsz))
    for i, (key, value) in enumerate((("min_shape", min_shape), ("opt_shape", opt_shape), ("max_shape", max_shape))):
        if value is not None:
            shapes[i] = _as_shape(value, key, channels)
    lo, opt, hi = shapes
    if any(not (a <= b <= c) for a, b, c in zip(lo, opt, hi)):
        raise ValueError(
            f"dynamic shapes must satisfy min_shape <= opt_shape <= max_shape in every dimension; "
            f"got min {list(lo)}, opt {list(opt)}, max {list(hi)}"
        )
    return tuple(lo), tuple(opt), tuple(hi)


def fill_dynamic(network_shape: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """Take `shape`'s value only where the network's dimension is dynamic (-1); keep fixed ones."""
    return tuple(int(s) if int(d) < 0 else int(d) for d, s in zip(network_shape, shape))


def add_profile(trt: ModuleType, builder, config, network, shapes: Sequence[Sequence[int]], log_tail=None):
    """Add (and return) one optimization profile covering every dynamic network input.

    `add_optimization_profile` returns the profile's index, or -1 when TensorRT rejects it (C++ API
    `IBuilderConfig::addOptimizationProfile`); the build would then fail later with a vaguer message.
    """
    profile = _make_profile(trt, builder, network, shapes)
    if config.add_optimization_profile(profile) < 0:
        lo, opt, hi = (list(s) for s in shapes)
        log = f"\nTensorRT log:\n{log_tail()}" if log_tail is not None else ""
        raise ValueError(
            f"TensorRT rejected the optimization profile min {lo}, opt {opt}, max {hi}: check that "
            f"min_shape <= opt_shape <= max_shape and that they fit the model's input.{log}"
        )
    return profile


def set_calibration_profile(trt: ModuleType, builder, config, network, shape: Sequence[int], log_tail=None):
    """Give INT8 calibration its own profile, min = opt = max = the calibration batch shape.

    TensorRT reads every calibration batch at the calibration profile's *opt* shape, batch included,
    whatever `get_batch_size()` returns (developer guide, "INT8 Calibration with Dynamic Shapes";
    `IBuilderConfig.set_calibration_profile`); without one it uses the first profile's opt shape,
    which need not be the shape of the batches we feed.
    """
    if not hasattr(trt.IBuilderConfig, "set_calibration_profile"):
        return None
    profile = _make_profile(trt, builder, network, (shape, shape, shape))
    if not config.set_calibration_profile(profile):
        log = f"\nTensorRT log:\n{log_tail()}" if log_tail is not None else ""
        raise ValueError(f"TensorRT rejected the INT8 calibration profile {list(shape)}{log}")
    return profile


def _make_profile(trt: ModuleType, builder, network, shapes: Sequence[Sequence[int]]):
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = tuple(tensor.shape)
        lo, opt, hi = (fill_dynamic(dims, s) for s in shapes)
        # Dims(list) is the one spelling every version accepts (8.6 has no tuple overload).
        profile.set_shape(tensor.name, trt.Dims(list(lo)), trt.Dims(list(opt)), trt.Dims(list(hi)))
    return profile
