"""ONNX Runtime inference backend for `.onnx` files (ours and upstream's).

What the model needs is read from the model itself, not from the caller: an FP16 graph input means
FP16 input whatever `half` the user passed, fixed input dims mean a static model (AutoBackend then
letterboxes to its size and splits/pads batches), and names/stride come from `metadata_props`.

On a CUDA device with the CUDA execution provider, inputs and outputs stay on the GPU through an
IOBinding onto torch tensors; otherwise the session runs on the CPU and the output is moved to the
requested device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ultralytics.nn.backends.base import Backend, default_names, is_end2end
from ultralytics.utils import LOGGER

INSTALL_HINT = (
    "onnxruntime is not installed, so .onnx models cannot run. Install it with "
    "'pip install onnxruntime' (CPU) or 'pip install onnxruntime-gpu' (NVIDIA GPUs; install only one of the two)."
)

# ONNX Runtime's type strings → torch dtypes, for the types a YOLO graph's I/O can have.
ORT_TYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16, "tensor(double)": torch.float64}
NUMPY_DTYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise ModuleNotFoundError(INSTALL_HINT) from e
    return onnxruntime


def _static_dims(shape: list[Any]) -> list[int | None]:
    """ORT reports a dynamic dim as a name string or None; keep ints only."""
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


class OnnxRuntimeBackend(Backend):
    """Runs an exported YOLO detection ONNX with ONNX Runtime; see docs/onnx.md."""

    def __init__(self, weights: str | Path, device: torch.device | str = "cpu", fp16: bool = False, **kw) -> None:
        ort = import_onnxruntime()
        self.path = Path(weights)
        self.device = torch.device(device)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model '{self.path}' does not exist")
        providers = self._providers(ort)
        try:
            self.session = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph/... types
            raise ValueError(
                f"ONNX Runtime could not load '{self.path}': {type(e).__name__}: {e}\n"
                "Is it a complete ONNX file? Export it again with YOLO('model.pt').export(format='onnx')."
            ) from e
        self.on_gpu = "CUDAExecutionProvider" in self.session.get_providers()
        self.input, self.output = self._pick_io()
        in_dtype = ORT_TYPES.get(self.input.type)
        if in_dtype not in (torch.float32, torch.float16):
            raise ValueError(
                f"{self.path.name}: the input {self.input.name!r} has type {self.input.type}; a YOLO detection model "
                "takes float32 or float16 images"
            )
        self.fp16 = in_dtype == torch.float16  # from the model, whatever the caller asked for
        if fp16 != self.fp16:
            LOGGER.debug(f"{self.path.name} takes {'FP16' if self.fp16 else 'FP32'} input; half={fp16} is ignored")
        self.out_dtype = ORT_TYPES.get(self.output.type, torch.float32)
        in_dims = _static_dims(self.input.shape)
        self.dynamic = any(d is None for d in in_dims)
        if self.dynamic:
            self.batch, self.imgsz = 0, None  # ONNX dynamic axes have no upper bound
        else:
            self.batch, self.imgsz = in_dims[0], (in_dims[2], in_dims[3])
        self._apply_metadata(self.session.get_modelmeta().custom_metadata_map)
        self._output_shapes: dict[tuple[int, ...], tuple[int, ...]] = {}

    # --- loading ------------------------------------------------------------------------------
    def _providers(self, ort) -> list:
        if self.device.type != "cuda":
            return ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return [("CUDAExecutionProvider", {"device_id": self.device.index or 0}), "CPUExecutionProvider"]
        LOGGER.warning(
            f"WARNING device={self.device} was asked for, but this onnxruntime has no CUDAExecutionProvider "
            f"(available: {ort.get_available_providers()}); running {self.path.name} on the CPU. "
            "Install onnxruntime-gpu for GPU inference."
        )
        return ["CPUExecutionProvider"]

    def _pick_io(self):
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(
                f"{self.path} is not a YOLO detection model: expected one image input of shape (batch, 3, height, "
                f"width), got {[(i.name, i.shape) for i in inputs]}"
            )
        named = [o for o in outputs if o.name == "output0"]
        output = (named or outputs)[0]
        return inputs[0], output

    def _apply_metadata(self, raw: dict[str, str]) -> None:
        from ultralytics.export.metadata import parse_metadata

        out_shape = list(self.output.shape)
        channels = out_shape[1] if len(out_shape) == 3 and isinstance(out_shape[1], int) else None
        expected = "(batch, 4 + classes, anchors)"
        if len(out_shape) != 3:
            raise ValueError(
                f"{self.path} is not a YOLO detection model: its output {self.output.name!r} has shape {out_shape}, "
                f"expected {expected}"
            )
        meta = parse_metadata(raw) if raw else {}
        task = str(meta.get("task") or "detect")
        if task != "detect":
            raise ValueError(f"{self.path} is a '{task}' model; this package runs detection models only")
        names = meta.get("names")
        # end-to-end exports (YOLO26 nms=False / end2end=True, or NMS in the graph: nms=True) output final
        # detections (B, max_det, 6)
        self.end2end = is_end2end(meta)
        if self.end2end:
            if isinstance(out_shape[2], int) and out_shape[2] != 6:
                raise ValueError(
                    f"{self.path}: its metadata says end2end, but the output {self.output.name!r} has shape "
                    f"{out_shape}, not (batch, detections, 6). The file's metadata does not belong to this graph."
                )
            if not names:
                raise ValueError(f"{self.path}: an end2end model needs class names in its metadata; export it again")
        elif names:
            if channels is not None and channels != 4 + len(names):
                raise ValueError(
                    f"{self.path}: its metadata names {len(names)} classes, but the output has {channels} channels "
                    f"(expected 4 + {len(names)}). The file's metadata does not belong to this graph."
                )
        else:
            if channels is None or channels <= 4:
                raise ValueError(
                    f"{self.path} is not a YOLO detection model: it has no Ultralytics metadata and its output shape "
                    f"{out_shape} is not {expected}. Export the model with YOLO('model.pt').export(format='onnx')."
                )
            names = default_names(channels - 4)
            LOGGER.warning(
                f"WARNING {self.path.name} has no Ultralytics metadata: using class names class0..class{channels - 5} "
                "and stride 32"
            )
        self.metadata = meta
        self.names = dict(names)
        self.stride = int(meta.get("stride") or 32)
        self.task = task

    # --- inference ----------------------------------------------------------------------------
    def forward(self, im: torch.Tensor) -> torch.Tensor:
        """Raw head output (B, 4 + nc, anchors), or (B, N, 6) detections when `end2end`, on `self.device`."""
        if not self.dynamic and tuple(im.shape) != (self.batch, self.input.shape[1], *self.imgsz):
            raise ValueError(
                f"{self.path.name} is a static model for input shape {[self.batch, self.input.shape[1], *self.imgsz]}, "
                f"got {list(im.shape)}. Predict at imgsz={list(self.imgsz)}, or export with dynamic=True."
            )
        dtype = torch.float16 if self.fp16 else torch.float32
        if self.on_gpu and im.device.type == "cuda":
            return self._forward_cuda(im.to(dtype).contiguous())
        x = im.detach().to("cpu", dtype).contiguous().numpy()
        y = self.session.run([self.output.name], {self.input.name: x})[0]
        return torch.from_numpy(y).to(self.device)

    def _forward_cuda(self, im: torch.Tensor) -> torch.Tensor:
        """GPU in, GPU out: bind torch's memory so nothing crosses to the host."""
        shape = tuple(im.shape)
        binding = self.session.io_binding()
        elem = NUMPY_DTYPES[im.dtype]
        index = im.device.index or 0
        binding.bind_input(self.input.name, "cuda", index, elem, shape, im.data_ptr())
        out_shape = self._output_shapes.get(shape)
        if out_shape is None:  # first call at this shape: let ORT allocate, then remember the shape
            binding.bind_output(self.output.name, "cuda", index)
            torch.cuda.current_stream(im.device).synchronize()  # ORT runs on its own stream
            self.session.run_with_iobinding(binding)
            out_shape = tuple(binding.get_outputs()[0].shape())
            self._output_shapes[shape] = out_shape
            binding = self.session.io_binding()
            binding.bind_input(self.input.name, "cuda", index, elem, shape, im.data_ptr())
        out = torch.empty(out_shape, dtype=self.out_dtype, device=im.device)
        binding.bind_output(self.output.name, "cuda", index, NUMPY_DTYPES[self.out_dtype], out_shape, out.data_ptr())
        torch.cuda.current_stream(im.device).synchronize()
        self.session.run_with_iobinding(binding)  # synchronizes ORT's stream before returning
        return out
