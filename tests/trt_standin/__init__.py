"""A TensorRT stand-in for tests: `make_tensorrt_module(version)` returns a module to install as `tensorrt`.

The surface (classes, methods, properties, enum members with their values, module functions and
constants) is generated from the real bindings' recorded API in ../shared/trt_api/trt_api_<version>.json,
so `hasattr` capability checks behave as on that version; calls are checked against the recorded
pybind11 signatures (TypeError on a mismatch). Behaviour covers building and running ONNX-derived
engines: Logger, Builder, IBuilderConfig (flags, memory pools, optimization profiles, timing cache,
INT8 calibrator protocol on <= 10), OnnxParser, build_serialized_network, Runtime, ICudaEngine (tensor
API, 8.6 binding API), IExecutionContext (shapes, addresses, execute_async_v3 / execute_v2), and the
INetworkDefinition add_* layers a YOLOv8 network needs (layers.py). The network is kept as layers that
emit ONNX nodes (parsed nodes emit themselves); the "engine" runs that ONNX with ONNX Runtime (CPU),
reading inputs from and writing outputs to the raw addresses it was given (host memory; CUDA device
memory through cupy when a GPU is present). Plans are this package's own format (see plan.py).
Precision modelling is described in precision.py.

What real TensorRT does that the stand-in does not:
- kernel/tactic selection, layer fusion, timing (the timing cache only records op types), build time;
- real FP16/INT8/FP8 accuracy: FP16 is modelled as FP16 storage of weights and activations with FP32
  arithmetic; INT8 arithmetic is not modelled (calibration only records input ranges);
- DLA, GPU fallback, plugins (plugin registry, add_plugin*), refitting, weight streaming, engine
  inspector, version-compatible/lean runtimes, hardware compatibility levels, safety runtime;
- shape tensors (set_shape_input / set_input_shape on shape inputs), implicit-batch execution
  (execute/execute_async of 8.6), output allocators, profilers, debug tensors, CUDA graphs;
- streams: execution is synchronous (the stream is synchronized before inputs are read on GPU);
- memory limits (set_memory_pool_limit is recorded, never enforced) and device memory accounting;
- the ONNX parser's own op coverage: the stand-in accepts what ONNX Runtime's CPU provider can run,
  which is wider than TensorRT's importer for some ops and narrower for none we rely on.
Recorded members with no modelled behaviour raise NotImplementedError naming the member.
"""

from __future__ import annotations

import types

from . import builder, core, engine, layers, network, nms
from .surface import build_module


def make_tensorrt_module(version: str) -> types.ModuleType:
    """A fresh `tensorrt` stand-in module for `version` (one of the recorded trt_api versions)."""
    registry: dict = {}
    for part in (core, network, layers, nms, builder, engine):
        registry.update(part.REGISTRY)
    return build_module(version, registry, core.FUNCTIONS)


__all__ = ["make_tensorrt_module"]
