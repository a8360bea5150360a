"""Build YOLOv8, YOLO11 and YOLO26 detection networks layer by layer with TensorRT's network definition API.

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
- C2PSA's split likewise; attention's qkv conv is three convolutions (q, k, v rows), then matmul +
  softmax, and reshapes back to the input's run-time shape through a shape tensor.
- DFL is softmax over the 16 bins times a constant 0..15 vector, summed over the bins (none for YOLO26's
  reg_max 1); the box decoding (left, top, right, bottom) -> (cx, cy, w, h) (or corners for YOLO26's
  one-to-one head) is one constant 4x4 matrix multiply plus the anchor centres, then a multiply by the
  level's stride (each level is decoded before the concat).
- `nms=True` appends `NmsWriter` (INMSLayer); YOLO26's one-to-one head ends in `top_k` (TopK + gathers).

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

from ultralytics.export.nms import XYWH_TO_XYXY  # the same box conversion as the ONNX route's NMS
from ultralytics.export.onnx import INPUT_NAME, OUTPUT_NAME  # the same tensor names as the ONNX route
from ultralytics.nn.modules.conv import fuse_conv_and_bn
from ultralytics.trt.network import always_strongly_typed

# The detection modules this route can express (by class name, as in the model's yaml): YOLOv8's, plus
# YOLO11's and YOLO26's (C3k2 with Bottleneck / C3k / PSABlock inside, C2PSA, DWConv inside the heads).
SUPPORTED_LAYERS = frozenset({"Conv", "DWConv", "C2f", "C3k2", "C2PSA", "SPPF", "Upsample", "Concat", "Detect"})


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


# (l, t, r, b) -> (x1 - px, y1 - py, x2 - px, y2 - py): YOLO26's one-to-one head outputs corners.
LTRB_TO_XYXY = np.diag([-1, -1, 1, 1]).astype(np.float32)
# (l, t, r, b) -> (cx - px, cy - py, w, h): cx = px + (r - l) / 2, w = l + r, and likewise for y.
LTRB_TO_XYWH = np.array([[-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5], [1, 0, 1, 0], [0, 1, 0, 1]], np.float32)


def centre_grid(h: int, w: int, corners: bool = False) -> np.ndarray:
    """Cell centres of an h x w feature map in grid units, (1, 4, h, w): rows x, y and two zero rows
    (added to the decoded (x, y, w, h), the zeros leave w and h alone); `corners`: rows x, y, x, y
    (added to the (-l, -t, r, b) offsets of corner boxes)."""
    ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    rest = (xs, ys) if corners else (np.zeros_like(xs), np.zeros_like(xs))
    return np.stack((xs, ys, *rest), 0)[None].astype(np.float32)


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
    def conv_block(self, module: nn.Module, x, *, out_slice: slice | np.ndarray | None = None):
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
        """C2f, and YOLO11/YOLO26's C3k2 (the same, with C3k or Bottleneck + PSABlock blocks inside)."""
        c = module.c
        parts = [
            self.conv_block(module.cv1, x, out_slice=slice(0, c)),
            self.conv_block(module.cv1, x, out_slice=slice(c, 2 * c)),
        ]
        for block in module.m:
            parts.append(self.inner_block(block, parts[-1]))
        return self.conv_block(module.cv2, self.concat(parts, 1))

    def inner_block(self, block: nn.Module, x):
        """One block inside C2f/C3k2/C3k/C2PSA, by class name."""
        name = type(block).__name__
        if name == "Bottleneck":
            return self.bottleneck(block, x)
        if name in ("C3", "C3k"):
            return self.c3(block, x)
        if name == "PSABlock":
            return self.psa_block(block, x)
        if isinstance(block, nn.Sequential):
            for sub in block:
                x = self.inner_block(sub, x)
            return x
        raise NetworkBuildError(f"block {name} has no network-API equivalent here; export with builder='onnx'")

    def c3(self, module: nn.Module, x):
        """C3/C3k: a Bottleneck chain on one 1x1 branch, concatenated with the other, mixed by cv3."""
        y = self.conv_block(module.cv1, x)
        for block in module.m:
            y = self.inner_block(block, y)
        return self.conv_block(module.cv3, self.concat([y, self.conv_block(module.cv2, x)], 1))

    def c2psa(self, module: nn.Module, x):
        """C2PSA: cv1's two halves as two convolutions (as C2f's split), PSABlocks on the second."""
        c = module.c
        a = self.conv_block(module.cv1, x, out_slice=slice(0, c))
        b = self.conv_block(module.cv1, x, out_slice=slice(c, 2 * c))
        for block in module.m:
            b = self.psa_block(block, b)
        return self.conv_block(module.cv2, self.concat([a, b], 1))

    def psa_block(self, module: nn.Module, x):
        x = self.add(x, self.attention(module.attn, x)) if module.add else self.attention(module.attn, x)
        y = x
        for sub in module.ffn:
            y = self.conv_block(sub, y)
        return self.add(x, y) if module.add else y

    def attention(self, module: nn.Module, x):
        """Multi-head self-attention as matmul + softmax layers.

        The qkv conv is split into three convolutions by output channel (qkv's channels are, per head,
        key_dim q rows, key_dim k rows, head_dim v rows), so no batch- or size-dependent slice is needed;
        the v conv's output already is v laid out as the (B, C, H, W) map the positional conv reads.
        """
        heads, kd, hd = int(module.num_heads), int(module.key_dim), int(module.head_dim)
        per_head = 2 * kd + hd
        rows = [np.arange(h * per_head, (h + 1) * per_head) for h in range(heads)]
        pick = {
            "q": np.concatenate([r[:kd] for r in rows]),
            "k": np.concatenate([r[kd : 2 * kd] for r in rows]),
            "v": np.concatenate([r[2 * kd :] for r in rows]),
        }
        q, k, v = (self.conv_block(module.qkv, x, out_slice=pick[name]) for name in ("q", "k", "v"))
        scale = self.constant(np.full((1, 1, 1, 1), float(module.scale), np.float32))
        q = self.network.add_elementwise(self.reshape(q, (0, heads, kd, -1)), scale, self.trt.ElementWiseOperation.PROD)
        keys, values = self.reshape(k, (0, heads, kd, -1)), self.reshape(v, (0, heads, hd, -1))
        mm = self.trt.MatrixOperation
        scores = self.network.add_matrix_multiply(q.get_output(0), mm.TRANSPOSE, keys, mm.NONE)  # (B, h, N, N)
        weights = self.network.add_softmax(scores.get_output(0))
        weights.axes = 1 << 3
        attended = self.network.add_matrix_multiply(values, mm.NONE, weights.get_output(0), mm.TRANSPOSE)
        as_map = self.network.add_shuffle(attended.get_output(0))  # (B, h, hd, N) -> x's (B, C, H, W)
        as_map.set_input(1, self.network.add_shape(x).get_output(0))
        return self.conv_block(module.proj, self.add(as_map.get_output(0), self.conv_block(module.pe, v)))

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
        """One of Detect's per-level branches: Conv, Conv, then a plain Conv2d (YOLO11/YOLO26's class
        branch nests (DWConv, Conv) pairs in Sequentials)."""
        for sub in seq:
            if isinstance(sub, nn.Sequential):
                x = self.branch(sub, x)
            else:
                x = self.plain_conv(sub, x) if isinstance(sub, nn.Conv2d) else self.conv_block(sub, x)
        return x

    def detect(self, module: nn.Module, feats: list, imgsz: tuple[int, int], max_imgsz: tuple[int, int] | None = None):
        """Per-level branches -> DFL -> decoded xywh in pixels, then sigmoid scores: (B, 4 + nc, A).

        `max_imgsz` set: height and width are dynamic up to it, and each level's anchor centres are cut
        at run time from a grid that covers it; else they are constants for `imgsz`.
        """
        if getattr(module, "end2end", False):  # YOLO26's NMS-free branch: final detections (B, k, 6)
            if max_imgsz is not None:
                raise NetworkBuildError(
                    "builder=network builds YOLO26's end-to-end head at a fixed image size only (its top-k count "
                    "depends on the anchors); drop dynamic=True or use builder=onnx"
                )
            boxes, scores = self.detect_parts(module, feats, imgsz, one2one=True)
            strides = [int(s) for s in module.stride.tolist()]
            anchors = sum((imgsz[0] // s) * (imgsz[1] // s) for s in strides)
            return self.top_k(module, boxes, scores, anchors)
        boxes, scores = self.detect_parts(module, feats, imgsz, max_imgsz)
        return self.concat([boxes, scores], 1)

    def detect_parts(self, module: nn.Module, feats: list, imgsz: tuple[int, int], max_imgsz=None, *, one2one=False):
        """`detect` before its final concat: boxes (B, 4, A) in pixels and sigmoid scores (B, nc, A).

        Boxes are xywh from the one-to-many branch; with `one2one` (YOLO26's NMS-free branch) they come
        from `one2one_cv2`/`one2one_cv3` and are corners (x1, y1, x2, y2), as that head outputs them.
        """
        reg_max, nc = int(module.reg_max), int(module.nc)
        strides = [int(s) for s in module.stride.tolist()]
        box_heads, cls_heads = (module.one2one_cv2, module.one2one_cv3) if one2one else (module.cv2, module.cv3)
        bins = self.constant(np.arange(reg_max, dtype=np.float32).reshape(1, 1, reg_max, 1)) if reg_max > 1 else None
        matrix = self.constant((LTRB_TO_XYXY if one2one else LTRB_TO_XYWH).reshape(1, 4, 4))
        boxes, scores = [], []
        for i, feat in enumerate(feats):
            logits = self.reshape(self.branch(box_heads[i], feat), (0, 4, reg_max, -1))
            centres = self.anchor_centres(feat, strides[i], imgsz, max_imgsz, corners=one2one)
            boxes.append(self.decode_boxes(logits, centres, strides[i], bins, matrix))
            scores.append(self.reshape(self.branch(cls_heads[i], feat), (0, nc, -1)))
        cls = self.network.add_activation(self.concat(scores, 2), self.trt.ActivationType.SIGMOID)
        return self.concat(boxes, 2), cls.get_output(0)

    def top_k(self, module: nn.Module, boxes, scores, anchors: int):
        """YOLO26's NMS-free selection (`Detect.top_k`) with TopK and per-image ND gathers:
        boxes (B, 4, A) corners, scores (B, nc, A) -> (B, k, 6), k = min(max_det, A)."""
        trt, nc = self.trt, int(module.nc)
        k = min(int(module.max_det), anchors)
        boxes_t, scores_t = self.transpose_last(boxes), self.transpose_last(scores)  # (B, A, 4), (B, A, nc)

        def gather(data, index):  # per image: data (B, A, ...) rows at index (B, k)
            return self.gather_nd(data, self.reshape(index, (0, -1, 1)), batch_dims=1)

        def topk(x, count: int, axis: int):
            layer = self.network.add_topk(x, trt.TopKOperation.MAX, count, 1 << axis)
            return layer.get_output(0), layer.get_output(1)

        if getattr(module, "agnostic_nms", False):
            best, labels = topk(scores_t, 1, 2)  # (B, A, 1) each
            top, anchor = topk(self.reshape(best, (0, -1)), k, 1)
            label = self.cast(gather(labels, anchor), trt.float32)  # (B, k, 1)
        else:
            best = self.network.add_reduce(scores_t, trt.ReduceOperation.MAX, 1 << 2, False).get_output(0)
            _, candidates = topk(best, k, 1)  # (B, k) anchors with the best best-class scores
            top, flat = topk(self.reshape(gather(scores_t, candidates), (0, -1)), k, 1)  # k best (anchor, class)
            classes = self.constant_int(np.array([[nc]], np.int32))
            ops = trt.ElementWiseOperation
            slot = self.network.add_elementwise(flat, classes, ops.FLOOR_DIV).get_output(0)
            times = self.network.add_elementwise(slot, classes, ops.PROD).get_output(0)
            label = self.network.add_elementwise(flat, times, ops.SUB).get_output(0)
            label = self.reshape(self.cast(label, trt.float32), (0, -1, 1))
            anchor = self.reshape(gather(self.reshape(candidates, (0, -1, 1)), slot), (0, -1))
        picked = gather(boxes_t, anchor)  # (B, k, 4)
        label = self.cast(label, picked.dtype) if picked.dtype != trt.float32 else label
        return self.concat([picked, self.reshape(top, (0, -1, 1)), label], 2)

    def transpose_last(self, x):
        layer = self.network.add_shuffle(x)
        layer.second_transpose = (0, 2, 1)
        return layer.get_output(0)

    def constant_int(self, array: np.ndarray):
        """A constant of the array's own dtype (int32 indices and divisors, float32 NMS values), never cast
        to the weight dtype."""
        array = np.array(array, order="C")  # not ascontiguousarray: it turns 0D scalars into 1D
        self.keep_alive.append(array)
        return self.network.add_constant(tuple(array.shape), self.trt.Weights(array)).get_output(0)

    def gather_nd(self, data, indices, batch_dims: int):
        layer = self.network.add_gather_v2(data, indices, self.trt.GatherMode.ND)
        layer.num_elementwise_dims = batch_dims
        return layer.get_output(0)

    def decode_boxes(self, logits, centres, stride: int, bins, ltrb_to_xywh):
        """One level: DFL (softmax over the bins, then their expectation) and (l, t, r, b) -> xywh pixels.

        logits (B, 4, reg_max, A_i), centres (1, 4, A_i) -> (B, 4, A_i).
        """
        if bins is None:  # reg_max 1 (YOLO26): the logits are the distances, no DFL
            distances = self.reshape(logits, (0, 4, -1))
        else:
            softmax = self.network.add_softmax(logits)
            softmax.axes = 1 << 2
            weighted = self.network.add_elementwise(softmax.get_output(0), bins, self.trt.ElementWiseOperation.PROD)
            distances = self.network.add_reduce(weighted.get_output(0), self.trt.ReduceOperation.SUM, 1 << 2, False)
            distances = distances.get_output(0)
        none = self.trt.MatrixOperation.NONE
        offsets = self.network.add_matrix_multiply(ltrb_to_xywh, none, distances, none)
        in_cells = self.add(offsets.get_output(0), centres)
        stride_value = self.constant(np.full((1, 1, 1), float(stride), np.float32))
        return self.network.add_elementwise(in_cells, stride_value, self.trt.ElementWiseOperation.PROD).get_output(0)

    def anchor_centres(self, feat, stride: int, imgsz, max_imgsz, corners: bool = False):
        """The level's cell centres as (1, 4, h * w) (see `centre_grid`; `corners`: rows x, y, x, y)."""
        if max_imgsz is None:
            h, w = imgsz[0] // stride, imgsz[1] // stride
            return self.constant(centre_grid(h, w, corners).reshape(1, 4, h * w))
        grid = self.constant(centre_grid(max_imgsz[0] // stride, max_imgsz[1] // stride, corners))
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
    and coordinates); the caller casts the result to the I/O type. `settings` is an `export.nms.NmsSettings`
    (conf, iou, max_det, agnostic, and its column/padding rules).
    """

    def __init__(self, writer: YoloNetworkWriter, settings):
        self.w, self.trt, self.network, self.s = writer, writer.trt, writer.network, settings

    def op(self, a, b, name: str):
        return self.network.add_elementwise(a, b, getattr(self.trt.ElementWiseOperation, name)).get_output(0)

    def __call__(self, boxes, scores, nc: int):
        """boxes (B, 4, A) xywh and scores (B, nc, A), FP32 -> (B, max_det, 6) FP32."""
        trt, s = self.trt, self.s
        classes, pad = s.classes_in_nms(nc), s.padding(nc)
        xyxy = self.network.add_matrix_multiply(
            self.w.transpose_last(boxes),
            trt.MatrixOperation.NONE,
            self.w.constant_int(XYWH_TO_XYXY[None]),
            trt.MatrixOperation.NONE,
        ).get_output(0)  # (B, A, 4)
        per_box = self.w.transpose_last(scores)  # (B, A, nc): INMSLayer's [batch, boxes, classes] layout
        top1 = self.network.add_topk(per_box, trt.TopKOperation.MAX, 1, 1 << 2)
        best, cls = top1.get_output(0), top1.get_output(1)  # (B, A, 1), class index INT32
        if s.agnostic:
            kept_scores = best
            rows = self.w.concat([xyxy, self.w.cast(cls, trt.float32)], 2)  # (B, A, 5)
        else:  # only the best class keeps its score: per-class NMS of single-label boxes
            onehot = self.op(cls, self.w.constant_int(np.arange(nc, dtype=np.int32).reshape(1, 1, nc)), "EQUAL")
            kept_scores = self.op(per_box, self.w.cast(onehot, trt.float32), "PROD")
            rows = xyxy
        nms = self.network.add_nms(xyxy, kept_scores, self.w.constant_int(np.array(s.max_det, np.int32)))
        nms.set_input(3, self.w.constant_int(np.array(s.iou, np.float32)))
        nms.set_input(4, self.w.constant_int(np.array(s.conf, np.float32)))
        nms.bounding_box_format = trt.BoundingBoxFormat.CORNER_PAIRS
        selected = nms.get_output(0)  # (K, 3): batch, class, box
        bnc = self.network.add_gather(selected, self.w.constant_int(np.array([0, 2, 1], np.int32)), 1).get_output(0)
        picked = self.w.gather_nd(kept_scores, bnc, 0)  # (K,)
        zero = self.w.constant_int(np.zeros((1, 1, 1), np.float32))
        dense = self.network.add_scatter(self.op(kept_scores, zero, "PROD"), bnc, picked, trt.ScatterMode.ND)
        dense = dense.get_output(0)  # (B, A, C): kept scores, zeros elsewhere
        zero_b = self.op(
            self.network.add_reduce(dense, trt.ReduceOperation.MAX, (1 << 1) | (1 << 2), True).get_output(0),
            zero,
            "PROD",
        )  # (B, 1, 1) zeros that follow the dynamic batch
        width = 5 if s.agnostic else 4
        dense = self.w.concat(
            [dense, self.op(zero_b, self.w.constant_int(np.zeros((1, pad, classes), np.float32)), "SUM")], 1
        )
        rows = self.w.concat(
            [rows, self.op(zero_b, self.w.constant_int(np.zeros((1, pad, width), np.float32)), "SUM")], 1
        )
        top = self.network.add_topk(self.w.reshape(dense, (0, -1)), trt.TopKOperation.MAX, s.max_det, 1 << 1)
        values, index = top.get_output(0), top.get_output(1)  # (B, max_det)
        box = self.op(index, self.w.constant_int(np.array([[classes]], np.int32)), "FLOOR_DIV")
        gathered = self.w.gather_nd(rows, self.w.reshape(box, (0, -1, 1)), 1)  # (B, max_det, width)
        if s.agnostic:
            xyxy_out = self.network.add_gather(
                gathered, self.w.constant_int(np.arange(4, dtype=np.int32)), 2
            ).get_output(0)
            cls_out = self.network.add_gather(gathered, self.w.constant_int(np.array([4], np.int32)), 2).get_output(0)
        else:
            xyxy_out = gathered
            cls_i = self.op(index, self.op(box, self.w.constant_int(np.array([[classes]], np.int32)), "PROD"), "SUB")
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
        if name in ("Conv", "DWConv"):
            x = writer.conv_block(layer, inputs)
        elif name in ("C2f", "C3k2"):
            x = writer.c2f(layer, inputs)
        elif name == "C2PSA":
            x = writer.c2psa(layer, inputs)
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
