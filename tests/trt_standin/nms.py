"""INMSLayer with TensorRT's documented semantics, and the layers NMS glue needs (TopK, Scatter, Gather modes).

Each rule cites the NVIDIA page it models:
- [NMS-API] nvinfer1::INMSLayer class reference (TensorRT 8.6.1 and 10.x C++ API):
  https://docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-861/api/c_api/classnvinfer1_1_1_i_n_m_s_layer.html
- [NMS-OP] the NMS operator page: https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/operators/NMS.html
- [TOPK-OP] https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/operators/TopK.html
- [SCATTER-OP] https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/operators/Scatter.html
- [GATHER-OP] https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/operators/Gather.html
- [ONNX-OPS] onnx-tensorrt's operators.md (NonMaxSuppression is imported as INMSLayer, scores transposed).

Execution stays ONNX Runtime: INMSLayer emits ONNX's NonMaxSuppression plus the nodes that turn ONNX's
behaviour into TensorRT's (scores layout, TopK box limit, default thresholds, output order, index type,
the NumOutputBoxes output). Not modelled: per-class boxes [B, N, C, 4] (refused at build).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from . import network as network_module
from .common import TRT_TO_ONNX
from .layers import IGatherLayer as _PlainGatherLayer
from .layers import LayerBuildError, NetworkWithLayers, _Layer, _prop

# [NMS-OP] "The TopK box limit must be less than or equal to {2000 for SM 5.3 and 6.2 devices, 5000
# otherwise}", default the same: the stand-in models a desktop GPU.
TOPK_BOX_LIMIT = 5000
# [TOPK-OP] "K ... must be less than or equal to 3840" (TensorRT 8.6 - 10.x).
MAX_TOPK_K = 3840


def _indices_type(layer):
    """INT32 unless the layer's `indices_type` (10.16+) asks for INT64 ([NMS-API] SelectedIndices type)."""
    data_type = type(layer)._ctx.classes["DataType"]
    chosen = layer._p.get("indices_type")
    return chosen if chosen is not None else data_type.INT32


def _scalar(layer, initializers: list, value, dtype, stem: str) -> str:
    """A 0D initializer (`_Layer._const` makes arrays at least 1D)."""
    name = layer._network._fresh_name(f"{layer._name}_{stem}")
    initializers.append(numpy_helper.from_array(np.array(value, dtype), name))
    return name


