"""Builder, IBuilderConfig, IOptimizationProfile, ITimingCache and the INT8 calibration protocol."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import plan
from .common import TRT_TO_NUMPY, BitFlags, dims_list, log, settable
from .core import make_host_memory
from .memory import AddressError, allocation_size, read_tensor
from .process import adopt_logger
from .sessions import load_error

_TIMING_CACHE_MAGIC = b"TRT-STANDIN-TIMING-CACHE\x00"


class Builder:
    def __init__(self, logger):
        self._logger = adopt_logger(type(self)._ctx, logger, "createInferBuilder")
        self._max_batch_size = 1
        self._max_threads = 1

    @property
    def logger(self):
        return self._logger

    @property
    def platform_has_fast_fp16(self):
        return True

    @property
    def platform_has_fast_int8(self):
        return True

    @property
    def platform_has_tf32(self):
        return True

    @property
    def num_DLA_cores(self):  # noqa: N802 - recorded name
        return 0

    @property
    def max_DLA_batch_size(self):  # noqa: N802 - recorded name
        return 1

    max_batch_size = settable("_max_batch_size", int)

    max_threads = settable("_max_threads", int)

    def create_network(self, flags=0):
        return type(self)._ctx.new("INetworkDefinition", self, int(flags))

    def create_builder_config(self):
        return type(self)._ctx.new("IBuilderConfig", self._logger)

    def create_optimization_profile(self):
        return type(self)._ctx.new("IOptimizationProfile")

    def is_network_supported(self, network, config):
        return True

    def reset(self):
        pass

    def __del__(self):
        pass

    def build_serialized_network(self, network, config):
        """Validate like TensorRT, run calibration if asked, then return the plan or None (+ ERROR log)."""
        monitor = config._progress_monitor
        # IProgressMonitor protocol (NVIDIA API reference "IProgressMonitor"): a top-level phase has parent None.
        if monitor is not None:
            monitor.phase_start("Building engine", None, 1)
        try:
            data = _build_plan(self, network, config)
        except _BuildError as e:
            log(self._logger, "ERROR", str(e))
            return None
        finally:
            if monitor is not None:
                monitor.step_complete("Building engine", 0)
                monitor.phase_finish("Building engine")
        return make_host_memory(type(self)._ctx, data)

    def build_engine(self, network, config):
        serialized = self.build_serialized_network(network, config)
        if serialized is None:
            return None
        runtime = type(self)._ctx.classes["Runtime"](self._logger)
        return runtime.deserialize_cuda_engine(serialized)


class IOptimizationProfile:
    def _setup(self):
        self._shapes: dict[str, tuple[list[int], list[int], list[int]]] = {}
        self._problems: list[str] = []
        self._extra_memory_target = 1.0

    def set_shape(self, input, min, opt, max):  # noqa: A002 - recorded parameter names
        shapes = (dims_list(min), dims_list(opt), dims_list(max))
        # https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/work-with-dynamic-shapes.html
        # every dimension must satisfy 0 <= min <= opt <= max, with equal ranks.
        if len({len(s) for s in shapes}) != 1:
            self._problems.append(f"input {input!r}: min/opt/max have different ranks {shapes}")
        elif not all(0 <= a <= b <= c for a, b, c in zip(*shapes)):
            self._problems.append(f"input {input!r}: need 0 <= min <= opt <= max in every dimension, got {shapes}")
        self._shapes[str(input)] = shapes

    def get_shape(self, input):  # noqa: A002
        ctx = type(self)._ctx
        if input not in self._shapes:
            return []
        return [ctx.new("Dims", s) for s in self._shapes[input]]

    def set_shape_input(self, input, min, opt, max):  # noqa: A002
        self._problems.append(f"shape-tensor input {input!r}: shape tensors are not modelled by the stand-in")

    def __bool__(self):
        return not self._problems

    def __nonzero__(self):
        return not self._problems

    extra_memory_target = settable("_extra_memory_target", float)


class ITimingCache:
    """Our own timing-cache format: one entry per (op type, precision) the builder 'timed'."""

    def _setup(self, entries: dict | None = None):
        self._entries: dict[str, int] = dict(entries or {})

    def serialize(self):
        ctx = type(self)._ctx
        body = json.dumps(self._entries, sort_keys=True).encode()
        return make_host_memory(ctx, _TIMING_CACHE_MAGIC + ctx.version.encode() + b"\x00" + body)

    def combine(self, input_cache, ignore_mismatch):
        self._entries.update(input_cache._entries)
        return True

    def reset(self):
        self._entries.clear()
        return True


class IBuilderConfig(BitFlags):
    def _setup(self, logger=None):
        ctx = type(self)._ctx
        self._logger = logger
        self._progress_monitor = None
        self._flags = 0
        self._pool_limits: dict[int, int] = {}
        self._profiles: list = []
        self._calibration_profile = None
        self._int8_calibrator = None
        self._timing_cache = None
        self._optimization_level = 3
        self._profiling_verbosity = ctx.classes["ProfilingVerbosity"].LAYER_NAMES_ONLY
        self._avg_timing_iterations = 1
        self._quantization_flags = 0
        self._tactic_sources = 0xFFFF
        self._preview: dict[int, bool] = {}
        self._device_type = ctx.classes["DeviceType"].GPU
        self._engine_capability = ctx.classes["EngineCapability"].STANDARD
        self._hardware_compatibility_level = ctx.classes["HardwareCompatibilityLevel"].NONE

    def set_quantization_flag(self, flag):
        self._quantization_flags |= 1 << int(flag)

    def clear_quantization_flag(self, flag):
        self._quantization_flags &= ~(1 << int(flag))

    def get_quantization_flag(self, flag):
        return bool(self._quantization_flags & (1 << int(flag)))

    quantization_flags = settable("_quantization_flags", int)

    def set_preview_feature(self, feature, enable):
        self._preview[int(feature)] = bool(enable)

    def get_preview_feature(self, feature):
        return self._preview.get(int(feature), False)

    def set_tactic_sources(self, tactic_sources):
        self._tactic_sources = int(tactic_sources)
        return True

    def get_tactic_sources(self):
        return self._tactic_sources

    # memory
    def set_memory_pool_limit(self, pool, pool_size):
        if int(pool_size) < 0:
            raise ValueError(f"memory pool size must be >= 0, got {pool_size}")
        self._pool_limits[int(pool)] = int(pool_size)

    def get_memory_pool_limit(self, pool):
        # Default for WORKSPACE is the device's total memory in TensorRT; we report 80 GiB.
        return self._pool_limits.get(int(pool), 80 << 30 if int(pool) == 0 else 0)

    @property
    def max_workspace_size(self):
        return self.get_memory_pool_limit(type(self)._ctx.classes["MemoryPoolType"].WORKSPACE)

    @max_workspace_size.setter
    def max_workspace_size(self, value):
        self._pool_limits[0] = int(value)

    # profiles
    def add_optimization_profile(self, profile):
        if not bool(profile):
            return -1  # an invalid profile is rejected (the C++ API returns -1)
        self._profiles.append(profile)
        return len(self._profiles) - 1

    @property
    def num_optimization_profiles(self):
        return len(self._profiles)

    def set_calibration_profile(self, profile):
        if profile is not None and not bool(profile):
            return False
        self._calibration_profile = profile
        return True

    def get_calibration_profile(self):
        return self._calibration_profile

    int8_calibrator = settable("_int8_calibrator")

    # timing cache
    def create_timing_cache(self, serialized_timing_cache):
        """A cache from these bytes; bytes from another version (or not a cache) are logged and ignored.

        Models the developer guide's "Timing Cache" section: a cache made by another TensorRT version or
        device is reported as an error and the builder continues with an empty cache; nothing the caller
        can test on the returned object says so except that it holds no entries.
        """
        ctx = type(self)._ctx
        data = bytes(memoryview(serialized_timing_cache))
        entries: dict = {}
        if data:
            stamp = _TIMING_CACHE_MAGIC + ctx.version.encode() + b"\x00"
            try:
                if not data.startswith(stamp):
                    raise ValueError("made by another TensorRT version or device, or not a timing cache")
                entries = json.loads(data[len(stamp) :])
            except ValueError as e:
                log(
                    self._logger,
                    "ERROR",
                    f"Error Code 1: Serialization (Serialization assertion: timing cache {e}; "
                    "ignoring it and using an empty cache)",
                )
                entries = {}
        return ctx.new("ITimingCache", entries)

    def set_timing_cache(self, cache, ignore_mismatch):
        self._timing_cache = cache
        return True

    def get_timing_cache(self):
        return self._timing_cache

    # misc settings
    builder_optimization_level = settable("_optimization_level", int)

    profiling_verbosity = settable("_profiling_verbosity")

    avg_timing_iterations = settable("_avg_timing_iterations", int)

    default_device_type = settable("_device_type")

    engine_capability = settable("_engine_capability")

    hardware_compatibility_level = settable("_hardware_compatibility_level")

    def can_run_on_DLA(self, layer):  # noqa: N802 - recorded name
        return False

    def reset(self):
        self._setup(self._logger)

    progress_monitor = settable("_progress_monitor")


class _BuildError(Exception):
    pass


def _flag(ctx, name: str):
    return getattr(ctx.classes["BuilderFlag"], name, None)


def _resolve_profiles(network, config) -> list[dict[str, list[list[int]]]]:
    """Validate the profiles against the network's inputs; return [{input: [min, opt, max]}]."""
    dynamic = [t for t in network._inputs if any(d < 0 for d in t._shape)]
    for i, profile in enumerate(config._profiles):
        if profile._problems:
            raise _BuildError(f"optimization profile {i} is invalid: {'; '.join(profile._problems)}")
    if dynamic and not config._profiles:
        raise _BuildError(
            "Network has dynamic or shape inputs, but no optimization profile has been defined: add one with "
            "builder.create_optimization_profile(), profile.set_shape(name, min, opt, max), "
            "config.add_optimization_profile(profile)"
        )
    names = {t._name for t in network._inputs}
    resolved = []
    for i, profile in enumerate(config._profiles or [None]):
        shapes: dict[str, list[list[int]]] = {}
        extra = set(profile._shapes) - names if profile is not None else set()
        if extra:
            raise _BuildError(
                f"optimization profile {i} names {sorted(extra)}, which are not network inputs {sorted(names)}"
            )
        for tensor in network._inputs:
            if profile is not None and tensor._name in profile._shapes:
                lo, opt, hi = profile._shapes[tensor._name]
                if len(lo) != len(tensor._shape):
                    raise _BuildError(
                        f"optimization profile {i}: input {tensor._name!r} has rank {len(tensor._shape)} but the "
                        f"profile gives rank {len(lo)}"
                    )
                for axis, d in enumerate(tensor._shape):
                    if d >= 0 and not lo[axis] == opt[axis] == hi[axis] == d:
                        raise _BuildError(
                            f"optimization profile {i}: input {tensor._name!r} dimension {axis} is fixed at {d} "
                            f"in the network but the profile gives min/opt/max {lo[axis]}/{opt[axis]}/{hi[axis]}"
                        )
                shapes[tensor._name] = [lo, opt, hi]
            elif any(d < 0 for d in tensor._shape):
                raise _BuildError(
                    f"optimization profile {i} does not set a shape for dynamic input {tensor._name!r} "
                    f"(network shape {tuple(tensor._shape)})"
                )
            else:
                shapes[tensor._name] = [list(tensor._shape)] * 3
        resolved.append(shapes)
    return resolved


