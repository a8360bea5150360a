"""Letterbox: resize keeping the aspect ratio, then pad to the network's input shape.

The geometry lives in `letterbox_params`, a pure function, so that every implementation (this CPU
one, the CUDA one in ultralytics/gpu, `scale_boxes` going back) places pixels identically. The rules
match upstream Ultralytics exactly, because the network was trained on (and its reference outputs
were recorded with) this exact placement; a one-pixel shift changes boxes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from ultralytics.utils import LOGGER


@dataclass(frozen=True)
class LetterboxParams:
    """Where an image lands inside the letterboxed canvas."""

    ratio: tuple[float, float]  # (width gain, height gain)
    new_unpad: tuple[int, int]  # (width, height) of the resized image, before padding
    top: int
    bottom: int
    left: int
    right: int

    @property
    def pad(self) -> tuple[float, float]:
        """(left, top) padding, the offset `scale_boxes` subtracts."""
        return float(self.left), float(self.top)

    @property
    def canvas_hw(self) -> tuple[int, int]:
        return self.new_unpad[1] + self.top + self.bottom, self.new_unpad[0] + self.left + self.right


PAD_VALUE = 114  # upstream's grey border: every letterbox (CPU, GPU, calibration) pads with this level


def imgsz_pair(imgsz: int | Sequence[int] | None, default: int | None = None) -> tuple[int, int]:
    """The one imgsz normaliser: an int, [n] or [h, w] (None → `default`) as (height, width) positive ints."""
    if imgsz is None and default is not None:
        imgsz = default
    values = [imgsz, imgsz] if isinstance(imgsz, int | np.integer) else list(imgsz or [])
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise ValueError(f"imgsz={imgsz!r} is not valid; pass an int or [height, width] of positive ints")
    return int(values[0]), int(values[1])


def letterbox_params(
    shape: tuple[int, int],
    new_shape: int | tuple[int, int] = (640, 640),
    *,
    auto: bool = False,
    scale_fill: bool = False,
    scaleup: bool = True,
    center: bool = True,
    stride: int = 32,
) -> LetterboxParams:
    """Geometry for an image of `shape` (h, w) letterboxed to `new_shape` (h, w).

    r = min(new_h / h, new_w / w) (capped at 1 without `scaleup`); the resized size is rounded and at
    least 1 px; `auto` keeps only the padding needed to reach a multiple of `stride` (rectangular
    inference); `scale_fill` stretches without padding. Centred padding is split top/left =
    round(d - 0.1), bottom/right = round(d + 0.1), so odd paddings put the extra pixel bottom/right.
    """
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"cannot letterbox an empty image of shape {tuple(shape)}")
    new_h, new_w = imgsz_pair(new_shape)
    r = min(new_h / h, new_w / w)
    if not scaleup:
        r = min(r, 1.0)
    ratio = (r, r)
    unpad_w, unpad_h = max(1, int(round(w * r))), max(1, int(round(h * r)))
    dw, dh = new_w - unpad_w, new_h - unpad_h
    if auto:
        dw, dh = dw % int(stride), dh % int(stride)
    elif scale_fill:
        dw, dh = 0, 0
        unpad_w, unpad_h = new_w, new_h
        ratio = (new_w / w, new_h / h)
    if center:
        dw, dh = dw / 2, dh / 2
        top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
        left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    else:
        top, bottom, left, right = 0, int(round(dh + 0.1)), 0, int(round(dw + 0.1))
    return LetterboxParams(ratio, (unpad_w, unpad_h), top, bottom, left, right)


class LetterBox:
    """Callable letterbox for BGR (or gray) uint8 HWC images, as the predictor feeds the network."""

    def __init__(
        self,
        new_shape: int | tuple[int, int] = (640, 640),
        auto: bool = False,
        scale_fill: bool = False,
        scaleup: bool = True,
        center: bool = True,
        stride: int = 32,
        padding_value: int = PAD_VALUE,
    ):
        self.new_shape = imgsz_pair(new_shape)
        self.auto = auto
        self.scale_fill = scale_fill
        self.scaleup = scaleup
        self.center = center
        self.stride = int(stride)
        self.padding_value = padding_value

    def params(self, shape: tuple[int, int]) -> LetterboxParams:
        return letterbox_params(
            shape,
            self.new_shape,
            auto=self.auto,
            scale_fill=self.scale_fill,
            scaleup=self.scaleup,
            center=self.center,
            stride=self.stride,
        )

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
            got = getattr(image, "shape", type(image).__name__)
            raise ValueError(f"LetterBox expects a non-empty HWC or HW numpy image, got {got}")
        p = self.params(image.shape[:2])
        channels = image.shape[2] if image.ndim == 3 else None
        if (image.shape[1], image.shape[0]) != p.new_unpad:
            image = cv2.resize(image, p.new_unpad, interpolation=cv2.INTER_LINEAR)
            if channels == 1:  # cv2 drops a single channel axis
                image = image[..., None]
        if p.top or p.bottom or p.left or p.right:
            nch = channels or 1
            value = (self.padding_value,) * min(nch, 4)
            padded = cv2.copyMakeBorder(image, p.top, p.bottom, p.left, p.right, cv2.BORDER_CONSTANT, value=value)
            if channels == 1 and padded.ndim == 2:
                padded = padded[..., None]
            image = padded
        return image


# ------------------------------------------------------------------------ imgsz and the network input
def check_imgsz(imgsz: int | list[int] | tuple[int, ...], stride: int) -> tuple[int, int]:
    """[h, w] rounded up to multiples of the stride, with a warning when that changes it (as upstream)."""
    hw = list(imgsz_pair(imgsz))
    fixed = [max(math.ceil(int(v) / stride) * stride, stride) for v in hw]
    if fixed != hw:
        LOGGER.warning(f"WARNING imgsz={list(hw)} must be a multiple of max stride {stride}, updating to {fixed}")
    return fixed[0], fixed[1]


def resolve_imgsz(model: Any, imgsz: Any, explicit: bool = True) -> tuple[int, int]:
    """The network input size: a static model's own (warning only when the caller asked for another),
    else the requested size (640 when none) rounded to the stride. A dynamic ONNX exported at 320 thus
    predicts at 640 unless told, as upstream does."""
    if model.imgsz and not model.dynamic:
        fixed = tuple(model.imgsz)
        if explicit and imgsz is not None and check_imgsz(imgsz, model.stride) != fixed:
            LOGGER.warning(f"WARNING this model has a fixed input size {list(fixed)}; imgsz={imgsz} is ignored")
        return fixed
    return check_imgsz(imgsz if imgsz is not None else 640, model.stride)


def rect_padding(images: list[np.ndarray], args: Any, model: Any) -> bool:
    """Upstream's minimal "rect" letterbox: only when every image of the batch has one shape and the
    model takes any shape."""
    same_shapes = len({im.shape for im in images}) == 1
    return same_shapes and bool(args.rect) and (model.pt or model.dynamic)


# ------------------------------------------------------------------------------- image <-> tensor
def images_to_tensor(images: list[np.ndarray], device: Any, half: bool = False) -> torch.Tensor:
    """Letterboxed BGR HWC uint8 images of one shape → BCHW RGB 0..1 on `device` (float16 with `half`)."""
    batch = np.ascontiguousarray(np.stack(images)[..., ::-1].transpose(0, 3, 1, 2))  # BGR→RGB, BHWC→BCHW
    tensor = torch.from_numpy(batch).to(device)
    tensor = tensor.half() if half else tensor.float()
    return tensor / 255


def originals(images: list[np.ndarray] | torch.Tensor) -> list[np.ndarray]:
    """The images Results keep: the BGR arrays as loaded, or a tensor source turned back into them."""
    return tensor_to_bgr(images) if isinstance(images, torch.Tensor) else images


def tensor_to_bgr(batch: torch.Tensor) -> list[np.ndarray]:
    """BCHW RGB 0..1 tensor → list of HWC BGR uint8 arrays (the 'original images' of a tensor source).

    The channel flip and HWC layout are done where the tensor lives, before the one copy to the host:
    numpy's strided transpose + flip of each image took ~2 ms per 384x640 frame on the host."""
    arr = (batch.detach().float().clamp(0, 1) * 255).round().byte()
    arr = arr.flip(1).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return list(arr)
