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
# Palette entries upstream writes dark text on (observed with upstream 8.4.190 for every class colour),
# and that text colour (BGR).
_LIGHT_INDICES = (1, 2, 3, 5, 7, 8, 12, 14, 19)
_LIGHT_BGR = {(b, g, r) for r, g, b in (_PALETTE[i] for i in _LIGHT_INDICES)}
DARK_TEXT = (104, 31, 17)


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
        outside = p1[1] >= h  # room above the box for the tag; else the tag goes inside, below the top edge
        if p1[0] > self.image.shape[1] - w:  # a tag that would pass the right edge is shifted left, inside
            p1 = (self.image.shape[1] - w, p1[1])
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
        """Upstream's label text: dark blue on its light palette colours, white on everything else."""
        return DARK_TEXT if tuple(int(v) for v in background) in _LIGHT_BGR else (255, 255, 255)

    def result(self) -> np.ndarray:
        return self.image


def save_one_box(xyxy, image: np.ndarray, file, gain: float = 1.02, pad: int = 10):
    """Write the crop of one box (grown by `gain` and `pad` px, clipped) from a BGR image; returns the path.

    Upstream's crop geometry and JPEG settings (quality 95, no chroma subsampling), so crops match.
    """
    import io
    from pathlib import Path

    from PIL import Image

    from ultralytics.utils.atomic_file import atomic_write

    x1, y1, x2, y2 = (float(v) for v in xyxy)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w, h = (x2 - x1) * gain + pad, (y2 - y1) * gain + pad
    ih, iw = image.shape[:2]
    left, right = (int(min(max(v, 0), iw)) for v in (cx - w / 2, cx + w / 2))
    top, bottom = (int(min(max(v, 0), ih)) for v in (cy - h / 2, cy + h / 2))
    crop = image[top:bottom, left:right]
    file = Path(file)
    rgb = crop[..., ::-1] if crop.ndim == 3 else crop
    # Encoded in memory first: PIL writes a JPEG straight to a file's descriptor and ignores a short
    # write (a full disk), which would leave a truncated crop; atomic_write raises instead.
    encoded = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(encoded, format="JPEG", quality=95, subsampling=0)
    atomic_write(file, encoded.getbuffer(), durable=False)  # per-image output: whole or absent, no fsync
    return file


def plot_curves(metrics, save_dir) -> list:
    """Upstream's val curve images: BoxPR_curve.png, BoxF1_curve.png, BoxP_curve.png, BoxR_curve.png.

    One thin line per class and a thick mean line, as upstream draws them (matplotlib, imported here).
    """
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ultralytics.utils.metrics import smooth

    names = metrics.names
    files = []
    for (x, y, xlabel, ylabel), stem in zip(metrics.curves_results, ("BoxPR", "BoxF1", "BoxP", "BoxR")):
        fig, ax = plt.subplots(1, 1, figsize=(9, 6), tight_layout=True)
        y = np.asarray(y)
        classes = metrics.ap_class_index
        if 0 < len(y) < 21:
            for i, row in enumerate(y):
                label = names.get(int(classes[i]), str(classes[i])) if i < len(classes) else str(i)
                if stem == "BoxPR":
                    label += f" {metrics.box.ap50[i]:.3f}"
                ax.plot(x, row, linewidth=1, label=label)
        else:
            ax.plot(x, y.T if len(y) else np.zeros_like(x), linewidth=1, color="grey")
        mean = y.mean(0) if len(y) else np.zeros_like(x)
        if stem == "BoxPR":
            ax.plot(x, mean, linewidth=3, color="blue", label=f"all classes {metrics.box.map50:.3f} mAP@0.5")
        else:
            best = smooth(mean, 0.05)
            i = int(best.argmax())
            ax.plot(x, best, linewidth=3, color="blue", label=f"all classes {best[i]:.2f} at {x[i]:.3f}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left")
        ax.set_title(f"{ylabel}-{xlabel} Curve")
        file = Path(save_dir) / f"{stem}_curve.png"
        fig.savefig(file, dpi=250)
        plt.close(fig)
        files.append(file)
    return files


def plot_confusion_matrix(matrix, save_dir) -> list:
    """confusion_matrix.png (counts) and confusion_matrix_normalized.png (each true-class column sums to 1)."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    labels = [*matrix.names.values(), "background"]
    files = []
    for normalize in (False, True):
        values = matrix.matrix.astype(float)
        if normalize:
            values = values / (values.sum(0, keepdims=True) + 1e-9)
        fig, ax = plt.subplots(1, 1, figsize=(12, 9), tight_layout=True)
        image = ax.imshow(np.where(values > 0.005 if normalize else values > 0, values, np.nan), cmap="Blues")
        fig.colorbar(image, ax=ax)
        ticks = range(len(labels))
        ax.set_xticks(list(ticks), labels, rotation=90 if len(labels) > 10 else 0)
        ax.set_yticks(list(ticks), labels)
        if len(labels) <= 30:
            for (r, c), v in np.ndenumerate(values):
                if v > 0:
                    ax.text(c, r, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=8)
        ax.set_xlabel("True")
        ax.set_ylabel("Predicted")
        ax.set_title("Confusion Matrix" + (" Normalized" if normalize else ""))
        file = Path(save_dir) / f"confusion_matrix{'_normalized' if normalize else ''}.png"
        fig.savefig(file, dpi=250)
        plt.close(fig)
        files.append(file)
    return files
