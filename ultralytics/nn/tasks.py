"""`DetectionModel`: YOLOv8 built from a model yaml, or unpickled from an upstream checkpoint.

Upstream checkpoints pickle this class as `ultralytics.nn.tasks.DetectionModel` with the
attributes `model` (an nn.Sequential of layers, each tagged with `i`, `f`, `type`, `np`), `save`,
`yaml`, `names`, `stride` and `args`; a model built here carries the same attributes, so both kinds
go through one forward.
"""

from __future__ import annotations

import math
import re
from copy import deepcopy
from pathlib import Path

import torch
from torch import nn

from ultralytics.nn.modules import C2PSA, SPPF, Bottleneck, C2f, C3k, C3k2, Concat, Conv, Detect, DWConv
from ultralytics.utils import LOGGER, ROOT, yaml_load
from ultralytics.utils.model_info import model_info

__all__ = ["DetectionModel", "guess_model_scale", "load_model_yaml", "parse_model"]

MODEL_CFG_DIR = ROOT / "cfg" / "models"

# Names a model yaml may use for a layer type, and the class each one builds.
LAYER_TYPES: dict[str, type[nn.Module]] = {
    "Conv": Conv,
    "DWConv": DWConv,
    "C2f": C2f,
    "C3k2": C3k2,
    "C3k": C3k,
    "C2PSA": C2PSA,
    "Bottleneck": Bottleneck,
    "SPPF": SPPF,
    "Concat": Concat,
    "Detect": Detect,
    "nn.Upsample": nn.Upsample,
    "torch.nn.Upsample": nn.Upsample,
    "Upsample": nn.Upsample,
}
# Layers whose first two args are (in_channels, out_channels), computed from the graph.
CHANNEL_LAYERS = (Conv, DWConv, C2f, C3k2, C3k, C2PSA, Bottleneck, SPPF)
# Layers that take their repeat count as an argument instead of being stacked in a Sequential.
REPEAT_ARG_LAYERS = (C2f, C3k2, C3k, C2PSA)
# A model whose yaml uses any of these has YOLO11's head layout (depth-wise class branch), not YOLOv8's.
NON_LEGACY_HEAD_LAYERS = (C3k2,)


def make_divisible(x: float, divisor: int = 8) -> int:
    """Round channels up to a multiple of `divisor` (GPU-friendly widths)."""
    return int(math.ceil(x / divisor) * divisor)


def guess_model_scale(name: str | Path) -> str | None:
    """The scale letter in a model name: 'yolov8s.yaml' -> 's'; None when the name has none."""
    match = re.search(r"yolov?\d+([nslmx])(?![a-z0-9])", Path(name).stem)
    return match.group(1) if match else None


def load_model_yaml(cfg: str | Path) -> dict:
    """Read a model yaml; 'yolov8n.yaml', 'yolo11s.yaml', 'yolo26x.yaml'... resolve to the bundled family yaml at that scale.

    A path that exists is read as given; otherwise the name is looked up in ultralytics/cfg/models.
    """
    path = Path(cfg)
    scale = guess_model_scale(path)
    unscaled = re.sub(r"(yolov?\d+)[nslmx](?![a-z0-9])", r"\1", path.name)
    if path.is_file():
        found = path
    else:
        bundled = {p.name: p for p in MODEL_CFG_DIR.rglob("*.yaml")}
        found = bundled.get(path.name) or bundled.get(unscaled)
        if found is None:
            raise FileNotFoundError(
                f"model config {str(cfg)!r} not found, neither as a file nor among the bundled configs "
                f"({', '.join(sorted(bundled))}). Use e.g. 'yolov8n.yaml' (scales n/s/m/l/x) or a path to a yaml."
            )
    d = yaml_load(found)
    if not isinstance(d, dict) or "backbone" not in d or "head" not in d:
        raise ValueError(f"{found} is not a model config: it needs 'backbone' and 'head' lists (see yolov8.yaml)")
    if scale:
        d["scale"] = scale
    d["yaml_file"] = str(cfg)
    return d


def _resolve_arg(value, nc: int):
    """Model-yaml args are literals, except the names 'nc' (number of classes) and 'None'."""
    if value == "nc":
        return nc
    if value == "None":
        return None
    return value


