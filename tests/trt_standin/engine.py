"""Runtime, ICudaEngine and IExecutionContext: plans are run with ONNX Runtime on the CPU."""

from __future__ import annotations

import numpy as np
import onnx

from . import plan, precision
from .common import TRT_TO_NUMPY, dims_list, log, settable
from .core import make_host_memory
from .memory import AddressError, read_tensor, write_tensor
from .process import adopt_logger, current_device
from .sessions import session as _session

# Handles of CUDA's default streams: 0 (the legacy default stream, also cudaStreamLegacy = 1) and
# cudaStreamPerThread = 2 (CUDA runtime API, "Stream synchronization behavior").
_DEFAULT_STREAMS = (0, 1, 2)
DEFAULT_STREAM_WARNING = (
    "Using default stream in enqueueV3() may lead to performance issues due to additional calls to "
    "cudaStreamSynchronize() by TensorRT to ensure correct synchronization. Please use non-default stream instead."
)


class Runtime:
    def __init__(self, logger):
        self._logger = adopt_logger(type(self)._ctx, logger, "createInferRuntime")
        self._max_threads = 1

    @property
    def logger(self):
        return self._logger

    @property
    def num_DLA_cores(self):  # noqa: N802 - recorded name
        return 0

    max_threads = settable("_max_threads", int)

    def __del__(self):
        pass

    def deserialize_cuda_engine(self, serialized_engine):
        """The engine, or None with the reason logged at ERROR (as TensorRT does)."""
        ctx = type(self)._ctx
        try:
            data = bytes(memoryview(serialized_engine))
        except TypeError:
            log(self._logger, "ERROR", "deserialize_cuda_engine needs a bytes-like plan (bytes, IHostMemory)")
            return None
        try:
            header, model_bytes = plan.unpack(data)
        except plan.PlanError as e:
            log(self._logger, "ERROR", f"IRuntime::deserializeCudaEngine: Error Code 1: Serialization ({e})")
            return None
        if header["trt_version"] != ctx.version:
            log(
                self._logger,
                "ERROR",
                "IRuntime::deserializeCudaEngine: Error Code 6: API Usage Error (The engine plan file is not "
                f"compatible with this version of TensorRT, expecting library version {ctx.version} got "
                f"{header['trt_version']}, please rebuild.)",
            )
            return None
        return ctx.new("ICudaEngine", header, model_bytes, data, self._logger, current_device())


