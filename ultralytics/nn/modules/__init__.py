"""YOLO layers, re-exported here because 8.0.x checkpoints pickle them as `ultralytics.nn.modules.Conv`."""

from ultralytics.nn.modules.block import C2PSA, C3, DFL, SPPF, Attention, Bottleneck, C2f, C3k, C3k2, PSABlock
from ultralytics.nn.modules.conv import Concat, Conv, DWConv, autopad
from ultralytics.nn.modules.head import Detect

__all__ = [
    "C2PSA",
    "C2f",
    "C3",
    "C3k",
    "C3k2",
    "DFL",
    "SPPF",
    "Attention",
    "Bottleneck",
    "Concat",
    "Conv",
    "DWConv",
    "Detect",
    "PSABlock",
    "autopad",
]
