"""Measurement behind docs/onnx.md "Do head ops need FP32?" (not a test; run by hand):

    python3 -m tests.onnx.fp16_head_study 640

The FP32 head inputs of the 100 shapes val images are decoded with true FP16 arithmetic (torch CPU
half ops round after every op) and compared with the FP32 decode on the anchors scoring > 0.25:
  A: FP32 head on FP16-rounded inputs (what keeping the head in FP32 behind Casts would give)
  B: FP16 DFL softmax + FP16 decode (a plain FP16 graph)
  C: FP32 DFL softmax, FP16 decode
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
import torch

from tests.conftest import MODELS, SHAPES
from ultralytics.data.augment import LetterBox
from ultralytics.nn.checkpoint import load_checkpoint
from ultralytics.nn.modules.head import make_anchors


def head_inputs(model, imgsz: int) -> list[torch.Tensor]:
    """The per-level maps Detect.decode receives, for every val image."""
    head = model.model[-1]
    captured: list[list[torch.Tensor]] = []
    original = head.decode

    def record(levels):
        captured.append([level.clone() for level in levels])
        return original(levels)

    head.decode = record
    letterbox = LetterBox((imgsz, imgsz), auto=False)
    files = sorted((SHAPES / "val" / "images").glob("*.jpg"))
    images = np.stack([letterbox(image=cv2.imread(str(f)))[..., ::-1].transpose(2, 0, 1) for f in files])
    x = torch.from_numpy(images.copy()).float() / 255
    with torch.no_grad():
        for start in range(0, len(x), 25):
            model(x[start : start + 25])
    head.decode = original
    return [torch.cat([batch[k] for batch in captured]) for k in range(len(captured[0]))]


def decode(head, levels, dfl_dtype: torch.dtype, decode_dtype: torch.dtype):
    """Detect.decode written out so each stage can run in its own dtype."""
    reg, nc = head.reg_max, head.nc
    flat = torch.cat([level.flatten(2) for level in levels], 2)
    box, cls = flat.split((4 * reg, nc), 1)
    b, _, a = box.shape
    probs = box.to(dfl_dtype).view(b, 4, reg, a).transpose(2, 1).softmax(1)
    weights = torch.arange(reg, dtype=dfl_dtype).view(1, reg, 1, 1)
    dist = (probs * weights).sum(1).to(decode_dtype)  # the DFL's fixed 1x1 conv
    points, strides = make_anchors([level.to(decode_dtype) for level in levels], head.stride.to(decode_dtype))
    left_top, right_bottom = dist.chunk(2, 1)
    x1y1, x2y2 = points - left_top, points + right_bottom
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides, cls.sigmoid()


def main(imgsz: int) -> None:
    model, _ = load_checkpoint(MODELS / "shapes_yolov8n.pt")
    head = model.model[-1]
    levels = head_inputs(model, imgsz)
    f32, f16 = torch.float32, torch.float16
    with torch.no_grad():
        ref, cls = decode(head, levels, f32, f32)
        scored = cls.max(1).values > 0.25
        rounded = [level.half().float() for level in levels]
        variants = {
            "A fp32 head, fp16 inputs": (rounded, f32, f32),
            "B fp16 DFL + fp16 decode": ([level.half() for level in levels], f16, f16),
            "C fp32 DFL, fp16 decode": (rounded, f32, f16),
        }
        for name, (inputs, dfl_dtype, decode_dtype) in variants.items():
            xywh, _ = decode(head, inputs, dfl_dtype, decode_dtype)
            err = (xywh.half().float() - ref).abs().transpose(1, 2)[scored]  # incl. the FP16 output rounding
            print(
                f"imgsz {imgsz} {name:26s} xywh error on {int(scored.sum())} anchors: max {err.max():.3f} px, mean {err.mean():.4f} px"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 640)