class ICudaEngine:
    def _setup(self, header: dict, model_bytes: bytes, plan_bytes: bytes, logger, device: int = 0):
        self._device = device  # the CUDA device current at deserialization: the engine lives there
        self._header = header
        self._model_bytes = model_bytes
        self._plan_bytes = plan_bytes
        self._logger = logger
        self._io = header["io"]
        self._by_name = {entry["name"]: i for i, entry in enumerate(self._io)}
        self._exec_bytes: bytes | None = None
        self._shape_cache: dict[tuple, dict[str, list[int]]] = {}

    # -- stand-in internals ---------------------------------------------------------------------
    def _entry(self, name):
        index = self._by_name.get(name)
        if index is None:
            log(
                self._logger,
                "ERROR",
                f"ICudaEngine: {name!r} is not an I/O tensor name of this engine (names: {list(self._by_name)})",
            )
            return None
        return self._io[index]

    def _index_entry(self, index):
        if not 0 <= index < len(self._io):
            log(self._logger, "ERROR", f"ICudaEngine: index {index} out of range [0, {len(self._io)})")
            return None
        return self._io[index]

    def _dims(self, values):
        return type(self)._ctx.new("Dims", values)

    def _executable(self) -> bytes:
        if self._exec_bytes is None:
            self._exec_bytes = precision.prepare(self._model_bytes, self._header["precision"])
        return self._exec_bytes

    def _output_shapes(self, input_shapes: dict[str, list[int]]) -> dict[str, list[int]]:
        """Output shapes for concrete input shapes: ONNX shape inference, else a run on zeros."""
        key = tuple((n, tuple(s)) for n, s in sorted(input_shapes.items()))
        if key in self._shape_cache:
            return self._shape_cache[key]
        outputs = [e for e in self._io if e["mode"] == "OUTPUT"]
        shapes: dict[str, list[int]] = {}
        if all(all(d >= 0 for d in e["shape"]) and e["shape"] for e in outputs):
            shapes = {e["name"]: list(e["shape"]) for e in outputs}
        else:
            model = onnx.load_from_string(self._model_bytes)
            for vi in model.graph.input:
                if vi.name in input_shapes:
                    for dim, value in zip(vi.type.tensor_type.shape.dim, input_shapes[vi.name]):
                        dim.Clear()
                        dim.dim_value = value
            try:
                inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
                for vi in inferred.graph.output:
                    dims = vi.type.tensor_type.shape.dim
                    if (
                        dims
                        and all(d.HasField("dim_value") for d in dims)
                        or (vi.type.tensor_type.HasField("shape") and not dims)
                    ):
                        shapes[vi.name] = [d.dim_value for d in dims]
            except Exception:
                shapes = {}
            if len(shapes) != len(outputs):
                feeds = {
                    e["name"]: np.zeros(input_shapes[e["name"]], TRT_TO_NUMPY[e["dtype"]])
                    for e in self._io
                    if e["mode"] == "INPUT"
                }
                results = _session(self._executable()).run([e["name"] for e in outputs], feeds)
                shapes = {e["name"]: list(r.shape) for e, r in zip(outputs, results)}
        self._shape_cache[key] = shapes
        return shapes

    # -- tensor API -----------------------------------------------------------------------------
    @property
    def num_io_tensors(self):
        return len(self._io)

    def get_tensor_name(self, index):
        entry = self._index_entry(index)
        return entry["name"] if entry else None

    def get_tensor_mode(self, name):
        modes = type(self)._ctx.classes["TensorIOMode"]
        entry = self._entry(name)
        return getattr(modes, entry["mode"]) if entry else modes.NONE

    def get_tensor_dtype(self, name):
        entry = self._entry(name)
        data_type = type(self)._ctx.classes["DataType"]
        return getattr(data_type, entry["dtype"]) if entry else data_type.FLOAT

    def get_tensor_shape(self, name):
        entry = self._entry(name)
        return self._dims(entry["shape"] if entry else [])

    def get_tensor_location(self, name):
        return type(self)._ctx.classes["TensorLocation"].DEVICE

    def get_tensor_format(self, name, profile_index=0):
        return type(self)._ctx.classes["TensorFormat"].LINEAR

    def get_tensor_format_desc(self, name, profile_index=0):
        return "Row major linear format"

    def get_tensor_vectorized_dim(self, name, profile_index=0):
        return -1

    def get_tensor_components_per_element(self, name, profile_index=0):
        return 1

    def get_tensor_bytes_per_component(self, name, profile_index=0):
        entry = self._entry(name)
        return np.dtype(TRT_TO_NUMPY[entry["dtype"]]).itemsize if entry else -1

    def is_shape_inference_io(self, name):
        return False

    def get_tensor_profile_shape(self, name, profile_index):
        entry = self._entry(name)
        profiles = self._header["profiles"]
        if entry is None or entry["mode"] != "INPUT" or not 0 <= profile_index < len(profiles):
            log(
                self._logger,
                "ERROR",
                f"get_tensor_profile_shape: {name!r} is not an input or profile "
                f"{profile_index} does not exist ({len(profiles)} profiles)",
            )
            return []
        return [self._dims(s) for s in profiles[profile_index][name]]

    @property
    def num_optimization_profiles(self):
        return len(self._header["profiles"])

    @property
    def num_layers(self):
        return self._header["num_layers"]

    @property
    def name(self):
        return self._header["network_name"]

    @property
    def has_implicit_batch_dimension(self):
        return False

    @property
    def refittable(self):
        return False

    @property
    def device_memory_size(self):
        return 0

    @property
    def device_memory_size_v2(self):
        return 0

    @property
    def num_aux_streams(self):
        return 0

    @property
    def profiling_verbosity(self):
        return getattr(type(self)._ctx.classes["ProfilingVerbosity"], self._header["profiling_verbosity"])

    @property
    def engine_capability(self):
        return type(self)._ctx.classes["EngineCapability"].STANDARD

    @property
    def hardware_compatibility_level(self):
        return type(self)._ctx.classes["HardwareCompatibilityLevel"].NONE

    def serialize(self):
        return make_host_memory(type(self)._ctx, self._plan_bytes)

    def create_execution_context(self, strategy=None):
        return type(self)._ctx.new("IExecutionContext", self)

    def create_execution_context_without_device_memory(self):
        return type(self)._ctx.new("IExecutionContext", self)

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._by_name.get(key, -1)
        entry = self._index_entry(key)
        return entry["name"] if entry else None

    def __len__(self):
        return len(self._io)

    def __del__(self):
        pass

    # -- 8.6 binding API (binding index == I/O tensor index) ------------------------------------
    def _binding(self, binding):
        return self._entry(binding) if isinstance(binding, str) else self._index_entry(binding)

    @property
    def num_bindings(self):
        return len(self._io)

    @property
    def max_batch_size(self):
        return 1

    def binding_is_input(self, index):
        entry = self._binding(index)
        return bool(entry and entry["mode"] == "INPUT")

    def get_binding_name(self, index):
        entry = self._binding(index)
        return entry["name"] if entry else None

    def get_binding_index(self, name):
        return self._by_name.get(name, -1)

    def get_binding_shape(self, index):
        entry = self._binding(index)
        return self._dims(entry["shape"] if entry else [])

    def get_binding_dtype(self, index):
        entry = self._binding(index)
        return getattr(type(self)._ctx.classes["DataType"], entry["dtype"] if entry else "FLOAT")

    def get_profile_shape(self, profile_index, binding):
        name = binding if isinstance(binding, str) else self.get_binding_name(binding)
        return self.get_tensor_profile_shape(name, profile_index)

    def is_execution_binding(self, index):
        return True

    def is_shape_binding(self, index):
        return False

    def get_location(self, index):
        return type(self)._ctx.classes["TensorLocation"].DEVICE


