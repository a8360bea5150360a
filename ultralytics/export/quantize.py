"""Our post-training INT8 quantization: an FP32 ONNX in, a Q/DQ ("explicit quantization") ONNX out.

TensorRT 11 removed implicit quantization (calibrators), so an INT8 engine must be built from an ONNX
whose QuantizeLinear/DequantizeLinear nodes carry the scales. Placement follows NVIDIA's explicit-
quantization guidance (TensorRT developer guide, "Explicit Quantization: Q/DQ Layer-Placement
Recommendations") and what NVIDIA Model Optimizer does on the same model (docs/int8.md compares the two
node by node):
- every feature Conv: activation input (per-tensor, symmetric) and weights (per output channel, axis 0,
  symmetric, stored as INT8);
- residual Adds: both inputs, so TensorRT fuses the add into the INT8 conv before it instead of leaving
  a float add between INT8 layers (under strong typing nothing else would make it INT8);
- MaxPool (SPPF) and Resize (neck upsampling) inputs, which then run in INT8;
- Concat: every quantized input of one Concat shares one scale, so the concat stays a free INT8 copy
  rather than a requantization.
The detection head's prediction convs and everything after them stay in float (our measurement; Model
Optimizer quantizes them too). The same file runs in ONNX Runtime on the CPU, where we measure its
accuracy (docs/int8.md). NVIDIA Model Optimizer is a study tool here, never a dependency.

Activation ranges come from running the model in ONNX Runtime on the calibration set with each Conv
input exposed as an extra output:
- "minmax": the largest |x| seen (no clipping; one outlier widens every step),
- "percentile": the |x| below which `percentile` % of values fall,
- "entropy": the clipping threshold whose 128-level histogram is closest (KL divergence) to the full one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tqdm import tqdm

from ultralytics.export.calibration import CalibrationSet
from ultralytics.export.graph_walk import consumer_relation, downstream, reaches
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
    float16: bool = False,
) -> Path:
    """Write a Q/DQ INT8 copy of the FP32 ONNX `src` to `dst` and return `dst`.

    `keep_fp_nodes`: Conv node names left unquantized. "auto" keeps the detection head's prediction
    convolutions (every Conv not followed by an activation: the last Conv of each cv2/cv3 branch and
    DFL) and, for YOLO11/YOLO26, the depth-wise class branch, which measurement shows are the layers
    INT8 hurts; another string is a regular expression
    matched against node names; None or [] quantizes every Conv.
    `float16`: make every float part FP16 (scales included, opset >= 19, FP32 graph inputs/outputs), for
    strongly typed TensorRT (11.x), where the ONNX's types alone decide each layer's precision.
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
    targets = activation_targets(model, convs)
    activations = sorted({name for inputs in targets.values() for name in inputs})
    # Tensors no quantized Conv reads (residual-add inputs, pooled and upsampled features) keep their full
    # range: clipping them costs more than it gains (measured, docs/int8.md).
    conv_inputs = {node.input[0] for node in convs}
    unclipped = [name for name in activations if name not in conv_inputs]
    amax = calibrate_activations(model, activations, calib, method=method, percentile=percentile, unclipped=unclipped)
    amax = share_concat_scales(model, amax)
    quantized = insert_qdq(model, convs, amax, targets)
    if float16:
        quantized = float16_float_parts(quantized, keep_fp32=_head_and_decode(quantized, convs))
    onnx.checker.check_model(quantized)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(quantized, str(dst))
    kept = sum(1 for n in model.graph.node if n.op_type == "Conv") - len(convs)
    others = len(targets) - len(convs)
    LOGGER.info(
        f"INT8 Q/DQ: {len(convs)} Conv layers and {others} Add/MaxPool/Resize/Concat nodes quantized ({method}, "
        f"{len(calib)} images), {kept} Conv kept in float → {dst}"
    )
    return dst


FLOAT16_QDQ_OPSET = 19  # the first opset whose QuantizeLinear/DequantizeLinear take FP16 scales


