"""Build the YOLOv8 detection network layer by layer with TensorRT's network definition API.

This is the route without ONNX: the weights of a loaded `DetectionModel` go straight into `add_*`
layers. It exists for installs where the ONNX parser is unavailable or misbehaves, and so that the
graph TensorRT sees is exactly the one we wrote (no exporter or simplifier in between).

Shape policy: static, dynamic batch, or dynamic batch, height and width (-1, with an optimization
profile chosen by the caller). Every reshape uses 0 ("copy this dimension") for the batch and -1 for the
anchors, so one network serves every shape in the profile. With fixed height and width the anchor
centres are constants; with dynamic ones each level cuts its centres from a constant grid covering the
profile's largest size, with the feature map's (h, w) read as a shape tensor at run time.

Tricks that keep the graph free of batch-dependent slices:
- C2f's `split` is done by two 1x1 convolutions carrying the two halves of `cv1`'s weights.
- The head keeps box and class branches apart (they are separate in the model anyway) instead of
  concatenating and splitting them.
- DFL is softmax over the 16 bins times a constant 0..15 vector, summed over the bins; the box
  decoding (left, top, right, bottom) -> (cx, cy, w, h) is one constant 4x4 matrix multiply plus the
  anchor centres, then a multiply by the level's stride (each level is decoded before the concat).

Precision (`network_dtypes`): FP32; FP16 through `BuilderFlag.FP16` where TensorRT is weakly typed
(<= 10.x: FP32 weights, FP16 inputs/outputs through casts at the edges); on 11.x, always strongly
typed, FP16 weights and constants make every layer FP16 by type inference. The network is not
created with `STRONGLY_TYPED` there: 11.x records that flag as deprecated and ignored.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch
from torch import nn

from ultralytics.export.onnx import INPUT_NAME, OUTPUT_NAME  # the same tensor names as the ONNX route
from ultralytics.nn.modules.conv import fuse_conv_and_bn
from ultralytics.trt.network import always_strongly_typed

# The YOLOv8 detection modules this route can express (by class name, as in the model's yaml).
SUPPORTED_LAYERS = frozenset({"Conv", "C2f", "SPPF", "Upsample", "Concat", "Detect"})


class NetworkBuildError(RuntimeError):
    """The model contains something this route cannot express (use builder='onnx' instead)."""


def folded_conv(conv_block: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights and bias with the BatchNorm (if still present) folded in, as float32 numpy."""
    conv = conv_block.conv
    bn = conv_block._modules.get("bn")
    if bn is not None:
        conv = fuse_conv_and_bn(conv, bn)  # the same folding the model's own fuse() does
    weight = conv.weight.detach().float().cpu()
    bias = conv.bias.detach().float().cpu() if conv.bias is not None else torch.zeros(weight.shape[0])
    return weight.numpy(), bias.numpy()


# (x, y, w, h) @ M -> (x1, y1, x2, y2) for the NMS: x1 = x - w / 2 (the multiplies by 0.5 are exact).
XYWH_TO_XYXY = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]], np.float32)
# (l, t, r, b) -> (cx - px, cy - py, w, h): cx = px + (r - l) / 2, w = l + r, and likewise for y.
LTRB_TO_XYWH = np.array([[-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5], [1, 0, 1, 0], [0, 1, 0, 1]], np.float32)


def centre_grid(h: int, w: int) -> np.ndarray:
    """Cell centres of an h x w feature map in grid units, (1, 4, h, w): rows x, y and two zero rows
    (added to the decoded (x, y, w, h), the zeros leave w and h alone)."""
    ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    zeros = np.zeros_like(xs)
    return np.stack((xs, ys, zeros, zeros), 0)[None].astype(np.float32)