class IExecutionContext:
    def _setup(self, engine):
        self._engine = engine
        self._logger = engine._logger
        self._profile = 0
        self._input_shapes: dict[str, list[int]] = {}
        self._addresses: dict[str, int] = {}
        self._name = ""
        self._debug_sync = False
        for entry in engine._io:
            if entry["mode"] == "INPUT" and all(d >= 0 for d in entry["shape"]):
                self._input_shapes[entry["name"]] = list(entry["shape"])

    def _dims(self, values):
        return type(self)._ctx.new("Dims", values)

    @property
    def engine(self):
        return self._engine

    name = settable("_name", str)

    debug_sync = settable("_debug_sync", bool)

    @property
    def active_optimization_profile(self):
        return self._profile

    @active_optimization_profile.setter
    def active_optimization_profile(self, value):
        self.set_optimization_profile_async(value, 0)

    def set_optimization_profile_async(self, profile_index, stream_handle):
        if not 0 <= profile_index < self._engine.num_optimization_profiles:
            log(self._logger, "ERROR", f"set_optimization_profile_async: profile {profile_index} does not exist")
            return False
        self._profile = int(profile_index)
        return True

    def set_input_shape(self, name, shape):
        """False (with an ERROR log) unless `shape` lies inside the active profile, as in TensorRT."""
        entry = self._engine._by_name.get(name)
        if entry is None or self._engine._io[entry]["mode"] != "INPUT":
            log(self._logger, "ERROR", f"setInputShape: {name!r} is not an input tensor of this engine")
            return False
        shape = dims_list(shape)
        lo, _, hi = self._engine._header["profiles"][self._profile][name]
        if len(shape) != len(lo) or not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
            log(
                self._logger,
                "ERROR",
                f"IExecutionContext::setInputShape: Error Code 3: API Usage Error (Parameter check failed, "
                f"condition: satisfyProfile. Set dimension {tuple(shape)} for tensor {name} does not satisfy "
                f"any optimization profiles: min {tuple(lo)} max {tuple(hi)} in profile {self._profile})",
            )
            return False
        self._input_shapes[name] = shape
        return True

    def _missing_inputs(self) -> list[str]:
        return [e["name"] for e in self._engine._io if e["mode"] == "INPUT" and e["name"] not in self._input_shapes]

    @property
    def all_binding_shapes_specified(self):
        return not self._missing_inputs()

    @property
    def all_shape_inputs_specified(self):
        return True

    def infer_shapes(self):
        return self._missing_inputs()

    def get_tensor_shape(self, name):
        engine = self._engine
        entry = engine._entry(name)
        if entry is None:
            return self._dims([])
        if entry["mode"] == "INPUT":
            return self._dims(self._input_shapes.get(name, entry["shape"]))
        if self._missing_inputs():
            return self._dims(entry["shape"])
        return self._dims(engine._output_shapes(self._input_shapes)[name])

    def set_tensor_address(self, name, memory):
        if name not in self._engine._by_name:
            log(self._logger, "ERROR", f"setTensorAddress: {name!r} is not an I/O tensor of this engine")
            return False
        self._addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name):
        return self._addresses.get(name, 0)

    def get_tensor_strides(self, name):
        shape = list(self.get_tensor_shape(name))
        strides, step = [], 1
        for d in reversed(shape):
            strides.insert(0, step)
            step *= max(d, 1)
        return self._dims(strides)

    def execute_async_v3(self, stream_handle):
        if int(stream_handle) in _DEFAULT_STREAMS:
            # TensorRT's own warning (developer guide, "Streams"; NVIDIA/TensorRT issues on enqueueV3 with
            # stream 0): the default stream makes it add cudaStreamSynchronize calls.
            log(self._logger, "WARNING", DEFAULT_STREAM_WARNING)
        return self._execute(dict(self._addresses), int(stream_handle))

    def execute_v2(self, bindings):
        names = [e["name"] for e in self._engine._io]
        if len(bindings) != len(names):
            log(self._logger, "ERROR", f"execute_v2: expected {len(names)} bindings ({names}), got {len(bindings)}")
            return False
        return self._execute({n: int(b) for n, b in zip(names, bindings)}, 0)

    def execute_async_v2(self, bindings, stream_handle):
        names = [e["name"] for e in self._engine._io]
        if len(bindings) != len(names):
            log(self._logger, "ERROR", f"execute_async_v2: expected {len(names)} bindings, got {len(bindings)}")
            return False
        if int(stream_handle) in _DEFAULT_STREAMS:
            log(self._logger, "WARNING", DEFAULT_STREAM_WARNING.replace("enqueueV3", "enqueueV2"))
        return self._execute({n: int(b) for n, b in zip(names, bindings)}, int(stream_handle))

    def set_binding_shape(self, binding, shape):
        name = self._engine.get_binding_name(binding)
        return False if name is None else self.set_input_shape(name, shape)

    def get_binding_shape(self, binding):
        name = self._engine.get_binding_name(binding)
        return self._dims([]) if name is None else self.get_tensor_shape(name)

    def __del__(self):
        pass

    def _execute(self, addresses: dict[str, int], stream: int) -> bool:
        engine = self._engine
        device = current_device()
        if device != engine._device:
            # The engine's memory and kernels belong to the device it was deserialized on; enqueueing
            # with another device current fails in CUDA (ultralytics issue 21300: cuda:1 → "invalid
            # resource handle"). TensorRT reports the CUDA error and the enqueue returns False.
            log(
                self._logger,
                "ERROR",
                f"IExecutionContext::enqueueV3: Error Code 1: Cuda Runtime (invalid resource handle): the engine "
                f"was deserialized on device {engine._device} but device {device} is current",
            )
            return False
        missing = self._missing_inputs()
        if missing:
            log(self._logger, "ERROR", f"enqueue: input shapes not set for {missing}; call set_input_shape first")
            return False
        absent = [e["name"] for e in engine._io if not addresses.get(e["name"])]
        if absent:
            log(self._logger, "ERROR", f"enqueue: no address set for tensors {absent}; call set_tensor_address")
            return False
        try:
            feeds = {}
            for entry in engine._io:
                if entry["mode"] == "INPUT":
                    name = entry["name"]
                    feeds[name] = read_tensor(
                        addresses[name], self._input_shapes[name], TRT_TO_NUMPY[entry["dtype"]], stream
                    )
            outputs = [e for e in engine._io if e["mode"] == "OUTPUT"]
            results = _session(engine._executable()).run([e["name"] for e in outputs], feeds)
            for entry, result in zip(outputs, results):
                write_tensor(addresses[entry["name"]], result.astype(TRT_TO_NUMPY[entry["dtype"]], copy=False), stream)
        except AddressError as e:
            log(self._logger, "ERROR", f"enqueue: {e}")
            return False
        return True


REGISTRY = {"Runtime": Runtime, "ICudaEngine": ICudaEngine, "IExecutionContext": IExecutionContext}