def float16_float_parts(model: onnx.ModelProto, keep_fp32: set[str] = frozenset()) -> onnx.ModelProto:
    """The Q/DQ model with FP16 everywhere it is float (weights, scales, activations), FP32 at its inputs
    and outputs: what Model Optimizer's `high_precision_dtype="fp16"` makes, and what lets TensorRT 11
    (strongly typed) run the parts between the Q/DQ pairs in FP16 instead of FP32. Nodes named in
    `keep_fp32` (the float head and its decode) compute in FP32 behind Casts."""
    from ultralytics.export.onnx import convert_to_fp16, keep_in_fp32

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for opset in out.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version < FLOAT16_QDQ_OPSET:
            opset.version = FLOAT16_QDQ_OPSET
    out.ir_version = max(out.ir_version, 9)
    # ops that have no FP16 form (e.g. the anchor Range of YOLO11/YOLO26 heads) stay FP32 as in any FP16 export
    return convert_to_fp16(out, keep_io_types=True, keep_fp32=lambda node: node.name in keep_fp32 or keep_in_fp32(node))


def _head_and_decode(model: onnx.ModelProto, convs: list[onnx.NodeProto]) -> set[str]:
    """Names of the float head Convs (those not quantized) and every node after them (the decode)."""
    quantized = {node.name for node in convs}

    def is_head(node: onnx.NodeProto) -> bool:
        return node.op_type == "Conv" and node.name not in quantized

    after = downstream(model.graph.node, _input_names, _output_names, is_head)
    return {node.name for node in model.graph.node if is_head(node)} | {node.name for node in after}


def _input_names(node: onnx.NodeProto) -> Iterable[str]:
    return node.input


def _output_names(node: onnx.NodeProto) -> Iterable[str]:
    return node.output


def _onnx_users(nodes: list[onnx.NodeProto]) -> Callable[[onnx.NodeProto], list[onnx.NodeProto]]:
    """The ONNX adapter of `graph_walk`: node → the nodes of `nodes` reading its outputs."""
    return consumer_relation(nodes, _input_names, _output_names)


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
    """Conv nodes whose output is not fed to an activation and after which no activated Conv follows:
    the raw box/class predictions and DFL.

    Structural rather than name-based, so it holds for any exporter's node names. In YOLOv8 every
    feature Conv is followed by SiLU (Sigmoid + Mul); only the head's final 1x1 convolutions and the
    DFL projection are not. An activation-less Conv in the body (a projection whose output goes on
    into feature convs) is not a head conv.
    """
    nodes = list(model.graph.node)
    users = _onnx_users(nodes)

    def is_feature_conv(node: onnx.NodeProto) -> bool:
        return node.op_type == "Conv" and any(_is_activation(u, node.output[0], users) for u in users(node))

    reaches_feature = reaches(nodes, users, is_feature_conv)
    return [
        node.name
        for node, feeds_features in zip(nodes, reaches_feature)
        if node.op_type == "Conv" and not is_feature_conv(node) and not feeds_features
    ]


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


def _is_activation(node: onnx.NodeProto, tensor: str, users: Callable[[onnx.NodeProto], list[onnx.NodeProto]]) -> bool:
    """Whether `node`, reading `tensor`, activates it (SiLU counts: Sigmoid whose output multiplies `tensor`)."""
    if node.op_type in ACTIVATIONS:
        return True
    if node.op_type == "Sigmoid":  # SiLU exported as x * sigmoid(x)
        return any(user.op_type == "Mul" and tensor in user.input for user in users(node))
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


# Ops whose float inputs are quantized besides Conv, when they lie on the feature path.
QUANTIZED_INPUT_OPS = {"Add": (0, 1), "MaxPool": (0,), "Resize": (0,)}


