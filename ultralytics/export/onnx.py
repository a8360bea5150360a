"""ONNX export: the fused eval model → `<stem>.onnx` with upstream's I/O names, axes and metadata.

Choices, and why:

- Exporter: torch's TorchScript-based exporter (`dynamo=False`). The dynamo exporter needs the
  `onnxscript` package (not a dependency here) and gives a different graph between torch releases;
  the TorchScript path gives the same clean graph on torch 2.11 (GPU machine) and 2.13 (CI).
- FP16 (`half=True`): we always export FP32 and convert the graph ourselves (`convert_to_fp16`),
  on any device. Exporting a `.half()` model does not work on torch 2.13 (the TorchScript exporter
  fails on the head's half-precision `arange`), and one path means the CPU and the GPU export give
  the same file. Inputs, outputs and weights become FP16 (upstream keeps FP32 I/O, which made its
  "FP16" engines take and return FP32); `keep_io_types=True` keeps FP32 I/O around an FP16 body.
- Writes go through `utils/atomic_file.atomic_open` (temporary file in the destination folder,
  fsync, open()'s permissions, rename), so a failed export never leaves a half-written file or
  destroys an existing one, and the result is readable by other users as a plain file would be.
"""

from __future__ import annotations

import copy
import inspect
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ultralytics.data.augment import imgsz_pair
from ultralytics.export.nms import MIN_NMS_OPSET, NmsSettings, append_nms, check_nms_model
from ultralytics.utils import LOGGER
from ultralytics.utils.atomic_file import atomic_open

PREFIX = "ONNX:"
# Upstream's names for the graph I/O and the dynamic axes; TensorRT and Triton configs use them.
INPUT_NAME = "images"
OUTPUT_NAME = "output0"
DYNAMIC_AXES = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch", 2: "anchors"}}
# End-to-end graphs (YOLO26's one-to-one head) output (batch, max_det, 6): only the batch varies.
DYNAMIC_AXES_END2END = {INPUT_NAME: DYNAMIC_AXES[INPUT_NAME], OUTPUT_NAME: {0: "batch"}}
# Opset 11 is the first with the Resize semantics nn.Upsample exports to.
MIN_OPSET = 11
# The default opset is the newest the installed torch exporter and onnx both support, capped at 18:
# upstream's default, the opset its TensorRT 8.6-11 users build from. Nothing YOLOv8 uses changed
# after 18, so a newer default would only cost compatibility with older parsers.
PREFERRED_OPSET = 18
FP16_MAX = float(np.finfo(np.float16).max)


# ---------------------------------------------------------------------------------------- opset
def max_supported_opset() -> int:
    """The newest opset both the TorchScript exporter and the installed onnx package handle."""
    import onnx

    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as torch_max
    except ImportError:  # older torch: one constant for the only exporter
        from torch.onnx._constants import ONNX_MAX_OPSET as torch_max
    return min(int(torch_max), int(onnx.defs.onnx_opset_version()))


def resolve_opset(opset: int | None) -> int:
    """The default opset when None, else the requested one after checking it can be exported."""
    newest = max_supported_opset()
    if opset in (None, 0, ""):
        return min(PREFERRED_OPSET, newest)
    if isinstance(opset, bool) or not isinstance(opset, (int, str)) or not str(opset).strip().isdigit():
        raise ValueError(f"opset={opset!r} is not an integer; pass e.g. opset={min(PREFERRED_OPSET, newest)}")
    opset = int(opset)
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset={opset} is not supported here: torch {torch.__version__} with onnx "
            f"{_onnx_version()} exports opsets {MIN_OPSET}..{newest} for YOLOv8. "
            f"Pass an opset in that range, or leave opset unset for {min(PREFERRED_OPSET, newest)}."
        )
    return opset


def _onnx_version() -> str:
    import onnx

    return onnx.__version__


