"""NMS inside the exported graph (`nms=True`): raw head output → `(batch, max_det, 6)` final detections.

Upstream's `nms=True` output, rows `x1, y1, x2, y2, score, class` sorted by score, zero rows after the
last detection. It is built from standard ONNX ops only, so ONNX Runtime runs it and TensorRT's ONNX
parser maps `NonMaxSuppression` to its own `INMSLayer` (no plugin, no EfficientNMS). The network-API
route (`export/network_builder.py`) builds the same arithmetic with `add_nms`.

Semantics are those of the predictor's NMS (`utils/ops.non_max_suppression`, single label): each box
keeps its best class, boxes scoring above `conf` enter a per-class NMS (`agnostic`: one class for all),
at most `max_det` survive per image, highest scores first.

Why the glue looks like this: the NMS op returns a data-dependent list of (batch, class, box) rows, in an
order ONNX and TensorRT define differently. The list is scattered back into a dense (batch, box, class)
score tensor (kept scores, zeros elsewhere), which a fixed `TopK(max_det)` then reads, so the result
neither depends on the op's row order nor has a data-dependent shape. The dense tensor is padded with
`ceil(max_det / classes)` zero boxes so that TopK always has `max_det` candidates, even for tiny inputs;
flat index i is box `i // classes`, class `i % classes`. Rows whose score is 0 (padding) are zeroed.
The NMS runs in FP32 (ONNX Runtime's NonMaxSuppression is FP32 only); the output keeps the graph's
output dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# (x, y, w, h) @ M = (x1, y1, x2, y2): x1 = x - w/2, x2 = x + w/2 (the multiplies by 0.5 are exact).
XYWH_TO_XYXY = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]], np.float32)


@dataclass(frozen=True)
class NmsSettings:
    """The thresholds baked into an `nms=True` export (upstream's defaults: conf 0.25, iou 0.7, 300)."""

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    agnostic: bool = False

    def classes_in_nms(self, nc: int) -> int:
        """How many score columns the NMS sees: 1 when class-agnostic, else every class."""
        return 1 if self.agnostic else int(nc)

    def padding(self, nc: int) -> int:
        """Zero boxes appended so the final TopK always has at least max_det candidates."""
        return math.ceil(self.max_det / self.classes_in_nms(nc))


def nms_settings(args: Any) -> NmsSettings | None:
    """The NMS settings from export arguments (`nms`, `conf`, `iou`, `max_det`, `agnostic_nms`), None
    when `nms` is off; bad values raise a one-line ValueError that names the argument."""
    if not _flag(getattr(args, "nms", False), "nms"):
        return None
    conf = getattr(args, "conf", None)
    conf = 0.25 if conf in (None, "") else conf
    iou = getattr(args, "iou", None)
    iou = 0.7 if iou in (None, "") else iou
    max_det = getattr(args, "max_det", None)
    max_det = 300 if max_det in (None, "") else max_det
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0.0 <= float(conf) < 1.0:
        raise ValueError(f"conf={conf!r} is not valid for nms=True; pass a score threshold in [0, 1), e.g. conf=0.25")
    if isinstance(iou, bool) or not isinstance(iou, (int, float)) or not 0.0 <= float(iou) <= 1.0:
        raise ValueError(f"iou={iou!r} is not valid for nms=True; pass an IoU threshold in [0, 1], e.g. iou=0.7")
    if isinstance(max_det, bool) or not isinstance(max_det, (int, np.integer)) or not 1 <= int(max_det) <= 3840:
        raise ValueError(
            f"max_det={max_det!r} is not valid for nms=True; pass 1..3840 (TensorRT's TopK limit), e.g. max_det=300"
        )
    agnostic = _flag(getattr(args, "agnostic_nms", False), "agnostic_nms")
    return NmsSettings(conf=float(conf), iou=float(iou), max_det=int(max_det), agnostic=agnostic)


def _flag(value: Any, name: str) -> bool:
    if value in (None, "", False, 0):
        return False
    if value is True or value == 1:
        return True
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{name}={value!r} is not valid; pass {name}=True or {name}=False")


def check_nms_model(model: Any) -> None:
    """Refuse models whose head already is end-to-end (YOLO26's one-to-one head needs no NMS)."""
    head = model.model[-1] if hasattr(model, "model") and len(getattr(model, "model", [])) else None
    if head is not None and bool(getattr(head, "end2end", False)):
        raise ValueError(
            "nms=True adds NMS to models that need it; this model's head is end-to-end (NMS-free) already. "
            "Export it without nms=True"
        )


# ---------------------------------------------------------------------------------------- ONNX
# GatherND's batch_dims (the per-image gather of the kept boxes) arrived in opset 12.
MIN_NMS_OPSET = 12


def append_nms(model, settings: NmsSettings, output_name: str = "output0"):
    """Return a copy of ONNX `model` whose output `output_name` (B, 4 + nc, anchors) is replaced by the
    NMS subgraph's (B, max_det, 6) of the same dtype and name."""
    import copy

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_NMS_OPSET:
        raise ValueError(
            f"nms=True needs opset {MIN_NMS_OPSET} or newer, got opset={opset}; pass opset={MIN_NMS_OPSET}+"
        )
    model = copy.deepcopy(model)
    graph = model.graph
    outputs = [o for o in graph.output if o.name == output_name]
    if not outputs:
        raise ValueError(f"nms=True: the graph has no output {output_name!r} to add NMS to")
    out = outputs[0]
    dims = out.type.tensor_type.shape.dim
    if len(dims) != 3 or not dims[1].HasField("dim_value") or dims[1].dim_value <= 4:
        raise ValueError(f"nms=True needs a (batch, 4 + classes, anchors) output, {output_name!r} is not one")
    nc = int(dims[1].dim_value) - 4
    elem = out.type.tensor_type.elem_type
    batch_dim = copy.deepcopy(dims[0])

    raw = "nms/raw"
    for node in graph.node:
        node.output[:] = [raw if o == output_name else o for o in node.output]
        node.input[:] = [raw if i == output_name else i for i in node.input]

    nodes: list = []
    inits: list = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array), f"nms/const/{name}"))
        return f"nms/const/{name}"

    def node(op: str, inputs: list[str], name: str, n_out: int = 1, **attrs) -> list[str]:
        outs = [f"nms/{name}"] if n_out == 1 else [f"nms/{name}_{i}" for i in range(n_out)]
        nodes.append(helper.make_node(op, inputs, outs, name=f"nms/{name}", **attrs))
        return outs

    c_nms = settings.classes_in_nms(nc)
    pad = settings.padding(nc)
    x = raw if elem == TensorProto.FLOAT else node("Cast", [raw], "raw_fp32", to=TensorProto.FLOAT)[0]
    t = node("Transpose", [x], "anchors_last", perm=[0, 2, 1])[0]  # (B, A, 4 + nc)
    xywh = node("Slice", [t, const("s0", [0]), const("e4", [4]), const("ax2", [2])], "xywh")[0]
    scores = node("Slice", [t, const("s4", [4]), const("end", [4 + nc]), "nms/const/ax2"], "scores")[0]
    xyxy = node("MatMul", [xywh, const("xywh_to_xyxy", XYWH_TO_XYXY)], "xyxy")[0]  # (B, A, 4)
    best, cls = node("TopK", [scores, const("k1", [1])], "best", n_out=2, axis=2)  # (B, A, 1) each
    if settings.agnostic:
        kept_scores = best  # (B, A, 1)
        rows = node("Concat", [xyxy, node("Cast", [cls], "cls_f", to=TensorProto.FLOAT)[0]], "rows", axis=2)[0]
    else:  # only the best class keeps its score: per-class NMS of single-label boxes
        onehot = node("Equal", [cls, const("class_ids", np.arange(nc, dtype=np.int64).reshape(1, 1, nc))], "onehot")
        kept_scores = node("Mul", [scores, node("Cast", onehot, "onehot_f", to=TensorProto.FLOAT)[0]], "single")[0]
        rows = xyxy
    width = 5 if settings.agnostic else 4
    by_class = node("Transpose", [kept_scores], "by_class", perm=[0, 2, 1])[0]  # (B, C, A), ONNX's layout
    selected = node(
        "NonMaxSuppression",
        [
            xyxy,
            by_class,
            const("max_out", np.array([settings.max_det], np.int64)),
            const("iou", np.array([settings.iou], np.float32)),
            const("conf", np.array([settings.conf], np.float32)),
        ],
        "selected",
        center_point_box=0,
    )[0]  # (K, 3): batch, class, box
    bnc = node("Gather", [selected, const("to_bnc", np.array([0, 2, 1], np.int64))], "bnc", axis=1)[0]
    picked = node("GatherND", [kept_scores, bnc], "picked")[0]  # (K,)
    zeros = node("Mul", [kept_scores, const("zero", np.array(0, np.float32))], "zeros")[0]
    dense = node("ScatterND", [zeros, bnc, picked], "dense")[0]  # (B, A, C): kept scores, 0 elsewhere
    corner = node("Slice", [dense, const("s00", [0, 0]), const("e11", [1, 1]), const("ax12", [1, 2])], "corner")
    zero_b = node("Mul", [corner[0], "nms/const/zero"], "zb")  # (B, 1, 1) zeros: pads follow the dynamic batch
    pad_s = node("Add", [zero_b[0], const("pad_s", np.zeros((1, pad, c_nms), np.float32))], "pad_scores")[0]
    pad_r = node("Add", [zero_b[0], const("pad_r", np.zeros((1, pad, width), np.float32))], "pad_rows")[0]
    dense = node("Concat", [dense, pad_s], "dense_padded", axis=1)[0]
    rows = node("Concat", [rows, pad_r], "rows_padded", axis=1)[0]
    flat = node("Reshape", [dense, const("flat", [0, -1])], "flat")[0]
    values, index = node("TopK", [flat, const("k", [settings.max_det])], "top", n_out=2, axis=1)  # (B, max_det)
    box = node("Div", [index, const("c", np.array(c_nms, np.int64))], "box")[0]
    gathered = node(
        "GatherND", [rows, node("Reshape", [box, const("col", [0, -1, 1])], "box_idx")[0]], "gathered", batch_dims=1
    )
    xyxy_out = node("Slice", [gathered[0], "nms/const/s0", "nms/const/e4", "nms/const/ax2"], "xyxy_out")[0]
    if settings.agnostic:
        cls_out = node("Slice", [gathered[0], "nms/const/e4", const("e5", [5]), "nms/const/ax2"], "cls_out")[0]
    else:
        cls_i = node("Sub", [index, node("Mul", [box, "nms/const/c"], "box_times_c")[0]], "cls_i")[0]
        cls_out = node(
            "Reshape", [node("Cast", [cls_i], "cls_f", to=TensorProto.FLOAT)[0], "nms/const/col"], "cls_out"
        )[0]
    score_out = node("Reshape", [values, "nms/const/col"], "score_out")[0]
    valid = node("Cast", node("Greater", [score_out, "nms/const/zero"], "is_kept"), "valid", to=TensorProto.FLOAT)[0]
    joined = node("Concat", [xyxy_out, score_out, cls_out], "joined", axis=2)[0]
    if elem == TensorProto.FLOAT:
        nodes.append(helper.make_node("Mul", [joined, valid], [output_name], name="nms/output"))
    else:
        final = node("Mul", [joined, valid], "final")[0]
        nodes.append(helper.make_node("Cast", [final], [output_name], name="nms/output", to=elem))

    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    del graph.output[:]
    shape = [batch_dim.dim_param or batch_dim.dim_value or "batch", settings.max_det, 6]
    graph.output.append(helper.make_tensor_value_info(output_name, elem, shape))
    for value in list(graph.value_info):
        if value.name == output_name:
            graph.value_info.remove(value)
    return onnx.shape_inference.infer_shapes(model)