class INMSLayer(_Layer):
    """[NMS-API] inputs: Boxes [B, N, 4] (same boxes for every class), Scores [B, N, C], MaxOutputBoxesPerClass
    (0D INT32), optional IoUThreshold (input 3) and ScoreThreshold (input 4), 0D FLOAT, default 0.0f.
    Outputs: SelectedIndices [NumOutputBoxes, 3] rows (batchIndex, classIndex, boxIndex), sorted by increasing
    batchIndex then decreasing score; NumOutputBoxes, a 0D INT32."""

    _type_name = "NMS"
    topk_box_limit = _prop("limit", "int")
    bounding_box_format = _prop("fmt")

    @property
    def indices_type(self):
        return _indices_type(self)

    @indices_type.setter
    def indices_type(self, value):
        self._p["indices_type"] = value

    def _output_shape(self, index):
        return [-1, 3] if index == 0 else []  # data-dependent row count [NMS-API]

    def _output_dtype(self, index):
        return _indices_type(self) if index == 0 else type(self)._ctx.classes["DataType"].INT32

    def _check(self) -> None:
        boxes, scores, max_out = self._inputs[0], self._inputs[1], self._inputs[2]
        box_rank = len(list(boxes.shape))
        if box_rank == 4:
            raise LayerBuildError("INMSLayer: per-class boxes [B, N, C, 4] are not modelled by the stand-in")
        if box_rank != 3 or len(list(scores.shape)) != 3:
            raise LayerBuildError(
                f"INMSLayer: Boxes must be [B, N, 4] and Scores [B, N, C] [NMS-API], got {list(boxes.shape)} "
                f"and {list(scores.shape)}"
            )
        b_shape, s_shape = list(boxes.shape), list(scores.shape)
        if b_shape[-1] not in (4, -1) or any(a != b and a >= 0 and b >= 0 for a, b in zip(b_shape[:2], s_shape[:2])):
            raise LayerBuildError(f"INMSLayer: Boxes {b_shape} and Scores {s_shape} disagree on [B, N] or the 4")
        if boxes.dtype.name not in ("FLOAT", "HALF") or scores.dtype != boxes.dtype:
            raise LayerBuildError(
                f"INMSLayer: Boxes and Scores must both be FLOAT or both HALF [NMS-API], got {boxes.dtype.name} "
                f"and {scores.dtype.name}"
            )
        if max_out.dtype.name != "INT32" or list(max_out.shape):
            raise LayerBuildError(
                f"INMSLayer: MaxOutputBoxesPerClass must be a 0D INT32 tensor [NMS-API], got {max_out.dtype.name} "
                f"{list(max_out.shape)}"
            )
        for index, what in ((3, "IoUThreshold"), (4, "ScoreThreshold")):
            tensor = self._inputs[index] if len(self._inputs) > index else None
            if tensor is not None and (tensor.dtype.name != "FLOAT" or list(tensor.shape)):
                raise LayerBuildError(f"INMSLayer: {what} must be a 0D FLOAT tensor [NMS-API]")
        iou = self._inputs[3] if len(self._inputs) > 3 else None
        constant = getattr(getattr(iou, "_producer", None), "_p", {}).get("weights") if iou is not None else None
        if constant is not None:
            value = float(np.asarray(constant.numpy()).reshape(-1)[0])
            if not 0.0 <= value <= 1.0:
                raise LayerBuildError(f"INMSLayer: IoUThreshold {value} is outside [0, 1] [NMS-API]")
        if not 1 <= self._p["limit"] <= TOPK_BOX_LIMIT:
            raise LayerBuildError(
                f"INMSLayer: topk_box_limit {self._p['limit']} must be in 1..{TOPK_BOX_LIMIT} [NMS-OP]"
            )

    def _emit(self, nodes, initializers):
        self._check()
        fresh = self._network._fresh_name
        boxes, scores, max_out = (t._onnx_name for t in self._inputs[:3])
        if self._inputs[1].dtype.name == "HALF":  # ONNX Runtime's NonMaxSuppression computes in FP32 only
            boxes32, scores32 = fresh("nboxes32"), fresh("nscores32")
            nodes.append(helper.make_node("Cast", [boxes], [boxes32], to=TensorProto.FLOAT))
            nodes.append(helper.make_node("Cast", [scores], [scores32], to=TensorProto.FLOAT))
            boxes, scores = boxes32, scores32
        by_class = fresh("nms_by_class")
        nodes.append(helper.make_node("Transpose", [scores], [by_class], perm=[0, 2, 1]))  # ONNX wants [B, C, N]
        # [NMS-API] "Per batch item, boxes are initially sorted by their scores without regard to class. Only
        # boxes up to a maximum of the TopK limit are considered": keep the `limit` best (box, class) scores.
        flat, k, n_flat, kth, below, limited = (fresh(s) for s in ("nf", "nk", "nn", "kth", "blw", "lim"))
        shape = fresh("nshape")
        nodes += [
            helper.make_node(
                "Reshape", [by_class, self._const(initializers, np.array([0, -1], np.int64), "f")], [flat]
            ),
            helper.make_node("Shape", [flat], [shape]),
            helper.make_node(
                "Slice", [shape, *(self._const(initializers, np.array([v], np.int64), "s") for v in (1, 2))], [n_flat]
            ),
            helper.make_node(
                "Min", [n_flat, self._const(initializers, np.array([self._p["limit"]], np.int64), "lim")], [k]
            ),
        ]
        values, order = fresh("ntv"), fresh("nti")
        nodes.append(helper.make_node("TopK", [flat, k], [values, order], axis=1))
        last = self._const(initializers, np.array([-1], np.int64), "last")
        nodes += [
            helper.make_node("Gather", [values, last], [kth], axis=1),  # (B, 1): the limit-th best score
            helper.make_node(
                "Reshape", [kth, self._const(initializers, np.array([-1, 1, 1], np.int64), "r")], [kth + "_r"]
            ),
            helper.make_node("Less", [by_class, kth + "_r"], [below]),
            helper.make_node(
                "Where", [below, _scalar(self, initializers, -np.inf, np.float32, "ninf"), by_class], [limited]
            ),
        ]
        count64 = fresh("nmax64")
        nodes.append(helper.make_node("Cast", [max_out], [count64], to=TensorProto.INT64))
        thresholds = []
        for index in (3, 4):  # [NMS-API]: both optional, default 0.0f; a score must *exceed* its threshold
            tensor = self._inputs[index] if len(self._inputs) > index else None
            thresholds.append(
                tensor._onnx_name if tensor is not None else _scalar(self, initializers, 0.0, np.float32, "thr")
            )
        center = int(self._p["fmt"].name == "CENTER_SIZES")  # [NMS-OP] fmt: CORNER_PAIRS (default) or CENTER_SIZES
        selected = fresh("nsel")
        nodes.append(
            helper.make_node(
                "NonMaxSuppression", [boxes, limited, count64, *thresholds], [selected], center_point_box=center
            )
        )
        # [NMS-API] "sorted in order of increasing batchIndex and then in order of decreasing score within each
        # batchIndex" (ONNX orders by class within a batch): sort on batch * span - score.
        picked, key, span, rows = fresh("nps"), fresh("nkey"), fresh("nspan"), fresh("nrows")
        batch_f, scaled, srt, idx = fresh("nb"), fresh("nbs"), fresh("nsrt"), fresh("nidx")
        nodes += [
            helper.make_node("GatherND", [limited, selected], [picked]),
            helper.make_node("Abs", [picked], [picked + "_abs"]),
            helper.make_node("ReduceMax", [picked + "_abs"], [span + "_m"], keepdims=0),
            helper.make_node("Add", [span + "_m", _scalar(self, initializers, 1.0, np.float32, "one")], [span + "_1"]),
            helper.make_node("Max", [span + "_1", _scalar(self, initializers, 1.0, np.float32, "one")], [span]),
            helper.make_node("Mul", [span, _scalar(self, initializers, 2.0, np.float32, "two")], [span + "_2"]),
            helper.make_node(
                "Gather", [selected, _scalar(self, initializers, 0, np.int64, "b")], [batch_f + "_i"], axis=1
            ),
            helper.make_node("Cast", [batch_f + "_i"], [batch_f], to=TensorProto.FLOAT),
            helper.make_node("Mul", [batch_f, span + "_2"], [scaled]),
            helper.make_node("Sub", [picked, scaled], [key]),  # larger key first
            helper.make_node("Shape", [selected], [rows + "_shape"]),
            helper.make_node(
                "Slice",
                [rows + "_shape", *(self._const(initializers, np.array([v], np.int64), "r") for v in (0, 1))],
                [rows],
            ),
            helper.make_node("TopK", [key, rows], [srt, idx], axis=0),
            helper.make_node("Gather", [selected, idx], [selected + "_sorted"], axis=0),
        ]
        out_index, out_count = self._out_names()
        index_elem = TRT_TO_ONNX[_indices_type(self).name]
        nodes += [
            helper.make_node("Cast", [selected + "_sorted"], [out_index], to=index_elem),
            helper.make_node(
                "Squeeze", [rows, self._const(initializers, np.array([0], np.int64), "ax")], [rows + "_0d"]
            ),
            helper.make_node("Cast", [rows + "_0d"], [out_count], to=TensorProto.INT32),
        ]