# ---------------------------------------------------------------------------------------- export
def export_onnx(
    model: nn.Module,
    file: str | Path,
    *,
    imgsz: tuple[int, int] | list[int],
    batch: int = 1,
    dynamic: bool = False,
    simplify: bool = True,
    opset: int | None = None,
    half: bool = False,
    keep_io_types: bool = False,
    int8: bool = False,
    device: torch.device | str = "cpu",
    metadata: dict[str, Any] | None = None,
    nms: NmsSettings | None = None,
) -> Path:
    """Export a DetectionModel to ONNX and return the written path.

    The graph's output is whatever the model's eval forward returns: raw (B, 4 + nc, anchors), or for a
    YOLO26 whose one-to-one head was selected (`model.select_head(True, max_det=...)`, upstream's
    `nms=False` / `end2end=True`) final detections (B, max_det, 6) with TopK inside the graph.
    `half=True` gives FP16 inputs, outputs and weights (on any device); with `keep_io_types=True`
    the body is FP16 but `images`/`output0` stay FP32 (for TensorRT `fp32_io`). `dynamic=True` makes
    batch, height and width dynamic; otherwise the graph is fixed at (batch, 3, *imgsz). INT8 is
    not done here: it is `export/quantize.py`'s job, starting from this function's FP32 output.
    `nms` appends NMS to the graph (`export/nms.py`): the output becomes (batch, max_det, 6).
    """
    import onnx

    file = Path(file)
    if half and int8:
        raise ValueError("half=True and int8=True were both given: choose one precision (FP16 or INT8)")
    if int8:
        raise ValueError("export_onnx writes FP32/FP16 graphs; INT8 ONNX comes from export/quantize.quantize_onnx")
    if keep_io_types and not half:
        raise ValueError("keep_io_types=True keeps FP32 inputs/outputs around an FP16 graph; it needs half=True")
    opset = resolve_opset(opset)
    if nms is not None:
        check_nms_model(model)
        if opset < MIN_NMS_OPSET:
            raise ValueError(f"nms=True needs opset {MIN_NMS_OPSET} or newer, got opset={opset}")
    imgsz = imgsz_pair(imgsz)
    batch = _check_batch(batch)
    _check_writable(file)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device} was asked for the export, but CUDA is not available; use device='cpu'")

    t0 = time.time()
    precision = "FP16" + (" (FP32 I/O)" if keep_io_types else "") if half else "FP32"
    LOGGER.info(
        f"\n{PREFIX} starting export with torch {torch.__version__}, onnx {onnx.__version__}, opset {opset}, "
        f"{precision}, {'dynamic' if dynamic else 'static'} input {[batch, 3, *imgsz]}..."
    )
    model = _prepare_model(model, device)
    channels = _input_channels(model)
    dummy = torch.zeros(batch, channels, *imgsz, device=device)
    with tempfile.TemporaryDirectory(prefix="ultralytics-onnx-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        _torch_export(model, dummy, raw, opset, dynamic)
        graph = onnx.load(str(raw))
    if simplify:
        graph = _simplify(graph)
    if half:
        graph = convert_to_fp16(graph, keep_io_types=keep_io_types)
    if nms is not None:
        graph = append_nms(graph, nms, OUTPUT_NAME)
    if metadata:
        from ultralytics.export.metadata import to_onnx_props

        onnx.helper.set_model_props(graph, to_onnx_props(metadata))
    onnx.checker.check_model(graph)
    _atomic_save(graph, file)
    LOGGER.info(
        f"{PREFIX} export success {time.time() - t0:.1f}s, saved as '{file}' ({file.stat().st_size / 1e6:.1f} MB)"
    )
    return file


def _check_batch(batch) -> int:
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch={batch!r} is not valid; pass a positive integer")
    return int(batch)


def _check_writable(file: Path) -> None:
    """Fail before the slow part if the result could not be written (nothing is touched yet)."""
    if file.suffix.lower() != ".onnx":
        raise ValueError(f"the ONNX export path must end in .onnx, got '{file}'")
    if file.is_dir():
        raise IsADirectoryError(f"cannot write the ONNX export to '{file}': it is a directory")
    folder = file.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write '{file}': the folder '{folder}' does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot write '{file}': the folder '{folder}' is not writable. Copy the weights to a writable folder "
            "and export from there."
        )


