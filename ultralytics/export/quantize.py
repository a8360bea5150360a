"""Our post-training INT8 quantization: an FP32 ONNX in, a Q/DQ ("explicit quantization") ONNX out.

TensorRT 11 removed implicit quantization (calibrators), so an INT8 engine must be built from an ONNX
whose QuantizeLinear/DequantizeLinear nodes carry the scales. We place them where TensorRT fuses them
into INT8 convolutions: on every Conv's activation input (per-tensor, symmetric) and on its weights
(per output channel, axis 0, symmetric, stored as INT8). Nothing else is quantized, so every other
layer runs in FP16/FP32. The same file runs in ONNX Runtime on the CPU, which is where we measure its
accuracy (docs/int8.md). NVIDIA ModelOpt is not needed.

Activation ranges come from running the model in ONNX Runtime on the calibration set with each Conv
input exposed as an extra output:
- "minmax": the largest |x| seen (no clipping; one outlier widens every step),
- "percentile": the |x| below which `percentile` % of values fall,
- "entropy": the clipping threshold whose 128-level histogram is closest (KL divergence) to the full one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ultralytics.export.calibration import CalibrationSet
from ultralytics.utils import LOGGER

METHODS = ("minmax", "percentile", "entropy")
DEFAULT_METHOD = "percentile"  # best mAP50-95 on the shapes fixture, see docs/int8.md
DEFAULT_PERCENTILE = 99.99
NUM_BINS = 2048  # histogram resolution for percentile/entropy (as TensorRT's entropy calibrator)
INT8_MAX = 127  # symmetric range [-127, 127]: TensorRT requires zero points of 0
ACTIVATIONS = {"Relu", "LeakyRelu", "HardSwish", "HardSigmoid", "Elu", "Selu", "Swish", "Gelu", "Mish", "Silu"}


def quantize_onnx(
    src: str | Path,
    dst: str | Path,
    calib: CalibrationSet,
    *,
    method: str = DEFAULT_METHOD,
    keep_fp_nodes: Iterable[str] | str | None = "auto",
    percentile: float = DEFAULT_PERCENTILE,
) -> Path:
    """Write a Q/DQ INT8 copy of the FP32 ONNX `src` to `dst` and return `dst`.

    `keep_fp_nodes`: Conv node names left unquantized. "auto" keeps the detection head's prediction
    convolutions (every Conv not followed by an activation: the last Conv of each cv2/cv3 branch and
    DFL) and, for YOLO11/YOLO26, the depth-wise class branch, which measurement shows are the layers
    INT8 hurts; another string is a regular expression
    matched against node names; None or [] quantizes every Conv.
    """
    src, dst = Path(src), Path(dst)
    if method not in METHODS:
        raise ValueError(f"INT8 calibration method {method!r} is not supported: use one of {', '.join(METHODS)}")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile={percentile} is not valid: use a value in (0, 100], e.g. 99.99")
    if not src.is_file():
        raise FileNotFoundError(f"cannot quantize {src}: the file does not exist (export an FP32 ONNX first)")
    if dst.resolve() == src.resolve():
        raise ValueError(f"quantize_onnx would overwrite its input {src}: write the INT8 model to another file")
    model = onnx.load(str(src))
    _check_quantizable(model, src)

    convs = quantizable_convs(model, keep_fp_nodes)
    activations = sorted({node.input[0] for node in convs})
    amax = calibrate_activations(model, activations, calib, method=method, percentile=percentile)
    quantized = insert_qdq(model, convs, amax)
    onnx.checker.check_model(quantized)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(quantized, str(dst))
    kept = sum(1 for n in model.graph.node if n.op_type == "Conv") - len(convs)
    LOGGER.info(
        f"INT8 Q/DQ: {len(convs)} Conv layers quantized ({method}, {len(calib)} images), {kept} kept in float → {dst}"
    )
    return dst


def _check_quantizable(model: onnx.ModelProto, src: Path) -> None:
    ops = {node.op_type for node in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear"}:
        raise ValueError(f"{src} already has Q/DQ nodes (it is quantized): quantize the FP32 ONNX instead")
    for graph_input in model.graph.input:
        if graph_input.type.tensor_type.elem_type not in (TensorProto.FLOAT, 0):
            raise ValueError(
                f"{src} has a {TensorProto.DataType.Name(graph_input.type.tensor_type.elem_type)} input "
                f"{graph_input.name!r}: INT8 quantization starts from an FP32 ONNX (export with half=False)"
            )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise ValueError(f"{src} uses opset {opset}; per-channel Q/DQ needs opset >= 13: export with opset=13 or newer")


def head_prediction_convs(model: onnx.ModelProto) -> list[str]:
    """Conv nodes whose output is not fed to an activation: the raw box/class predictions and DFL.

    Structural rather than name-based, so it holds for any exporter's node names. In YOLOv8 every
    feature Conv is followed by SiLU (Sigmoid + Mul); only the head's final 1x1 convolutions and the
    DFL projection are not.
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    heads = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        users = consumers.get(node.output[0], [])
        if not any(_is_activation(user, node.output[0], consumers) for user in users):
            heads.append(node.name)
    return heads