def parse_model(d: dict, ch: int, verbose: bool = False) -> tuple[nn.Sequential, list[int]]:
    """Build the layer Sequential and the sorted indices of layers whose outputs later layers reuse."""
    nc = d["nc"]
    scales = d.get("scales")
    scale_letter = d.get("scale") or ""
    if scales:
        scale = d.get("scale")
        if not scale:
            scale = next(iter(scales))
            LOGGER.warning(f"no model scale given; using scale '{scale}' (name the yaml e.g. 'yolov8{scale}.yaml')")
        if scale not in scales:
            raise ValueError(f"model scale {scale!r} is not one of {list(scales)}")
        depth, width, max_channels = scales[scale]
        scale_letter = scale
    else:
        depth, width, max_channels = d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), float("inf")

    reg_max, end2end = int(d.get("reg_max", 16)), bool(d.get("end2end", False))
    legacy_head = True  # YOLOv8's Detect layout unless a YOLO11-style block appears (as upstream decides)
    channels = [ch]  # output channels of every layer so far (channels[-1] is the previous layer)
    layers, save = [], []
    for i, row in enumerate(d["backbone"] + d["head"]):
        if len(row) != 4:
            raise ValueError(f"model config layer {i} {row!r}: expected [from, repeats, module, args]")
        f, n, type_name, args = row
        if type_name not in LAYER_TYPES:
            raise ValueError(
                f"model config layer {i}: module {type_name!r} is not supported; this package builds "
                f"YOLO detection models from {sorted(set(LAYER_TYPES))}"
            )
        layer_cls = LAYER_TYPES[type_name]
        args = [_resolve_arg(a, nc) for a in args]
        n = max(round(n * depth), 1) if n > 1 else n
        c_in = channels[f] if isinstance(f, int) else None

        kwargs: dict = {}
        if layer_cls in CHANNEL_LAYERS:
            c_out = args[0]
            if c_out != nc:
                c_out = make_divisible(min(c_out, max_channels) * width, 8)
            if layer_cls is SPPF:
                # rows with only [c2, k] predate YOLO26's SPPF, whose first conv is unactivated
                kwargs["cv1_act"] = len(args) <= 2
            args = [c_in, c_out, *args[1:]]
            if layer_cls in REPEAT_ARG_LAYERS:
                args.insert(2, n)
                n = 1
            if layer_cls in NON_LEGACY_HEAD_LAYERS:
                legacy_head = False
            if layer_cls is C3k2 and scale_letter in ("m", "l", "x"):
                args[3:4] = [True]  # the larger scales use C3k inner blocks (c3k=True), as upstream builds them
        elif layer_cls is Concat:
            c_out = sum(channels[x] for x in f)
        elif layer_cls is Detect:
            args = [args[0], [channels[x] for x in f]]
            kwargs = {"reg_max": reg_max, "end2end": end2end, "legacy": legacy_head}
            c_out = None
        else:  # shape-preserving layers such as Upsample
            c_out = c_in

        layer = nn.Sequential(*(layer_cls(*args, **kwargs) for _ in range(n))) if n > 1 else layer_cls(*args, **kwargs)
        layer_cls_path = f"{layer_cls.__module__}.{layer_cls.__qualname__}"
        layer.i, layer.f, layer.type = i, f, layer_cls_path
        layer.np = sum(p.numel() for p in layer.parameters())
        if verbose:
            LOGGER.info(f"{i:>3}{str(f):>18}{n:>3}{layer.np:10.0f}  {layer_cls_path:<45}{str(args):<30}")
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        layers.append(layer)
        if i == 0:
            channels = []
        channels.append(c_out)
    return nn.Sequential(*layers), sorted(save)


