"""TensorRT version handling by capability, one small module per concern.

Nothing here imports `tensorrt` at module import time: every function takes the imported module
(`trt`) as its first argument, so the same code runs against TensorRT 8.6, 10.x and 11.x, and tests
run it against the stand-in. Branches test for the API they need (`hasattr(trt.BuilderFlag, "FP16")`),
never the version string, and `tests/trt/test_api_surface.py` checks every `tensorrt` attribute used
here against the recorded API of each version whose branch reaches it.

- `loader`: lazy import with an install hint, version string for messages and metadata
- `device`: where buffers live (CUDA, or host memory for the stand-in test hook)
- `logger`: a TensorRT logger that keeps a tail of messages for error reports
- `network`: network-creation flags (explicit batch on 8.x, 0 on 10+, strongly typed on 11)
- `precision`: FP16/INT8 builder flags (weak typing, <= 10) and dtype conversions
- `profile`: optimization-profile shapes for dynamic engines
- `config`: builder config (workspace, optimization level, timing cache, verbosity)
- `build`: ONNX parse and build, with every parser error and the log tail in failures
- `bindings`: engine I/O through the tensor-name API, or the binding API where that is all there is
- `surface`: the static scan of `tensorrt` attribute uses, grouped by the capability guarding them
"""
