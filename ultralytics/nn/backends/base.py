"""What every inference backend exposes, so the predictor and validator never branch on format."""

from __future__ import annotations

import torch


class Backend:
    """Base class: attributes every backend sets, plus defaults for the optional ones.

    Subclasses set these in __init__ and implement `forward`. `imgsz`/`batch` describe a static model
    (AutoBackend letterboxes to `imgsz` and splits or pads batches to `batch`); `dynamic` models take
    any shape within their limits.
    """

    names: dict[int, str]
    stride: int = 32
    task: str = "detect"
    metadata: dict
    imgsz: tuple[int, int] | None = None
    batch: int = 0
    dynamic: bool = True
    fp16: bool = False
    pt: bool = False
    end2end: bool = False  # forward returns final detections (B, N, 6) x1,y1,x2,y2,score,cls, not raw output
    device: torch.device = torch.device("cpu")

    def select_head(self, end2end: bool, max_det: int = 300, agnostic: bool = False) -> None:
        """Choose NMS-free output where the model can switch (YOLO26 .pt: upstream's `nms=False`).

        Exported models have their output fixed at export time, so the default does nothing.
        """

    def forward(self, im: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def graph_safe(self, shape: tuple[int, ...]) -> bool:
        """Whether `forward` at this input shape may be captured once and replayed as a CUDA graph: pure
        device work on the current stream, into buffers that stay valid for that shape. False unless a
        backend knows better (PyTorch: any shape; a static TensorRT engine: its one input shape)."""
        return False

    def __call__(self, im: torch.Tensor) -> torch.Tensor:
        return self.forward(im)


def is_end2end(meta: dict) -> bool:
    """Whether an exported model's output is final detections: an end-to-end head (`end2end`, YOLO26)
    or NMS exported into the graph (`args.nms`; upstream writes end2end False for those)."""
    args = meta.get("args")
    return bool(meta.get("end2end")) or (isinstance(args, dict) and bool(args.get("nms")))


def default_names(nc: int) -> dict[int, str]:
    """Upstream's placeholder names for a model without metadata."""
    return {i: f"class{i}" for i in range(nc)}