# The class-score branch of a Detect head, as the exporter names its nodes ("/model.23/cv3.0/...",
# YOLO26's end2end copy "/model.23/one2one_cv3.0/...").
_CLASS_BRANCH = re.compile(r"(?:^|/)(?:one2one_)?cv3\.\d+/")


def depthwise_class_branch_convs(model: onnx.ModelProto) -> list[str]:
    """YOLO11/YOLO26 heads: every Conv of the class branch, when that branch is built from depth-wise
    convolutions (YOLOv8's plain 3x3 branch returns nothing and stays quantized as before).

    Measured on the shapes YOLO11n (docs/models.md): quantizing this branch costs 1.5 points of
    mAP50-95; keeping its 12 feature convolutions in float brings INT8 to within 0.2 points of FP32.
    """
    branch = [node for node in model.graph.node if node.op_type == "Conv" and _CLASS_BRANCH.search(node.name)]
    depthwise = any(attr.name == "group" and attr.i > 1 for node in branch for attr in node.attribute)
    return [node.name for node in branch] if depthwise else []


def _is_activation(node: onnx.NodeProto, tensor: str, consumers: dict[str, list[onnx.NodeProto]]) -> bool:
    if node.op_type in ACTIVATIONS:
        return True
    if node.op_type == "Sigmoid":  # SiLU exported as x * sigmoid(x)
        return any(user.op_type == "Mul" and tensor in user.input for user in consumers.get(node.output[0], []))
    return False


def quantizable_convs(
    model: onnx.ModelProto, keep_fp_nodes: Iterable[str] | str | None = "auto"
) -> list[onnx.NodeProto]:
    """The Conv nodes to quantize: constant 4-D weights, not kept in float."""
    if keep_fp_nodes == "auto":
        keep = set(head_prediction_convs(model)) | set(depthwise_class_branch_convs(model))
    elif isinstance(keep_fp_nodes, str):
        keep = {name for name in (n.name for n in model.graph.node) if re.search(keep_fp_nodes, name)}
    else:
        keep = set(keep_fp_nodes or ())
    names = {node.name for node in model.graph.node}
    unknown = keep - names
    if unknown:
        raise ValueError(f"keep_fp_nodes names nodes that are not in the model: {sorted(unknown)[:5]}")
    weights = {init.name: init for init in model.graph.initializer}
    return [
        node
        for node in model.graph.node
        if node.op_type == "Conv"
        and node.name not in keep
        and len(node.input) > 1
        and node.input[1] in weights
        and len(weights[node.input[1]].dims) == 4
    ]


# -- activation ranges ------------------------------------------------------------------------------


