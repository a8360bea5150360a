"""TensorRT inference backend: `.engine` / `.plan` files from TensorRT 8.6, 10.x and 11.x.

Everything the backend needs to know comes from the engine itself: the input dtype (FP16 engines
take FP16), whether it is dynamic (-1 in the input shape), the profile limits, and the static
batch and image size. The file's metadata adds class names and stride.

Buffers are allocated once per input shape and bound to the context, and each call copies the
input into the bound input buffer and enqueues: the addresses never change between calls, so
`_enqueue` can be captured in a CUDA graph.

Devices and streams: every TensorRT call that touches the GPU (deserialize, context creation,
`set_input_shape`, binding, enqueue) runs with the engine's device current, since an engine belongs
to the device it was loaded on (device=1 otherwise fails with "invalid resource handle", upstream
issue 21300). Enqueues go to a stream the backend owns, never the legacy default stream (on which
TensorRT adds `cudaStreamSynchronize` calls), ordered after the caller's current stream and before
whatever the caller does next on it.

Test hook: with `ULTRALYTICS_TRT_HOST_MEMORY=1` (see `ultralytics/trt/device.py`; read once, at load)
the buffers are CPU tensors and the stream a placeholder with a unique non-zero handle
(`trt/device.HostStream`), which is what the TensorRT stand-in of the test suite reads.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ultralytics.export.engine_file import read_engine_file
from ultralytics.nn.backends.base import Backend, default_names, is_end2end
from ultralytics.trt.bindings import TensorInfo, engine_io
from ultralytics.trt.device import caller_stream, device_context, host_memory_enabled, owned_stream, require_cuda
from ultralytics.trt.loader import import_tensorrt, tensorrt_version
from ultralytics.trt.logger import process_logger
from ultralytics.utils import LOGGER


class TensorRTBackend(Backend):
    """Runs a serialized TensorRT engine; see docs/tensorrt.md."""

    def __init__(
        self,
        weights: str | Path,
        device: torch.device | str = "cpu",
        fp16: bool = False,
        io_api: str | None = None,
        **kw,
    ) -> None:
        self.path = Path(weights)
        self.device = torch.device(device)
        engine_file = read_engine_file(self.path)  # clear errors for missing, empty or truncated files
        # the test hook is read once, here: an engine's buffers and stream do not change under it
        self.host_memory = host_memory_enabled()
        if not self.host_memory:
            require_cuda(self.device, f"Running the TensorRT engine {self.path.name}")
        trt = import_tensorrt()
        self.trt = trt
        self.logger = process_logger(trt)
        # Host-memory test hook: buffers on the CPU whatever the device (the stand-in reads host pointers).
        self.buffer_device = torch.device("cpu") if self.host_memory else self.device
        with self._cuda_device(), self.logger.operation() as log:
            runtime = trt.Runtime(self.logger)
            engine = runtime.deserialize_cuda_engine(engine_file.plan)
            if engine is None:
                raise RuntimeError(self._load_error(engine_file.metadata, log.tail()))
            context = engine.create_execution_context()
            if context is None:
                raise RuntimeError(
                    f"TensorRT loaded {self.path} but could not create an execution context (out of GPU memory?).\n"
                    f"TensorRT log:\n{log.tail()}"
                )
            self.stream = owned_stream(self.device, self.host_memory)
        # The runtime must outlive the engine, and the engine its context.
        self.runtime, self.engine, self.context = runtime, engine, context
        self.io = engine_io(trt, engine, context, api=io_api)
        self.input, self.output = self._pick_io(self.io.tensors)
        self.dynamic = self.input.dynamic
        self.fp16 = self.input.dtype == torch.float16  # from the engine, whatever the caller asked
        if self.dynamic:
            self.batch = self.input.profile[2][0] if self.input.profile else 0
            self.imgsz = None
        else:
            self.batch = self.input.shape[0]
            self.imgsz = (self.input.shape[2], self.input.shape[3])
        self._apply_metadata(engine_file.metadata)
        self._bound_shape: tuple[int, ...] | None = None
        self._buffers: dict[str, torch.Tensor] = {}

    # --- loading ------------------------------------------------------------------------------
    def _cuda_device(self):
        return device_context(self.device)

    def _load_error(self, metadata: dict, log_tail: str) -> str:
        installed = tensorrt_version(self.trt)
        built_with = metadata.get("tensorrt")
        if built_with and str(built_with) != installed:
            why = (
                f"it was built with TensorRT {built_with}, but TensorRT {installed} is installed. An engine only "
                "loads in the TensorRT version that built it, and by default only on GPUs of the compute capability it "
                "was built on (TensorRT's hardware compatibility level NONE): export it again here"
            )
        else:
            why = (
                f"TensorRT {installed} cannot read it: it was built by another TensorRT version or for another GPU, "
                "or the file is truncated or not a TensorRT engine at all. Export it again from the .pt"
            )
        return f"could not load the TensorRT engine {self.path}: {why}.\nTensorRT log:\n{log_tail}"

    def _pick_io(self, tensors: list[TensorInfo]) -> tuple[TensorInfo, TensorInfo]:
        inputs = [t for t in tensors if t.is_input]
        outputs = [t for t in tensors if not t.is_input]
        if len(inputs) != 1 or not outputs:
            raise ValueError(
                f"{self.path} is not a YOLO detection engine: expected one image input and an output, got inputs "
                f"{[t.name for t in inputs]} and outputs {[t.name for t in outputs]}"
            )
        if len(inputs[0].shape) != 4:
            raise ValueError(f"{self.path}: the input {inputs[0].name!r} has shape {inputs[0].shape}, expected BCHW")
        named = [t for t in outputs if t.name == "output0"]
        return inputs[0], (named or sorted(outputs, key=lambda t: t.name))[0]

    def _apply_metadata(self, raw: dict) -> None:
        if raw:
            from ultralytics.export.metadata import parse_metadata

            meta = parse_metadata(raw)
        else:
            meta = {}
            LOGGER.warning(
                f"WARNING {self.path.name} has no Ultralytics metadata (a plain TensorRT plan): using class names "
                "class0, class1, ... and stride 32. Export with engine_layout='plan' to get a sidecar .json."
            )
        self.metadata = meta
        self.stride = int(meta.get("stride") or 32)
        self.task = str(meta.get("task") or "detect")
        self.end2end = is_end2end(meta)  # NMS in the engine (nms=True) or an end-to-end head: (B, max_det, 6)
        names = meta.get("names")
        if not names:
            channels = self.output.shape[1] if len(self.output.shape) == 3 else -1
            names = default_names(channels - 4 if channels > 4 else 999)
        self.names = {int(k): str(v) for k, v in dict(names).items()}

    # --- inference ----------------------------------------------------------------------------
    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if not self.dynamic:
            if shape != self.input.shape:
                raise ValueError(
                    f"the engine {self.path.name} was built for input shape {list(self.input.shape)} (static), got "
                    f"{list(shape)}. Predict at imgsz={list(self.input.shape[2:])}, or export with dynamic=True."
                )
            return
        lo, _, hi = self.input.profile
        if len(shape) != len(lo) or any(not (a <= s <= b) for a, s, b in zip(lo, shape, hi)):
            raise ValueError(
                f"input shape {list(shape)} is outside the dynamic engine's profile: min {list(lo)}, max {list(hi)}. "
                "Use a size and batch within those limits, or export again with other min_shape/max_shape."
            )

    def _prepare(self, shape: tuple[int, ...]) -> None:
        """Set the input shape and (re)allocate and bind every buffer for it (on the engine's device)."""
        self._check_shape(shape)
        with self._cuda_device(), self.logger.operation() as log:
            if self.dynamic and not self.io.set_input_shape(self.input, shape):
                lo, _, hi = self.input.profile
                raise ValueError(
                    f"TensorRT rejected input shape {list(shape)} (profile min {list(lo)}, max {list(hi)}).\n"
                    f"TensorRT log:\n{log.tail()}"
                )
            self._buffers = {}
            for info in self.io.tensors:
                tensor_shape = shape if info.is_input else self.io.current_shape(info)
                if any(d < 0 for d in tensor_shape):
                    raise RuntimeError(f"TensorRT left tensor {info.name!r} with unresolved shape {list(tensor_shape)}")
                buffer = torch.empty(tensor_shape, dtype=info.dtype, device=self.buffer_device)
                self._buffers[info.name] = buffer
                self.io.bind(info, buffer.data_ptr())
        self._bound_shape = shape

    def _enqueue(self) -> None:
        """Run the engine on the bound buffers (the part a CUDA graph would capture).

        On our stream, after the caller's pending work (the input copy) and before the caller's next.
        The enqueue is the only call here that can log (TensorRT's errors and its default-stream warning;
        the rest is torch), and it runs on every inference: instead of opening a logger operation (a lock
        and two list updates) it takes a mark, and a failure reports what TensorRT logged since.
        """
        caller = caller_stream(self.device, self.host_memory)
        self.stream.wait_stream(caller)
        mark = self.logger.logged
        with self._cuda_device():
            ok = self.io.execute(self.stream.cuda_stream)
        if not ok:
            raise RuntimeError(f"TensorRT failed to run {self.path.name}.\nTensorRT log:\n{self.logger.since(mark)}")
        caller.wait_stream(self.stream)

    def graph_safe(self, shape: tuple[int, ...]) -> bool:
        """A static engine with fixed buffers replays at its one input shape (upstream captures TensorRT
        engines too); a dynamic one sets shapes per call, so it runs eagerly."""
        return not self.dynamic and tuple(self.input.shape) == tuple(shape)

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        """Raw head output (B, 4 + nc, anchors); a reused buffer, copy it to keep it."""
        if im.device != self.buffer_device:
            raise ValueError(f"input is on {im.device} but the engine runs on {self.buffer_device}; move it first")
        shape = tuple(int(d) for d in im.shape)
        max_batch = self.input.profile[2][0] if self.dynamic else 0
        if max_batch and shape[0] > max_batch and len(shape) == 4:
            # More images than the profile allows: run in chunks of the maximum batch, like AutoBackend does
            # for static engines (the outputs are copied, since each chunk reuses the same buffer).
            return torch.cat([self.forward(chunk).clone() for chunk in im.split(max_batch)])
        if shape != self._bound_shape:
            self._prepare(shape)
        self._buffers[self.input.name].copy_(im)  # casts to the engine's input dtype
        self._enqueue()
        return self._buffers[self.output.name]