def activation_targets(model: onnx.ModelProto, convs: list[onnx.NodeProto]) -> dict[str, list[str]]:
    """Node name → the activation tensors to quantize at its inputs.

    Conv: input 0 of every quantized Conv. Add / MaxPool / Resize: their float inputs, only on the
    feature path (the node's output reaches a quantized Conv), so the head's box decode stays in float.
    Concat: those of its inputs already quantized for another consumer.
    """
    initializers = {init.name for init in model.graph.initializer}
    constants = {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    quantized = {node.name for node in convs}
    nodes = list(model.graph.node)
    feeds_quantized = reaches(  # through anything but another Conv (that one starts its own quantized input)
        nodes,
        _onnx_users(nodes),
        is_target=lambda user: user.name in quantized,
        passes_through=lambda user: user.op_type != "Conv",
    )
    targets = {node.name: [node.input[0]] for node in convs}
    for node, on_feature_path in zip(nodes, feeds_quantized):
        indices = QUANTIZED_INPUT_OPS.get(node.op_type)
        if indices is None or not on_feature_path:
            continue
        inputs = [node.input[i] for i in indices if i < len(node.input) and node.input[i]]
        if any(name in initializers or name in constants for name in inputs):
            continue  # an Add with a constant is arithmetic, not a residual connection
        targets[node.name] = inputs
    # Concat reads the shared Q/DQ copy of each input quantized for another consumer (one scale, see
    # share_concat_scales), as Model Optimizer wires it; its float inputs stay float.
    quantized_tensors = {name for inputs in targets.values() for name in inputs}
    for node, on_feature_path in zip(nodes, feeds_quantized):
        if node.op_type == "Concat" and on_feature_path:
            shared = [name for name in node.input if name in quantized_tensors]
            if shared:
                targets[node.name] = shared
    return targets


def share_concat_scales(model: onnx.ModelProto, amax: dict[str, float]) -> dict[str, float]:
    """One scale for all quantized inputs of a Concat (the largest range among them).

    With equal input scales TensorRT can write each input straight into its slice of the INT8 output;
    different scales need a requantizing copy. Tensors meeting in several Concats merge transitively.
    """
    parent = {name: name for name in amax}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for node in model.graph.node:
        if node.op_type != "Concat":
            continue
        members = [name for name in node.input if name in amax]
        for other in members[1:]:
            parent[root(other)] = root(members[0])
    group_max: dict[str, float] = {}
    for name, value in amax.items():
        group_max[root(name)] = max(group_max.get(root(name), 0.0), value)
    return {name: group_max[root(name)] for name in amax}


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
    unclipped: Iterable[str] = (),
) -> dict[str, float]:
    """Per-tensor clipping thresholds (|x| max after calibration) for `tensors`, from ORT on `calib`.

    `unclipped` tensors get their largest |x| whatever the method (residual-path tensors, see quantize_onnx).
    """
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
    batches = tqdm(
        calib.batches(), total=calib.num_batches, desc="INT8 quantization: calibrating", unit="batch", leave=False
    )
    for batch in batches:
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
    keep = set(unclipped)
    if method == "percentile":
        clip = {name: histograms[name].percentile(percentile) for name in tensors if name not in keep}
    else:
        clip = {name: histograms[name].entropy_threshold() for name in tensors if name not in keep}
    return {name: min(peaks[name], clip.get(name, peaks[name])) for name in tensors}


# -- graph rewriting --------------------------------------------------------------------------------


def quantize_weights(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric INT8: (int8 weights, float32 scale per channel)."""
    amax = np.abs(weights.reshape(weights.shape[0], -1)).max(axis=1)
    scale = np.where(amax > 0, amax / INT8_MAX, 1.0).astype(np.float32)
    shaped = scale.reshape(-1, *([1] * (weights.ndim - 1)))
    return np.clip(np.rint(weights / shaped), -INT8_MAX, INT8_MAX).astype(np.int8), scale


def insert_qdq(
    model: onnx.ModelProto,
    convs: list[onnx.NodeProto],
    amax: dict[str, float],
    targets: dict[str, list[str]] | None = None,
) -> onnx.ModelProto:
    """A copy of `model` with Q/DQ on the weights of each Conv in `convs` and on the activation inputs
    `targets` names per node (default: input 0 of each Conv). One Q/DQ pair per tensor, shared."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    initializers = {init.name: init for init in graph.initializer}
    conv_names = {node.name for node in convs}
    if targets is None:
        targets = {node.name: [node.input[0]] for node in convs}
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
        wanted = targets.get(node.name, ())
        for index, name in enumerate(node.input):
            if name in wanted:
                node.input[index] = activation_qdq(name)
        if node.name in conv_names:
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