class _Histogram:
    """Histogram of |x| over [0, limit] that doubles its range when a larger value arrives (one pass)."""

    def __init__(self, num_bins: int = NUM_BINS) -> None:
        self.num_bins = num_bins
        self.counts = np.zeros(num_bins, dtype=np.int64)
        self.limit = 0.0

    def add(self, magnitudes: np.ndarray, peak: float) -> None:
        """Count `magnitudes` (|x|, flattened) whose maximum is `peak`."""
        if self.limit == 0.0:
            self.limit = peak if peak > 0 else 1e-8
        elif peak > self.limit:
            group = 2 ** math.ceil(math.log2(peak / self.limit))
            merged = np.zeros_like(self.counts)
            if group >= self.num_bins:
                merged[0] = self.counts.sum()
            else:
                merged[: self.num_bins // group] = self.counts.reshape(-1, group).sum(1)
            self.counts = merged
            self.limit *= group
        index = (magnitudes * np.float32(self.num_bins / self.limit)).astype(np.int32)
        np.minimum(index, self.num_bins - 1, out=index)
        self.counts += np.bincount(index, minlength=self.num_bins)

    @property
    def bin_width(self) -> float:
        return self.limit / self.num_bins

    def percentile(self, percent: float) -> float:
        cumulative = np.cumsum(self.counts)
        index = int(np.searchsorted(cumulative, cumulative[-1] * percent / 100.0))
        return (min(index, self.num_bins - 1) + 1) * self.bin_width

    def entropy_threshold(self, levels: int = INT8_MAX + 1) -> float:
        """The clip threshold minimising KL(P || Q), Q being P squeezed into `levels` bins."""
        counts = self.counts.astype(np.float64)
        best_kl, best_stop = math.inf, self.num_bins
        for stop in range(levels, self.num_bins + 1, 16):
            reference = counts[:stop].copy()
            reference[stop - 1] += counts[stop:].sum()  # clipped values land in the last bin
            if reference.sum() == 0:
                continue
            # Squeeze counts[:stop] into `levels` groups, spreading each group's total over its non-empty bins.
            part = counts[:stop]
            group = np.arange(stop) * levels // stop
            totals = np.bincount(group, weights=part, minlength=levels)
            filled = np.bincount(group, weights=part > 0, minlength=levels)
            candidate = np.where(part > 0, totals[group] / np.maximum(filled[group], 1), 0.0)
            kl = _kl_divergence(reference, candidate)
            if kl < best_kl:
                best_kl, best_stop = kl, stop
        return best_stop * self.bin_width


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    p = p / p.sum()
    q_sum = q.sum()
    if q_sum == 0:
        return math.inf
    q = q / q_sum
    mask = p > 0
    if np.any(q[mask] == 0):
        return math.inf
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def calibrate_activations(
    model: onnx.ModelProto,
    tensors: list[str],
    calib: CalibrationSet,
    *,
    method: str = DEFAULT_METHOD,
    percentile: float = DEFAULT_PERCENTILE,
) -> dict[str, float]:
    """Per-tensor clipping thresholds (|x| max after calibration) for `tensors`, from ORT on `calib`."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for name in tensors:
        if name not in existing:
            probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    peaks = dict.fromkeys(tensors, 0.0)
    histograms = {name: _Histogram() for name in tensors} if method != "minmax" else {}
    seen = 0
    fixed_batch = session.get_inputs()[0].shape[0]
    step = fixed_batch if isinstance(fixed_batch, int) and fixed_batch > 0 else calib.batch
    for batch in calib.batches():
        for start in range(0, len(batch) - step + 1, step):  # a static-batch ONNX takes `step` images at a time
            outputs = session.run(tensors, {input_name: batch[start : start + step]})
            for name, values in zip(tensors, outputs):
                magnitudes = np.abs(values.ravel())
                peak = float(magnitudes.max(initial=0.0))
                peaks[name] = max(peaks[name], peak)
                if histograms:
                    histograms[name].add(magnitudes, peak)
            seen += 1
    if seen == 0:
        raise ValueError(f"the calibration set gave no batches ({len(calib)} images, batch={calib.batch})")
    if method == "minmax":
        return peaks
    if method == "percentile":
        return {name: min(peaks[name], histograms[name].percentile(percentile)) for name in tensors}
    return {name: min(peaks[name], histograms[name].entropy_threshold()) for name in tensors}


# -- graph rewriting --------------------------------------------------------------------------------


def quantize_weights(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric INT8: (int8 weights, float32 scale per channel)."""
    amax = np.abs(weights.reshape(weights.shape[0], -1)).max(axis=1)
    scale = np.where(amax > 0, amax / INT8_MAX, 1.0).astype(np.float32)
    shaped = scale.reshape(-1, *([1] * (weights.ndim - 1)))
    return np.clip(np.rint(weights / shaped), -INT8_MAX, INT8_MAX).astype(np.int8), scale


def insert_qdq(model: onnx.ModelProto, convs: list[onnx.NodeProto], amax: dict[str, float]) -> onnx.ModelProto:
    """A copy of `model` with Q/DQ on the activation input and weights of each Conv in `convs`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    initializers = {init.name: init for init in graph.initializer}
    targets = {node.name for node in convs}
    weight_users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            weight_users[name] = weight_users.get(name, 0) + 1

    new_nodes: list[onnx.NodeProto] = []
    new_inits: list[TensorProto] = []
    taken = {name for node in graph.node for name in (*node.input, *node.output)} | set(initializers)

    def unique(stem: str) -> str:
        """A name prefix no existing tensor starts with (sanitised names could collide)."""
        candidate, index = stem, 1
        while any(name.startswith(candidate + "_") for name in taken):
            candidate, index = f"{stem}_{index}", index + 1
        taken.add(candidate + "_")
        return candidate

    dequantized: dict[str, str] = {}  # float tensor → its Q/DQ'd copy (shared by every Conv reading it)

    def activation_qdq(name: str) -> str:
        if name not in dequantized:
            scale = max(amax[name], 1e-8) / INT8_MAX
            stem = unique(_safe(name))
            new_inits.append(numpy_helper.from_array(np.array(scale, dtype=np.float32), f"{stem}_act_scale"))
            new_inits.append(numpy_helper.from_array(np.array(0, dtype=np.int8), f"{stem}_act_zero"))
            q, dq = f"{stem}_act_q", f"{stem}_act_dq"
            args = [f"{stem}_act_scale", f"{stem}_act_zero"]
            new_nodes.append(helper.make_node("QuantizeLinear", [name, *args], [q], name=f"{stem}_QuantizeLinear"))
            new_nodes.append(helper.make_node("DequantizeLinear", [q, *args], [dq], name=f"{stem}_DequantizeLinear"))
            dequantized[name] = dq
        return dequantized[name]

    def weight_dq(node: onnx.NodeProto) -> str:
        name = node.input[1]
        stem = unique(_safe(f"{node.name}_weight"))
        values, scale = quantize_weights(numpy_helper.to_array(initializers[name]).astype(np.float32))
        new_inits.append(numpy_helper.from_array(values, f"{stem}_int8"))
        new_inits.append(numpy_helper.from_array(scale, f"{stem}_scale"))
        new_inits.append(numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{stem}_zero"))
        dq = f"{stem}_dq"
        new_nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{stem}_int8", f"{stem}_scale", f"{stem}_zero"],
                [dq],
                name=f"{stem}_Dequant",
                axis=0,
            )
        )
        weight_users[name] -= 1
        return dq

    for node in graph.node:
        if node.name in targets:
            node.input[0] = activation_qdq(node.input[0])
            node.input[1] = weight_dq(node)
        new_nodes.append(node)

    unused = {name for name, users in weight_users.items() if users == 0 and name in initializers}
    kept = [init for init in graph.initializer if init.name not in unused]
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.]", "_", name).strip("_") or "tensor"