class ITopKLayer(_Layer):
    """[TOPK-OP] values and indices of the k largest (MAX) or smallest (MIN) along one axis (a bit mask);
    indices INT32 unless `indices_type` (10.16+) says INT64."""

    _type_name = "TOPK"
    op = _prop("op")
    k = _prop("k", "int")
    axes = _prop("axes", "int")

    @property
    def indices_type(self):
        return _indices_type(self)

    @indices_type.setter
    def indices_type(self, value):
        self._p["indices_type"] = value

    def _axis(self) -> int:
        axes = [a for a in range(len(self._in_shape())) if self._p["axes"] & (1 << a)]
        if len(axes) != 1:
            raise LayerBuildError(
                f"ITopKLayer: exactly one reduction axis is allowed [TOPK-OP], got mask {self._p['axes']}"
            )
        return axes[0]

    def _output_shape(self, index):
        shape = self._in_shape()
        shape[self._axis()] = self._p["k"]
        return shape

    def _output_dtype(self, index):
        return self._inputs[0].dtype if index == 0 else _indices_type(self)

    def _emit(self, nodes, initializers):
        if not 1 <= self._p["k"] <= MAX_TOPK_K:
            raise LayerBuildError(f"ITopKLayer: k={self._p['k']} must be in 1..{MAX_TOPK_K} [TOPK-OP]")
        values, indices = self._out_names()
        raw = self._network._fresh_name("topk_i64")
        k = self._const(initializers, np.array([self._p["k"]], np.int64), "k")
        largest = int(self._p["op"].name == "MAX")
        nodes.append(
            helper.make_node("TopK", [self._in()._onnx_name, k], [values, raw], axis=self._axis(), largest=largest)
        )
        nodes.append(helper.make_node("Cast", [raw], [indices], to=TRT_TO_ONNX[_indices_type(self).name]))