def _calibration_shapes(network, config, profiles) -> dict[str, list[int]]:
    """The shape TensorRT reads each calibration batch at, per input.

    https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/work-quantized-types.html
    ("INT8 Calibration with Dynamic Shapes"): a static network's batches have the network's input shape;
    a dynamic one's have the calibration profile's *opt* shape (the first profile's when none is set),
    batch dimension included. get_batch_size() changes nothing in either case.
    """
    if config._calibration_profile is not None and config._calibration_profile._shapes:
        return {name: list(shapes[1]) for name, shapes in config._calibration_profile._shapes.items()}
    return {name: list(shapes[1]) for name, shapes in profiles[0].items()}


def _calibrate(builder, network, config, profiles) -> dict[str, Any]:
    """Drive the calibrator as TensorRT does; return the calibration summary stored in the plan.

    Order (https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/work-quantized-types.html,
    "INT8 calibration using Python"): read_calibration_cache() first (a non-empty cache skips
    calibration), then get_batch_size() and get_batch(names) until it returns None, then
    write_calibration_cache(cache). Each batch is read at exactly the calibration shape: a buffer
    shorter than that is an error here, as the out-of-bounds read it causes on a GPU is (an illegal
    address that kills the CUDA context, or silently wrong scales).
    """
    calibrator = config._int8_calibrator
    names = [t._name for t in network._inputs]
    cache = calibrator.read_calibration_cache()
    if cache:
        return {"source": "cache", "batches": 0, "cache_bytes": len(bytes(memoryview(cache)))}
    calibrator.get_batch_size()  # called, as TensorRT does; it does not change what is read
    shapes = _calibration_shapes(network, config, profiles)
    abs_max: dict[str, float] = {}
    batches = 0
    while True:
        pointers = calibrator.get_batch(names)
        if not pointers:
            break
        if len(pointers) != len(names):
            raise _BuildError(f"calibrator get_batch returned {len(pointers)} pointers for {len(names)} inputs {names}")
        for tensor, pointer in zip(network._inputs, pointers):
            shape = shapes[tensor._name]
            dtype = np.dtype(TRT_TO_NUMPY[tensor.dtype.name])
            needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            available = allocation_size(int(pointer))
            if available is not None and available < needed:
                raise _BuildError(
                    f"INT8 calibration batch {batches} for input {tensor._name!r}: TensorRT reads {needed} bytes "
                    f"(shape {shape}, the calibration profile's opt shape or the static input shape) but the "
                    f"buffer holds {available}: an out-of-bounds read (illegal memory access on a GPU)"
                )
            try:
                array = read_tensor(int(pointer), shape, dtype)
            except AddressError as e:
                raise _BuildError(f"INT8 calibration batch {batches}: {e}") from e
            abs_max[tensor._name] = max(abs_max.get(tensor._name, 0.0), float(np.abs(array).max(initial=0.0)))
        batches += 1
    if batches == 0:
        raise _BuildError("INT8 calibration failed: the calibrator's first get_batch() returned no data")
    ctx = type(builder)._ctx
    algorithm = calibrator.get_algorithm() if hasattr(calibrator, "get_algorithm") else None
    header = f"TRT-STANDIN-{ctx.version}-{getattr(algorithm, 'name', 'ENTROPY_CALIBRATION_2')}"
    lines = [header] + [f"{name}: {np.float32(v / 127.0).view(np.uint32):08x}" for name, v in abs_max.items()]
    calibrator.write_calibration_cache(("\n".join(lines) + "\n").encode())
    return {"source": "batches", "batches": batches, "abs_max": abs_max, "shapes": shapes}


