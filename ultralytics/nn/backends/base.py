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
    device: torch.device = torch.device("cpu")

    def forward(self, im: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def graph_safe(self, shape: tuple[int, ...]) -> bool:
        """Whether `forward` at this input shape may be captured once and replayed as a CUDA graph: pure
        device work on the current stream, into buffers that stay valid for that shape. False unless a
        backend knows better (PyTorch: any shape; a static TensorRT engine: its one input shape)."""
        return False

    def __call__(self, im: torch.Tensor) -> torch.Tensor:
        return self.forward(im)


def default_names(nc: int) -> dict[int, str]:
    """Upstream's placeholder names for a model without metadata."""
    return {i: f"class{i}" for i in range(nc)}
