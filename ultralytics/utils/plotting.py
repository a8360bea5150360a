"""Drawing detections with OpenCV only (no font files, nothing downloaded)."""

from __future__ import annotations

import cv2
import numpy as np

# A fixed, high-contrast palette (RGB hex); class i gets colour i modulo its length.
_PALETTE_HEX = (
    "042AFF", "0BDBEB", "F3F3F3", "00DFB7", "111F68", "FF6FDD", "FF444F", "CCED00", "00F344", "BD00FF",
    "00B4FF", "DD00BA", "00FFFF", "26C000", "01FFB3", "7D24FF", "7B0068", "FF1B6C", "FC6D2F", "A2FF0B",
)  # fmt: skip
_PALETTE = [tuple(int(h[i : i + 2], 16) for i in (0, 2, 4)) for h in _PALETTE_HEX]


def colors(i: int, bgr: bool = False) -> tuple[int, int, int]:
    """Colour of class `i` as an (R, G, B) tuple, or (B, G, R) for OpenCV drawing."""
    r, g, b = _PALETTE[int(i) % len(_PALETTE)]
    return (b, g, r) if bgr else (r, g, b)


class Annotator:
    """Draws boxes and labels onto a copy of a BGR image; `result()` returns it."""

    def __init__(self, image: np.ndarray, line_width: int | None = None):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"Annotator needs an HxWx3 BGR image, got {getattr(image, 'shape', type(image))}")
        self.image = np.ascontiguousarray(image).copy()
        # Scale strokes with the image so labels stay readable on both thumbnails and 4K frames.
        self.lw = int(line_width) if line_width else max(round(sum(image.shape[:2]) / 2 * 0.003), 2)
        self.font_thickness = max(self.lw - 1, 1)
        self.font_scale = self.lw / 3

    def box_label(self, box, label: str = "", color: tuple[int, int, int] = (128, 128, 128)) -> None:
        """Rectangle for an xyxy `box`, with `label` on a filled tag above it (inside if no room)."""
        p1, p2 = (int(box[0]), int(box[1])), (int(box[2]), int(box[3]))
        cv2.rectangle(self.image, p1, p2, color, thickness=self.lw, lineType=cv2.LINE_AA)
        if not label:
            return
        (w, h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, self.font_scale, self.font_thickness)
        h += 3
        outside = p1[1] >= h
        p2_tag = (p1[0] + w, p1[1] - h if outside else p1[1] + h)
        cv2.rectangle(self.image, p1, p2_tag, color, -1, cv2.LINE_AA)
        text_org = (p1[0], p1[1] - 2 if outside else p1[1] + h - 1)
        cv2.putText(
            self.image,
            label,
            text_org,
            cv2.FONT_HERSHEY_SIMPLEX,
            self.font_scale,
            self.text_color(color),
            thickness=self.font_thickness,
            lineType=cv2.LINE_AA,
        )

    @staticmethod
    def text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
        """Black on light tags, white on dark ones."""
        b, g, r = background
        return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)

    def result(self) -> np.ndarray:
        return self.image
