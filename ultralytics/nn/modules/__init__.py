"""YOLOv8 layers, re-exported here because 8.0.x checkpoints pickle them as `ultralytics.nn.modules.Conv`."""

from ultralytics.nn.modules.block import DFL, SPPF, Bottleneck, C2f
from ultralytics.nn.modules.conv import Concat, Conv, autopad
from ultralytics.nn.modules.head import Detect

__all__ = ["C2f", "DFL", "SPPF", "Bottleneck", "Concat", "Conv", "Detect", "autopad"]
