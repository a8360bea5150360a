"""Network → serialized TensorRT plan: fill the network, configure, build, with failures that say why.

The network comes from one of two routes: TensorRT's ONNX parser (the default), or a `populate`
callback that adds the layers itself through the network definition API (`builder="network"`).
Everything after the network exists (builder config, precision, profile, timing cache) is shared.
The parser's errors are all listed (not just the first), and a build that returns `None` raises
with the TensorRT log tail, since that is the only place TensorRT says what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ultralytics.trt.config import TimingCacheFile, set_optimization_level, set_verbosity, set_workspace
from ultralytics.trt.logger import process_logger
from ultralytics.trt.network import network_flags
from ultralytics.trt.precision import dtype_name, enable_fp16
from ultralytics.trt.profile import add_profile, set_calibration_profile
from ultralytics.trt.progress import attach_progress


@dataclass
class BuildOptions:
    """Everything the builder needs besides the ONNX file (or instead of it, with `populate`)."""

    fp16: bool = False  # set BuilderFlag.FP16 where it exists (<= 10.x)
    profile: Sequence[Sequence[int]] | None = None  # (min, opt, max) for dynamic inputs
    workspace: float | None = None  # GiB; None = TensorRT's default
    opt_level: int | None = None
    timing_cache: Path | None = None
    verbose: bool = False
    # Extra configuration (INT8): called as configure(trt, builder, network, config, profile) before the build.
    configure: Callable | None = None
    # INT8 calibration of a dynamic network: the calibration batch shape (B, C, H, W). TensorRT reads each
    # calibration batch at the calibration profile's opt shape, so it gets a profile of its own, min = opt = max.
    calibration_shape: Sequence[int] | None = None
    keep_alive: object = None  # objects TensorRT only points to (a calibrator) must outlive the build
    # The network-definition route: called as populate(trt, network) instead of the ONNX parser. What it
    # returns (the weight arrays TensorRT only references) is kept alive until the build returns.
    populate: Callable[[ModuleType, Any], Any] | None = None


@dataclass
class BuiltEngine:
    """A serialized plan plus what the network looked like, for the engine's metadata."""

    plan: bytes
    inputs: dict[str, str] = field(default_factory=dict)  # name -> dtype name
    outputs: dict[str, str] = field(default_factory=dict)
    dynamic: bool = False


def parse_onnx(parser, onnx_path: Path) -> None:
    """Parse the ONNX file; raise with every parser error when it fails."""
    # parse_from_file resolves external weight files next to the model, unlike parse(bytes).
    if parser.parse_from_file(str(onnx_path)):
        return
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or ["(the parser reported no details)"]
    listing = "\n".join(f"  {i + 1}. {e}" for i, e in enumerate(errors))
    raise RuntimeError(
        f"TensorRT's ONNX parser could not read {onnx_path} ({len(errors)} error(s)):\n{listing}\n"
        "Try a different opset=, simplify=True, or a newer TensorRT."
    )


def network_io(trt: ModuleType, network) -> tuple[dict[str, str], dict[str, str], bool]:
    """(inputs, outputs, dynamic) of a parsed network; dynamic when any input dimension is -1."""
    inputs, outputs, dynamic = {}, {}, False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        inputs[tensor.name] = dtype_name(trt, tensor.dtype)
        dynamic = dynamic or any(int(d) < 0 for d in tuple(tensor.shape))
    for i in range(network.num_outputs):
        tensor = network.get_output(i)
        outputs[tensor.name] = dtype_name(trt, tensor.dtype)
    return inputs, outputs, dynamic


def build_plan(trt: ModuleType, onnx_path: Path | None, options: BuildOptions) -> BuiltEngine:
    """Build a serialized engine on the current CUDA device from an ONNX file, or, when
    `options.populate` is set, from the layers it adds (`onnx_path` is then None)."""
    if (onnx_path is None) == (options.populate is None):
        raise ValueError("build_plan needs exactly one network source: an ONNX file or options.populate")
    logger = process_logger(trt)
    with logger.operation(options.verbose) as log:
        plan, inputs, outputs, dynamic, source = _build(trt, logger, onnx_path, options, log)
    return BuiltEngine(plan=plan, inputs=inputs, outputs=outputs, dynamic=dynamic)


def _build(trt: ModuleType, logger, onnx_path: Path | None, options: BuildOptions, log):
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    if options.populate is not None:
        source = "the network definition (builder='network')"
        weights_in_use = options.populate(trt, network)  # TensorRT reads these arrays during the build
    else:
        source = str(onnx_path)
        parser = trt.OnnxParser(network, logger)
        parse_onnx(parser, Path(onnx_path))
        weights_in_use = parser
    inputs, outputs, dynamic = network_io(trt, network)

    config = builder.create_builder_config()
    set_workspace(trt, config, options.workspace)
    set_optimization_level(config, options.opt_level)
    set_verbosity(trt, config, options.verbose)
    if options.fp16:
        enable_fp16(trt, config)
    profile = None
    if dynamic:
        if options.profile is None:
            raise ValueError(f"{source} has dynamic inputs; an optimization profile (min/opt/max shapes) is required")
        profile = add_profile(trt, builder, config, network, options.profile, log.tail)
        if options.calibration_shape is not None:
            set_calibration_profile(trt, builder, config, network, options.calibration_shape, log.tail)
    if options.configure is not None:
        options.configure(trt, builder, network, config, profile)
    timing = TimingCacheFile(options.timing_cache)
    timing.attach(config, log)
    progress = attach_progress(trt, config, source)

    try:
        plan = builder.build_serialized_network(network, config)
    finally:
        progress.close()
    del weights_in_use  # only now may the weight arrays go
    if plan is None:
        raise RuntimeError(
            f"TensorRT failed to build an engine from {source} (build_serialized_network returned None).\n"
            f"TensorRT log (this build's last messages):\n{log.tail()}"
        )
    timing.save()
    return bytes(memoryview(plan)), inputs, outputs, dynamic, source