class IScatterLayer(_Layer):
    """[SCATTER-OP] output = data with `updates` written at `indices`: ND mode (ONNX ScatterND) or ELEMENT mode
    along `axis` (ONNX ScatterElements)."""

    _type_name = "SCATTER"
    mode = _prop("mode")
    axis = _prop("axis", "int")

    def _emit(self, nodes, initializers):
        data, indices, updates = (t._onnx_name for t in self._inputs[:3])
        cast = self._network._fresh_name("scatter_idx")
        nodes.append(helper.make_node("Cast", [indices], [cast], to=TensorProto.INT64))
        if self._p["mode"].name == "ND":
            nodes.append(helper.make_node("ScatterND", [data, cast, updates], self._out_names()))
        else:
            node = helper.make_node("ScatterElements", [data, cast, updates], self._out_names(), axis=self._p["axis"])
            nodes.append(node)


class IGatherLayer(_PlainGatherLayer):
    """[GATHER-OP] DEFAULT (ONNX Gather), ELEMENT (GatherElements) and ND (GatherND, with
    `num_elementwise_dims` leading batch dimensions as ONNX's batch_dims)."""

    def _output_shape(self, index):
        mode = self._p["mode"].name
        data, indices = self._in_shape(0), self._in_shape(1)
        if mode == "ELEMENT":
            return indices
        if mode == "ND":
            b = self._p["elementwise_dims"]
            depth = indices[-1]
            return indices[:-1] + data[b + depth :] if depth >= 0 else [-1] * (len(indices) - 1)
        return _PlainGatherLayer._output_shape(self, index)  # the generated class has no usable super()

    def _emit(self, nodes, initializers):
        mode = self._p["mode"].name
        if mode == "DEFAULT":
            _PlainGatherLayer._emit(self, nodes, initializers)
            return
        data, indices = self._in(0)._onnx_name, self._in(1)._onnx_name
        cast = self._network._fresh_name("gather_idx")
        nodes.append(helper.make_node("Cast", [indices], [cast], to=TensorProto.INT64))
        if mode == "ND":
            batch_dims = self._p["elementwise_dims"]
            nodes.append(helper.make_node("GatherND", [data, cast], self._out_names(), batch_dims=batch_dims))
        else:
            nodes.append(helper.make_node("GatherElements", [data, cast], self._out_names(), axis=self._p["axis"]))