def _build_plan(builder, network, config) -> bytes:
    ctx = type(builder)._ctx
    if not network._outputs:
        raise _BuildError("Network must have at least one output")
    profiles = _resolve_profiles(network, config)
    fp16 = _flag(ctx, "FP16")
    int8 = _flag(ctx, "INT8")
    use_fp16 = fp16 is not None and config.get_flag(fp16)
    use_int8 = int8 is not None and config.get_flag(int8)
    if network._strongly_typed and (use_fp16 or use_int8):
        # https://docs.nvidia.com/deeplearning/tensorrt/api/python_api/infer/Core/Builder.html (STRONGLY_TYPED:
        # types follow the network's inputs and type inference, not builder precision settings).
        log(builder._logger, "WARNING", "precision builder flags are ignored for a strongly typed network")
        use_fp16 = use_int8 = False
    calibration: dict[str, Any] | None = None
    if use_int8:
        if config._int8_calibrator is not None:
            calibration = _calibrate(builder, network, config, profiles)
        else:
            log(
                builder._logger,
                "WARNING",
                "INT8 requested without a calibrator or dynamic ranges; layers without scales run in higher precision",
            )
    if network._strongly_typed:
        _check_strong_types(network)
    for layer in network._layers:
        # The builder reports every layer at VERBOSE and a summary at INFO, as TensorRT's does; a Python
        # logger receives them all (filtering is the logger's job), which is what makes them costly.
        log(builder._logger, "VERBOSE", f"Builder: layer {layer._name} ({layer._layer_type_name})")
    log(builder._logger, "INFO", f"Builder: {len(network._layers)} layers, building the engine")
    try:
        model = network._assemble_model()
    except (ValueError, NotImplementedError, KeyError, IndexError, TypeError) as e:
        raise _BuildError(f"the network cannot be built: {e}") from e
    model_bytes = model.SerializeToString()
    error = load_error(model_bytes)
    if error is not None:
        raise _BuildError(f"the network cannot be built: {error}")
    precision = "fp16" if (use_fp16 or (use_int8 and use_fp16)) else "fp32"
    if config._timing_cache is not None and not config.get_flag(ctx.classes["BuilderFlag"].DISABLE_TIMING_CACHE):
        for node in model.graph.node:
            key = f"{node.op_type}:{precision}"
            config._timing_cache._entries[key] = config._timing_cache._entries.get(key, 0) + 1
    io = []
    for tensor in network._inputs:
        io.append({"name": tensor._name, "mode": "INPUT", "dtype": tensor.dtype.name, "shape": list(tensor._shape)})
    for tensor in network._outputs:
        shape = list(tensor._shape) if tensor._shape is not None else []
        io.append({"name": tensor._name, "mode": "OUTPUT", "dtype": tensor.dtype.name, "shape": shape})
    header = {
        "trt_version": ctx.version,
        "precision": precision,
        "int8": use_int8,
        "calibration": calibration,
        "strongly_typed": network._strongly_typed,
        "builder_flags": config._flags,
        "builder_optimization_level": config._optimization_level,
        "profiling_verbosity": config._profiling_verbosity.name,
        "profiles": profiles,
        "io": io,
        "network_name": network._name,
        "num_layers": len(network._layers),
    }
    return plan.pack(header, model_bytes)