class YoloNetworkWriter:
    """Adds the layers of one DetectionModel to an INetworkDefinition.

    Holds every numpy array handed to TensorRT as `Weights`: TensorRT reads them only at build time,
    so they must outlive the build (keep this object alive until `build_serialized_network` returns).
    """

    def __init__(self, trt: ModuleType, network, dtype: np.dtype = np.float32):
        # `dtype` is the type of every weight and constant: FP16 makes a strongly typed network FP16.
        self.trt = trt
        self.network = network
        self.dtype = np.dtype(dtype)
        self.keep_alive: list[np.ndarray] = []

    # ---------------------------------------------------------------- primitives
    def weights(self, array: np.ndarray):
        array = np.ascontiguousarray(array, dtype=self.dtype)
        self.keep_alive.append(array)
        return self.trt.Weights(array)

    def constant(self, array: np.ndarray):
        layer = self.network.add_constant(tuple(array.shape), self.weights(array))
        return layer.get_output(0)

    def conv(self, x, weight: np.ndarray, bias: np.ndarray, *, stride: int, padding: int, groups: int, dilation: int):
        k = weight.shape[2:]
        layer = self.network.add_convolution_nd(
            x, int(weight.shape[0]), tuple(k), self.weights(weight), self.weights(bias)
        )
        layer.stride_nd = (stride, stride)
        layer.padding_nd = (padding, padding)
        layer.dilation_nd = (dilation, dilation)
        layer.num_groups = groups
        return layer.get_output(0)

    def silu(self, x):
        gate = self.network.add_activation(x, self.trt.ActivationType.SIGMOID).get_output(0)
        return self.network.add_elementwise(x, gate, self.trt.ElementWiseOperation.PROD).get_output(0)

    def add(self, a, b):
        return self.network.add_elementwise(a, b, self.trt.ElementWiseOperation.SUM).get_output(0)

    def concat(self, tensors: list, axis: int):
        layer = self.network.add_concatenation(tensors)
        layer.axis = axis  # always explicit: TensorRT's default is rank - 3, not the channel axis
        return layer.get_output(0)

    def cast(self, x, dtype):
        """An explicit type change (network edges): TensorRT inserts none by itself in a strongly typed network."""
        return self.network.add_cast(x, dtype).get_output(0)

    def reshape(self, x, dims: tuple[int, ...]):
        layer = self.network.add_shuffle(x)
        layer.reshape_dims = dims  # a leading 0 copies the (possibly dynamic) batch
        return layer.get_output(0)

    # ---------------------------------------------------------------- YOLOv8 modules
    def conv_block(self, module: nn.Module, x, *, out_slice: slice | None = None):
        """`Conv` (conv + folded BN + SiLU/identity); `out_slice` keeps only some output channels."""
        weight, bias = folded_conv(module)
        if out_slice is not None:
            weight, bias = weight[out_slice], bias[out_slice]
        conv = module.conv
        if conv.stride[0] != conv.stride[1] or conv.padding[0] != conv.padding[1] or isinstance(conv.padding, str):
            raise NetworkBuildError(f"non-square stride/padding in {conv} is not supported by builder='network'")
        y = self.conv(
            x,
            weight,
            bias,
            stride=conv.stride[0],
            padding=conv.padding[0],
            groups=conv.groups,
            dilation=conv.dilation[0],
        )
        act = module.act
        if isinstance(act, nn.SiLU):
            return self.silu(y)
        if isinstance(act, nn.Identity):
            return y
        raise NetworkBuildError(f"activation {type(act).__name__} is not supported by builder='network' (SiLU only)")

    def plain_conv(self, conv: nn.Conv2d, x):
        bias = conv.bias.detach().float().cpu().numpy() if conv.bias is not None else np.zeros(conv.out_channels)
        return self.conv(
            x,
            conv.weight.detach().float().cpu().numpy(),
            bias,
            stride=conv.stride[0],
            padding=conv.padding[0],
            groups=conv.groups,
            dilation=conv.dilation[0],
        )

    def bottleneck(self, module: nn.Module, x):
        y = self.conv_block(module.cv2, self.conv_block(module.cv1, x))
        return self.add(x, y) if module.add else y

    def c2f(self, module: nn.Module, x):
        c = module.c
        parts = [
            self.conv_block(module.cv1, x, out_slice=slice(0, c)),
            self.conv_block(module.cv1, x, out_slice=slice(c, 2 * c)),
        ]
        for block in module.m:
            parts.append(self.bottleneck(block, parts[-1]))
        return self.conv_block(module.cv2, self.concat(parts, 1))

    def sppf(self, module: nn.Module, x):
        pool = module.m
        k, s, p = (v if isinstance(v, int) else v[0] for v in (pool.kernel_size, pool.stride, pool.padding))
        pooled = [self.conv_block(module.cv1, x)]
        for _ in range(getattr(module, "n", 3)):
            layer = self.network.add_pooling_nd(pooled[-1], self.trt.PoolingType.MAX, (k, k))
            layer.stride_nd = (s, s)
            layer.padding_nd = (p, p)
            pooled.append(layer.get_output(0))
        y = self.conv_block(module.cv2, self.concat(pooled, 1))
        return self.add(x, y) if getattr(module, "add", False) else y

    def upsample(self, module: nn.Upsample, x):
        if module.mode != "nearest" or module.scale_factor is None:
            raise NetworkBuildError(f"only nearest upsampling by a scale factor is supported, got {module}")
        scale = float(module.scale_factor if not isinstance(module.scale_factor, tuple) else module.scale_factor[0])
        layer = self.network.add_resize(x)
        layer.scales = [1.0, 1.0, scale, scale]
        layer.resize_mode = self.trt.InterpolationMode.NEAREST
        return layer.get_output(0)

    def branch(self, seq: nn.Module, x):
        """One of Detect's per-level branches: Conv, Conv, then a plain Conv2d."""
        for sub in seq:
            x = self.plain_conv(sub, x) if isinstance(sub, nn.Conv2d) else self.conv_block(sub, x)
        return x

    def detect(self, module: nn.Module, feats: list, imgsz: tuple[int, int], max_imgsz: tuple[int, int] | None = None):
        """Per-level branches -> DFL -> decoded xywh in pixels, then sigmoid scores: (B, 4 + nc, A).

        `max_imgsz` set: height and width are dynamic up to it, and each level's anchor centres are cut
        at run time from a grid that covers it; else they are constants for `imgsz`.
        """
        boxes, scores = self.detect_parts(module, feats, imgsz, max_imgsz)
        return self.concat([boxes, scores], 1)

    def detect_parts(self, module: nn.Module, feats: list, imgsz: tuple[int, int], max_imgsz=None):
        """`detect` before its final concat: boxes (B, 4, A) xywh pixels and scores (B, nc, A)."""
        reg_max, nc = int(module.reg_max), int(module.nc)
        strides = [int(s) for s in module.stride.tolist()]
        bins = self.constant(np.arange(reg_max, dtype=np.float32).reshape(1, 1, reg_max, 1))
        ltrb_to_xywh = self.constant(LTRB_TO_XYWH.reshape(1, 4, 4))
        boxes, scores = [], []
        for i, feat in enumerate(feats):
            logits = self.reshape(self.branch(module.cv2[i], feat), (0, 4, reg_max, -1))
            centres = self.anchor_centres(feat, strides[i], imgsz, max_imgsz)
            boxes.append(self.decode_boxes(logits, centres, strides[i], bins, ltrb_to_xywh))
            scores.append(self.reshape(self.branch(module.cv3[i], feat), (0, nc, -1)))
        cls = self.network.add_activation(self.concat(scores, 2), self.trt.ActivationType.SIGMOID)
        return self.concat(boxes, 2), cls.get_output(0)

    def decode_boxes(self, logits, centres, stride: int, bins, ltrb_to_xywh):
        """One level: DFL (softmax over the bins, then their expectation) and (l, t, r, b) -> xywh pixels.

        logits (B, 4, reg_max, A_i), centres (1, 4, A_i) -> (B, 4, A_i).
        """
        softmax = self.network.add_softmax(logits)
        softmax.axes = 1 << 2
        weighted = self.network.add_elementwise(softmax.get_output(0), bins, self.trt.ElementWiseOperation.PROD)
        distances = self.network.add_reduce(weighted.get_output(0), self.trt.ReduceOperation.SUM, 1 << 2, False)
        none = self.trt.MatrixOperation.NONE
        offsets = self.network.add_matrix_multiply(ltrb_to_xywh, none, distances.get_output(0), none)
        in_cells = self.add(offsets.get_output(0), centres)
        stride_value = self.constant(np.full((1, 1, 1), float(stride), np.float32))
        return self.network.add_elementwise(in_cells, stride_value, self.trt.ElementWiseOperation.PROD).get_output(0)

    def anchor_centres(self, feat, stride: int, imgsz: tuple[int, int], max_imgsz: tuple[int, int] | None):
        """The level's cell centres as (1, 4, h * w) (see `centre_grid`)."""
        if max_imgsz is None:
            h, w = imgsz[0] // stride, imgsz[1] // stride
            return self.constant(centre_grid(h, w).reshape(1, 4, h * w))
        grid = self.constant(centre_grid(max_imgsz[0] // stride, max_imgsz[1] // stride))
        # Cut the top-left (h, w) corner; the size [1, 4, h, w] is a shape tensor: the grid's first two
        # dimensions and the feature map's last two, so its integer type is always the one TensorRT uses.
        lead = self.network.add_slice(self.network.add_shape(grid).get_output(0), (0,), (2,), (1,))
        hw = self.network.add_slice(self.network.add_shape(feat).get_output(0), (2,), (2,), (1,))
        size = self.concat([lead.get_output(0), hw.get_output(0)], 0)
        corner = self.network.add_slice(grid, (0, 0, 0, 0), (1, 4, 1, 1), (1, 1, 1, 1))
        corner.set_input(2, size)
        return self.reshape(corner.get_output(0), (1, 4, -1))


class NmsWriter:
    """NMS inside the engine (`nms=True`) from TensorRT's own INMSLayer: no plugin, no EfficientNMS.

    The same arithmetic as the ONNX route's subgraph (`export/nms.py`, where the why is written down):
    best class per box, per-class INMSLayer over the boxes above `conf`, the selected (batch, class, box)
    rows scattered into a dense (B, A, C) score tensor, zero boxes appended so a fixed TopK(max_det)
    always has candidates, then the kept boxes gathered per image: output (B, max_det, 6)
    x1, y1, x2, y2, score, class, zero rows after the last detection. Everything is FP32 (NMS thresholds
    and coordinates); the caller casts the result to the I/O type. `settings` needs conf, iou, max_det
    and agnostic (duck-typed: `export.nms.NmsSettings`).
    """

    def __init__(self, writer: YoloNetworkWriter, settings):
        self.w, self.trt, self.network, self.s = writer, writer.trt, writer.network, settings

    def const(self, array: np.ndarray):
        """A constant of the array's own dtype (int32 indices, float32 values) whatever the weight dtype."""
        array = np.array(array, order="C")  # not ascontiguousarray: it turns 0D scalars into 1D
        self.w.keep_alive.append(array)
        return self.network.add_constant(tuple(array.shape), self.trt.Weights(array)).get_output(0)

    def op(self, a, b, name: str):
        return self.network.add_elementwise(a, b, getattr(self.trt.ElementWiseOperation, name)).get_output(0)

    def transpose(self, x):
        layer = self.network.add_shuffle(x)
        layer.second_transpose = (0, 2, 1)
        return layer.get_output(0)

    def gather_nd(self, data, indices, batch_dims: int):
        layer = self.network.add_gather_v2(data, indices, self.trt.GatherMode.ND)
        layer.num_elementwise_dims = batch_dims
        return layer.get_output(0)

    def __call__(self, boxes, scores, nc: int):
        """boxes (B, 4, A) xywh and scores (B, nc, A), FP32 -> (B, max_det, 6) FP32."""
        trt, s = self.trt, self.s
        classes = 1 if s.agnostic else nc
        pad = -(-s.max_det // classes)
        xyxy = self.network.add_matrix_multiply(
            self.transpose(boxes), trt.MatrixOperation.NONE, self.const(XYWH_TO_XYXY[None]), trt.MatrixOperation.NONE
        ).get_output(0)  # (B, A, 4)
        per_box = self.transpose(scores)  # (B, A, nc): INMSLayer's [batch, boxes, classes] layout
        top1 = self.network.add_topk(per_box, trt.TopKOperation.MAX, 1, 1 << 2)
        best, cls = top1.get_output(0), top1.get_output(1)  # (B, A, 1), class index INT32
        if s.agnostic:
            kept_scores = best
            rows = self.w.concat([xyxy, self.w.cast(cls, trt.float32)], 2)  # (B, A, 5)
        else:  # only the best class keeps its score: per-class NMS of single-label boxes
            onehot = self.op(cls, self.const(np.arange(nc, dtype=np.int32).reshape(1, 1, nc)), "EQUAL")
            kept_scores = self.op(per_box, self.w.cast(onehot, trt.float32), "PROD")
            rows = xyxy
        nms = self.network.add_nms(xyxy, kept_scores, self.const(np.array(s.max_det, np.int32)))
        nms.set_input(3, self.const(np.array(s.iou, np.float32)))
        nms.set_input(4, self.const(np.array(s.conf, np.float32)))
        nms.bounding_box_format = trt.BoundingBoxFormat.CORNER_PAIRS
        selected = nms.get_output(0)  # (K, 3): batch, class, box
        bnc = self.network.add_gather(selected, self.const(np.array([0, 2, 1], np.int32)), 1).get_output(0)
        picked = self.gather_nd(kept_scores, bnc, 0)  # (K,)
        zero = self.const(np.zeros((1, 1, 1), np.float32))
        dense = self.network.add_scatter(self.op(kept_scores, zero, "PROD"), bnc, picked, trt.ScatterMode.ND)
        dense = dense.get_output(0)  # (B, A, C): kept scores, zeros elsewhere
        zero_b = self.op(
            self.network.add_reduce(dense, trt.ReduceOperation.MAX, (1 << 1) | (1 << 2), True).get_output(0),
            zero,
            "PROD",
        )  # (B, 1, 1) zeros that follow the dynamic batch
        width = 5 if s.agnostic else 4
        dense = self.w.concat([dense, self.op(zero_b, self.const(np.zeros((1, pad, classes), np.float32)), "SUM")], 1)
        rows = self.w.concat([rows, self.op(zero_b, self.const(np.zeros((1, pad, width), np.float32)), "SUM")], 1)
        top = self.network.add_topk(self.w.reshape(dense, (0, -1)), trt.TopKOperation.MAX, s.max_det, 1 << 1)
        values, index = top.get_output(0), top.get_output(1)  # (B, max_det)
        box = self.op(index, self.const(np.array([[classes]], np.int32)), "FLOOR_DIV")
        gathered = self.gather_nd(rows, self.w.reshape(box, (0, -1, 1)), 1)  # (B, max_det, width)
        if s.agnostic:
            xyxy_out = self.network.add_gather(gathered, self.const(np.arange(4, dtype=np.int32)), 2).get_output(0)
            cls_out = self.network.add_gather(gathered, self.const(np.array([4], np.int32)), 2).get_output(0)
        else:
            xyxy_out = gathered
            cls_i = self.op(index, self.op(box, self.const(np.array([[classes]], np.int32)), "PROD"), "SUB")
            cls_out = self.w.reshape(self.w.cast(cls_i, trt.float32), (0, -1, 1))
        score_out = self.w.reshape(values, (0, -1, 1))
        valid = self.w.cast(self.op(score_out, zero, "GREATER"), trt.float32)
        return self.op(self.w.concat([xyxy_out, score_out, cls_out], 2), valid, "PROD")


def network_dtypes(trt: ModuleType, *, half: bool, fp32_io: bool) -> tuple[np.dtype, object, object]:
    """(weight dtype, body tensor type, I/O tensor type) for the requested precision.

    - FP32: everything FP32.
    - FP16 where TensorRT is weakly typed (`BuilderFlag.FP16` exists, <= 10.x): FP32 weights and body;
      the builder flag (set by the caller) lets TensorRT choose FP16 kernels. Only the I/O are FP16.
    - FP16 where TensorRT is always strongly typed (11.x): FP16 weights and constants, so type
      inference makes every layer FP16; no flag exists to do it for us.
    `fp32_io` keeps FP32 inputs/outputs around an FP16 engine (casts at the edges when the body is FP16).
    """
    if not half:
        return np.dtype(np.float32), trt.float32, trt.float32
    body = trt.float16 if always_strongly_typed(trt) else trt.float32
    weights = np.dtype(np.float16) if body == trt.float16 else np.dtype(np.float32)
    return weights, body, trt.float32 if fp32_io else trt.float16


def populate_network(
    trt: ModuleType,
    network,
    model: nn.Module,
    *,
    imgsz: tuple[int, int],
    batch: int,
    dynamic: bool,
    max_imgsz: tuple[int, int] | None = None,
    half: bool = False,
    fp32_io: bool = False,
    nms=None,
) -> YoloNetworkWriter:
    """Add input `images`, every layer of `model`, and output `output0` to `network`.

    Returns the writer, which the caller must keep alive until the engine is built (it owns the
    weight arrays). With `dynamic`, the batch dimension is -1, and with `max_imgsz` too height and
    width (up to `max_imgsz`, the profile's largest size); the caller adds the profile. With `half`,
    see `network_dtypes` (the caller sets `BuilderFlag.FP16` where it exists). With `nms` (an
    `export.nms.NmsSettings`) the output is final detections (B, max_det, 6) from INMSLayer (`NmsWriter`).
    """
    layers = list(model.model)
    strides = [int(s) for s in layers[-1].stride.tolist()] if hasattr(layers[-1], "stride") else []
    max_stride = max(strides) if strides else 32
    for size in (imgsz, max_imgsz) if max_imgsz is not None else (imgsz,):
        if size[0] % max_stride or size[1] % max_stride:
            raise NetworkBuildError(f"image size {size} must be a multiple of the model's max stride {max_stride}")
    if max_imgsz is not None and not dynamic:
        raise NetworkBuildError("max_imgsz (dynamic height and width) needs dynamic=True")
    first_conv = getattr(layers[0], "conv", None)
    channels = int(first_conv.in_channels) if isinstance(first_conv, nn.Conv2d) else 3
    weight_dtype, body_type, io_type = network_dtypes(trt, half=half, fp32_io=fp32_io)
    writer = YoloNetworkWriter(trt, network, weight_dtype)
    height, width = (-1, -1) if max_imgsz is not None else (int(imgsz[0]), int(imgsz[1]))
    images = network.add_input(INPUT_NAME, io_type, (-1 if dynamic else int(batch), channels, height, width))
    x = writer.cast(images, body_type) if io_type != body_type else images
    outputs: list = []
    for layer in layers:
        source = layer.f
        inputs = outputs[source] if isinstance(source, int) and source != -1 else x
        if isinstance(source, (list, tuple)):
            inputs = [x if j == -1 else outputs[j] for j in source]
        name = type(layer).__name__
        if name == "Conv":
            x = writer.conv_block(layer, inputs)
        elif name == "C2f":
            x = writer.c2f(layer, inputs)
        elif name == "SPPF":
            x = writer.sppf(layer, inputs)
        elif name == "Upsample":
            x = writer.upsample(layer, inputs)
        elif name == "Concat":
            x = writer.concat(inputs, int(layer.d))
        elif name == "Detect" and nms is not None:
            boxes, scores = writer.detect_parts(layer, inputs, imgsz, max_imgsz)
            if body_type != trt.float32:  # NMS thresholds and coordinates in FP32
                boxes, scores = writer.cast(boxes, trt.float32), writer.cast(scores, trt.float32)
            x = NmsWriter(writer, nms)(boxes, scores, int(layer.nc))
            body_type = trt.float32
        elif name == "Detect":
            x = writer.detect(layer, inputs, imgsz, max_imgsz)
        else:
            raise NetworkBuildError(
                f"layer {layer.i} ({name}) has no network-API equivalent here; export with builder='onnx' instead"
            )
        outputs.append(x)
    if io_type != body_type:
        x = writer.cast(x, io_type)
    x.name = OUTPUT_NAME
    network.mark_output(x)
    if hasattr(trt.BuilderFlag, "FP16"):
        # Weak typing: an output's type is a request the builder may otherwise override; say it (read-only on 11.x).
        x.dtype = io_type
    return writer