class DetectionModel(nn.Module):
    """YOLOv8 detector. In eval mode `model(x)` returns only the (B, 4 + nc, anchors) tensor."""

    def __init__(
        self, cfg: str | Path | dict = "yolov8n.yaml", ch: int = 3, nc: int | None = None, verbose: bool = False
    ):
        super().__init__()
        self.yaml = deepcopy(cfg) if isinstance(cfg, dict) else load_model_yaml(cfg)
        ch = self.yaml.get("channels", ch)
        self.yaml["channels"] = ch
        if nc is not None and nc != self.yaml.get("nc"):
            if verbose:
                LOGGER.info(f"overriding the model config's nc={self.yaml.get('nc')} with nc={nc}")
            self.yaml["nc"] = nc
        nc = self.yaml.get("nc")
        if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1:
            raise ValueError(f"number of classes must be a positive integer, got nc={nc!r}")
        self.model, self.save = parse_model(deepcopy(self.yaml), ch=ch, verbose=verbose)
        self.nc = nc
        self.names = {i: f"{i}" for i in range(nc)}
        self.inplace = True
        self.task = "detect"
        self.args: dict = {}

        head = self.model[-1]
        if not isinstance(head, Detect):
            raise ValueError(f"the last layer of a detection model must be Detect, got {type(head).__name__}")
        self.stride = self._measure_strides(ch)
        head.stride = self.stride.clone()
        head.bias_init()
        if verbose:
            self.info()

    @torch.no_grad()
    def _measure_strides(self, ch: int, size: int = 64) -> torch.Tensor:
        """Strides of the head's inputs, measured by running a blank image through the layers before it.

        Runs in eval mode so that BatchNorm statistics are not touched; a small image keeps building
        the large scales cheap (64 is a multiple of every YOLOv8 stride).
        """
        was_training = self.training
        self.eval()
        try:
            feats = self._run_layers(torch.zeros(1, ch, size, size), stop_before_head=True)
        finally:
            self.train(was_training)
        return torch.tensor([size / f.shape[-2] for f in feats])

    def _run_layers(self, x: torch.Tensor, stop_before_head: bool = False):
        outputs: list[torch.Tensor | None] = []
        for layer in self.model:
            if layer.f != -1:  # gather inputs from earlier layers
                x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
            if stop_before_head and layer is self.model[-1]:
                return x
            x = layer(x)
            outputs.append(x if layer.i in self.save else None)
        return x

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor | list[torch.Tensor]:
        """(B, 3, H, W) RGB 0..1, H and W multiples of the max stride -> (B, 4 + nc, anchors) in eval mode.

        Upstream's `augment`, `visualize` and `embed` keywords are accepted for call compatibility;
        those features are not implemented, so a true value only logs a warning.
        """
        unsupported = [k for k in ("augment", "visualize", "embed", "profile") if kwargs.get(k)]
        if unsupported:
            LOGGER.warning(f"DetectionModel: {', '.join(unsupported)} not implemented; ignored")
        return self._run_layers(x)

    @property
    def end2end(self) -> bool:
        """True when eval forward returns NMS-free (B, k, 6) detections from the one-to-one head (YOLO26)."""
        return bool(getattr(self.model[-1], "end2end", False))

    def select_head(self, end2end: bool, max_det: int = 300, agnostic: bool = False) -> None:
        """Pick the inference head as upstream's `nms=False` does: the one-to-one branch with top-`max_det`
        selection (class-agnostic if asked) when `end2end` and the model has one; otherwise one-to-many."""
        head = self.model[-1]
        if not getattr(head, "has_one2one", False):
            if end2end:
                LOGGER.warning("nms=False: this model has no one-to-one (NMS-free) head; using its head + NMS")
            return
        head.end2end = bool(end2end)
        head.max_det = int(max_det)
        head.agnostic_nms = bool(agnostic)

    def is_fused(self) -> bool:
        return not any("bn" in m._modules for m in self.modules() if isinstance(m, Conv))

    def fuse(self, verbose: bool = False) -> DetectionModel:
        """Fold every BatchNorm into its convolution for inference. Runs once; later calls do nothing."""
        if not self.is_fused():
            for module in self.modules():
                if isinstance(module, Conv):
                    module.fuse()
            if verbose:
                self.info()
        return self

    def info(
        self, detailed: bool = False, verbose: bool = True, imgsz: int = 640
    ) -> tuple[int, int, int, float] | None:
        """Upstream's summary line and (layers, parameters, gradients, GFLOPs), None when not verbose:
        the one implementation is `utils/model_info.model_info`, shared with `YOLO.info()`."""
        return model_info(self, detailed=detailed, verbose=verbose, imgsz=imgsz)