class NetworkWithNms(NetworkWithLayers):
    """add_nms, add_topk, add_scatter and add_gather_v2 on top of the other add_* layers."""

    def add_nms(self, boxes, scores, max_output_boxes_per_class, indices_type=None):
        params = {"limit": TOPK_BOX_LIMIT, "fmt": self._enum("BoundingBoxFormat", "CORNER_PAIRS")}
        params["indices_type"] = indices_type
        return self._add("INMSLayer", [boxes, scores, max_output_boxes_per_class], params, num_outputs=2)

    def add_topk(self, input, op, k, axes, indices_type=None):  # noqa: A002
        params = {"op": op, "k": int(k), "axes": int(axes), "indices_type": indices_type}
        return self._add("ITopKLayer", [input], params, num_outputs=2)

    def add_scatter(self, data, indices, updates, mode):
        return self._add("IScatterLayer", [data, indices, updates], {"mode": mode, "axis": 0})

    def add_gather_v2(self, input, indices, mode):  # noqa: A002
        return self._add("IGatherLayer", [input, indices], {"axis": 0, "elementwise_dims": 0, "mode": mode})


def import_non_max_suppression(net, node) -> None:
    """The ONNX parser's NonMaxSuppression importer [ONNX-OPS]: scores [B, C, N] are transposed to [B, N, C],
    max_output_boxes_per_class becomes a 0D INT32, the thresholds 0D FLOAT (defaults 0 [NMS-API]),
    center_point_box picks CENTER_SIZES; SelectedIndices is cast back to ONNX's INT64."""
    ctx = type(net)._ctx
    data_type = ctx.classes["DataType"]
    names = list(node.input) + [""] * (5 - len(node.input))

    def raw_layer(op: str, inputs: list[str], out_dtype, **attrs):
        out = net._fresh_name(f"nms_import_{op.lower()}")
        tensor = net._tensor(out, out_dtype)
        layer = ctx.new("ILayer", net, out, [net._tensor(i) for i in inputs if i], [tensor], "SHUFFLE")
        layer._onnx_node = helper.make_node(op, inputs, [out], **attrs)
        net._layers.append(layer)
        return tensor

    def scalar(name: str, to: int, dtype):
        shape = net._fresh_name("nms_import_scalar_shape")
        net._initializers.append(helper.make_tensor(shape, TensorProto.INT64, [0], []))
        cast = raw_layer("Cast", [name], dtype, to=to)
        reshaped = raw_layer("Reshape", [cast._onnx_name, shape], dtype)
        reshaped._shape = []
        return reshaped

    boxes = net._tensor(names[0])
    boxes._shape = boxes._shape or [-1, -1, 4]
    scores = raw_layer("Transpose", [names[1]], boxes.dtype, perm=[0, 2, 1])
    scores._shape = [-1, -1, -1]
    if not names[2]:  # ONNX default 0 boxes per class: nothing is selected
        net._initializers.append(helper.make_tensor(net._fresh_name("nms_zero"), TensorProto.INT64, [], [0]))
        names[2] = net._initializers[-1].name
    max_out = scalar(names[2], TensorProto.INT32, data_type.INT32)
    layer = net.add_nms(boxes, scores, max_out)
    for index, name in ((3, names[3]), (4, names[4])):
        if name:
            layer.set_input(index, scalar(name, TensorProto.FLOAT, data_type.FLOAT))
    center = next((a.i for a in node.attribute if a.name == "center_point_box"), 0)
    if center:
        layer.bounding_box_format = ctx.classes["BoundingBoxFormat"].CENTER_SIZES
    indices = layer.get_output(0)
    out = net._tensor(node.output[0], getattr(data_type, "INT64", None) or data_type.INT32)
    cast = ctx.new("ILayer", net, node.name or out._onnx_name, [indices], [out], "CAST")
    cast._onnx_node = helper.make_node("Cast", [indices._onnx_name], [out._onnx_name], to=TensorProto.INT64)
    net._layers.append(cast)


network_module.PARSER_IMPORTERS["NonMaxSuppression"] = import_non_max_suppression

REGISTRY = {
    "INetworkDefinition": NetworkWithNms,
    "INMSLayer": INMSLayer,
    "ITopKLayer": ITopKLayer,
    "IScatterLayer": IScatterLayer,
    "IGatherLayer": IGatherLayer,
}