def _prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """A private FP32, fused, eval copy on `device`, so the caller's model is never modified."""
    model = copy.deepcopy(model).to(device).float().eval()
    if hasattr(model, "fuse"):
        model.fuse()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _input_channels(model: nn.Module) -> int:
    spec = getattr(model, "yaml", None)
    if isinstance(spec, dict):
        for key in ("channels", "ch"):
            if spec.get(key):
                return int(spec[key])
    return 3


def _torch_export(model: nn.Module, dummy: torch.Tensor, path: Path, opset: int, dynamic: bool) -> None:
    kwargs: dict[str, Any] = dict(
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes=(DYNAMIC_AXES_END2END if getattr(model, "end2end", False) else DYNAMIC_AXES) if dynamic else None,
        do_constant_folding=True,
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # see the module docstring
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation on every call; that is not the user's problem.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*will be removed.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(model, dummy, str(path), **kwargs)


def _simplify(graph):
    """Fold constants and fuse the shape arithmetic with onnxslim; without it, keep the raw graph."""
    try:
        import onnxslim
    except ImportError:
        LOGGER.warning(
            f"WARNING {PREFIX} onnxslim is not installed: the graph is left unsimplified (pip install onnxslim)"
        )
        return graph
    try:
        return onnxslim.slim(graph)
    except Exception as e:  # a simplifier bug must not cost the user the export
        LOGGER.warning(f"WARNING {PREFIX} onnxslim failed ({type(e).__name__}: {e}); keeping the unsimplified graph")
        return graph


def _atomic_save(graph, file: Path) -> None:
    """Serialize next to the target, then rename over it: no partial file, old file kept on failure."""
    import onnx

    with atomic_open(file, "wb") as f:
        onnx.save(graph, f)


# ---------------------------------------------------------------------------------------- FP16
# Ops that run in FP32 (with Casts around them) inside an FP16 graph. Range builds the anchor grid of
# dynamic graphs: ONNX Runtime has no FP16 Range kernel, and grid coordinates are exact in FP32.
#
# The head's DFL softmax and box decode stay FP16: measured on the 100 shapes val images (true FP16
# arithmetic, torch CPU half ops, against the FP32 head; docs/onnx.md), FP16 DFL softmax adds nothing
# measurable (max xywh error 0.54 px with it vs 0.48 px without, at imgsz 640), and FP16 decode moves
# boxes by 0.08 px on average (0.54 px max) where rounding the output to FP16 alone costs 0.04 px
# (0.25 px max): well below a pixel, every box still matched at IoU >= 0.95, so no Casts are added.
FP32_OPS = frozenset({"Range"})
# Inputs the ONNX spec requires to be float32 whatever the data type (Resize's scales).
FP32_INPUTS = {"Resize": (2,), "Upsample": (1,)}


def keep_in_fp32(node) -> bool:
    """The default rule for nodes that compute in FP32 inside an FP16 graph (see FP32_OPS)."""
    return node.op_type in FP32_OPS


def convert_to_fp16(model, *, keep_io_types: bool = False, keep_fp32: Callable[[Any], bool] = keep_in_fp32):
    """Turn an FP32 ONNX graph into an FP16 one: weights, constants, Casts and (unless
    `keep_io_types`) the graph inputs and outputs. Nodes for which `keep_fp32(node)` is true keep
    computing in FP32 behind Casts. Returns a new ModelProto; the argument is not modified.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        raise NotImplementedError("FP16 conversion of graphs with subgraphs (If/Loop/Scan) is not supported")
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    float_tensors = _float_tensor_names(graph)
    fp32_constants = _fp32_constant_inputs(graph)  # constants that must stay float32 where they are used

    clipped = 0
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in fp32_constants:
            array, n = _to_fp16(numpy_helper.to_array(init))
            clipped += n
            init.CopyFrom(numpy_helper.from_array(array, init.name))
    for node in graph.node:
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
        elif node.op_type in ("Constant", "ConstantOfShape"):
            if node.op_type == "Constant" and node.output[0] in fp32_constants:
                continue
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    array, n = _to_fp16(numpy_helper.to_array(attr.t))
                    clipped += n
                    attr.t.CopyFrom(numpy_helper.from_array(array, attr.t.name))
    if clipped:
        LOGGER.warning(
            f"WARNING {PREFIX} {clipped} weight values exceed the FP16 range and were clipped to ±{FP16_MAX}"
        )

    new_nodes = []
    for node in graph.node:
        if keep_fp32(node):
            new_nodes.extend(_wrap_in_fp32(node, float_tensors, helper))
            continue
        # Computed (non-constant) tensors feeding a float32-only input get a Cast back to float32.
        for index in FP32_INPUTS.get(node.op_type, ()):
            if index < len(node.input) and node.input[index] and node.input[index] not in fp32_constants:
                name = node.input[index]
                cast_name = f"{name}_as_fp32_for_{node.name or node.op_type}"
                new_nodes.append(helper.make_node("Cast", [name], [cast_name], to=TensorProto.FLOAT))
                node.input[index] = cast_name
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)

    if keep_io_types:
        _cast_io(graph, float_tensors, helper)
    else:
        for value in list(graph.input) + list(graph.output):
            if value.type.tensor_type.elem_type == TensorProto.FLOAT:
                value.type.tensor_type.elem_type = TensorProto.FLOAT16
    # Types changed throughout: drop the stale intermediate types and infer them again.
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _to_fp16(array: np.ndarray) -> tuple[np.ndarray, int]:
    """FP16 copy of `array`, clipping values beyond the FP16 range instead of turning them into inf."""
    over = int(np.count_nonzero(np.abs(array) > FP16_MAX))
    return np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16), over


def _float_tensor_names(graph) -> set[str]:
    from onnx import TensorProto

    names = {v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info)
             if v.type.tensor_type.elem_type == TensorProto.FLOAT}  # fmt: skip
    names |= {i.name for i in graph.initializer if i.data_type == TensorProto.FLOAT}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    names.add(node.output[0])
    return names


def _fp32_constant_inputs(graph) -> set[str]:
    """Initializers/Constants used only at float32-only input positions (e.g. Resize scales)."""
    constants = {i.name for i in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}
    fp32_uses: set[str] = set()
    other_uses: set[str] = set()
    for node in graph.node:
        fp32_positions = FP32_INPUTS.get(node.op_type, ())
        for index, name in enumerate(node.input):
            if name in constants:
                (fp32_uses if index in fp32_positions else other_uses).add(name)
    return fp32_uses - other_uses


def _wrap_in_fp32(node, float_tensors: set[str], helper) -> list:
    """Cast the node's float inputs to FP32 and its float outputs back to FP16."""
    from onnx import TensorProto

    before, after = [], []
    label = node.name or node.op_type
    for i, name in enumerate(node.input):
        if name and name in float_tensors:
            cast = f"{name}_fp32_for_{label}"
            before.append(helper.make_node("Cast", [name], [cast], to=TensorProto.FLOAT))
            node.input[i] = cast
    for i, name in enumerate(node.output):
        if name in float_tensors:
            inner = f"{name}_fp32"
            after.append(helper.make_node("Cast", [inner], [name], to=TensorProto.FLOAT16))
            node.output[i] = inner
    return [*before, node, *after]


def _rename_tensor(graph, name: str, new_name: str, *, producer: bool) -> None:
    """Point every consumer of `name` (and, with `producer`, the node that makes it) at `new_name`."""
    for node in graph.node:
        for i, value in enumerate(node.input):
            if value == name:
                node.input[i] = new_name
        if producer:
            for i, value in enumerate(node.output):
                if value == name:
                    node.output[i] = new_name


def _cast_io(graph, float_tensors: set[str], helper) -> None:
    """FP32 graph inputs/outputs around the FP16 body: a Cast after each input, before each output."""
    from onnx import TensorProto

    head, tail = [], []
    for value in graph.input:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = f"{value.name}_fp16"
        _rename_tensor(graph, value.name, inner, producer=False)
        head.append(helper.make_node("Cast", [value.name], [inner], to=TensorProto.FLOAT16))
    for value in graph.output:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = f"{value.name}_fp16"
        # an output may also be consumed inside the graph: those uses move to the FP16 tensor too
        _rename_tensor(graph, value.name, inner, producer=True)
        tail.append(helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT))
    nodes = [*head, *graph.node, *tail]
    del graph.node[:]
    graph.node.extend(nodes)