# Layer types whose inputs must share one type in a strongly typed network.
_SAME_TYPE_LAYERS = {"ELEMENTWISE", "CONCATENATION", "MATRIX_MULTIPLY"}


def _check_strong_types(network) -> None:
    """Strongly typed networks (always on 11.x) do no implicit casts: an elementwise, concatenation or
    matrix-multiply layer whose inputs have different types is a build error.

    https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/advanced.html#strongly-typed-networks
    ("TensorRT ... does not insert casts; the types of the inputs of ... must match", the type-inference
    rules of the operator documentation). Comparisons (EQUAL/GREATER/LESS) still produce BOOL.
    """
    for layer in network._layers:
        if layer._layer_type_name not in _SAME_TYPE_LAYERS:
            continue
        if getattr(layer, "_onnx_node", None) is not None:
            continue  # parsed ONNX nodes: ONNX's own type constraints (checked by ONNX Runtime) already apply
        dtypes = {
            t.dtype.name
            for t in layer._inputs[: 2 if layer._layer_type_name != "CONCATENATION" else None]
            if t is not None
        }
        if len(dtypes) > 1:
            raise _BuildError(
                f"{layer._name}: in a strongly typed network the inputs of a {layer._layer_type_name} layer must "
                f"have one type, got {sorted(dtypes)}: add a Cast so they match"
            )


def _calibrator(algorithm: str) -> type:
    """Calibrator base classes: users override get_batch & co; get_algorithm names the algorithm."""

    def get_algorithm(self):
        return getattr(type(self)._ctx.classes["CalibrationAlgoType"], algorithm)

    return type(f"Calibrator_{algorithm}", (), {"get_algorithm": get_algorithm})


REGISTRY = {
    "IInt8EntropyCalibrator2": _calibrator("ENTROPY_CALIBRATION_2"),
    "IInt8EntropyCalibrator": _calibrator("ENTROPY_CALIBRATION"),
    "IInt8MinMaxCalibrator": _calibrator("MINMAX_CALIBRATION"),
    "IInt8LegacyCalibrator": _calibrator("LEGACY_CALIBRATION"),
    "Builder": Builder,
    "IBuilderConfig": IBuilderConfig,
    "IOptimizationProfile": IOptimizationProfile,
    "ITimingCache": ITimingCache,
}
