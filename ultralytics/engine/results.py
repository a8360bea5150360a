"""What predict returns: one `Results` per image, holding its detections as `Boxes`.

The API mirrors upstream Ultralytics so user code written for it keeps working: same attribute
names, same column layout (xyxy, [track id], conf, cls), same text/JSON formats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ultralytics.utils import LOGGER, ops
from ultralytics.utils.atomic_file import atomic_write
from ultralytics.utils.plotting import Annotator, colors, save_one_box
from ultralytics.utils.tabular import SummaryExports

Array = torch.Tensor | np.ndarray

# What str()/repr() list, in upstream's order (its public attributes, sorted).
RESULTS_ATTRIBUTES = ("boxes", "depth", "keypoints", "masks", "names", "obb", "orig_img", "orig_shape", "path",
                      "probs", "save_dir", "semantic_mask", "speed")  # fmt: skip
BOXES_ATTRIBUTES = ("cls", "conf", "data", "id", "is_track", "orig_shape", "shape", "xywh", "xywhn", "xyxy", "xyxyn")


class _TensorHolder:
    """Shared device/format conversions: each returns a new object of the same class."""

    data: Array

    def _new(self, data: Array):  # subclasses rebuild themselves around converted data
        raise NotImplementedError

    def cpu(self):
        return self if isinstance(self.data, np.ndarray) else self._new(self.data.cpu())

    def numpy(self):
        return self if isinstance(self.data, np.ndarray) else self._new(self.data.cpu().numpy())

    def cuda(self):
        return self._new(torch.as_tensor(self.data).cuda())

    def to(self, *args, **kwargs):
        return self._new(torch.as_tensor(self.data).to(*args, **kwargs))


class Boxes(_TensorHolder):
    """Detections of one image: `data` is (N, 6) xyxy, conf, cls or (N, 7) xyxy, track id, conf, cls."""

    def __init__(self, data: Array, orig_shape: tuple[int, int]):
        if data.ndim == 1:
            data = data[None, :]
        if data.ndim != 2 or data.shape[-1] not in (6, 7):
            raise ValueError(
                f"Boxes expects (N, 6) [x1, y1, x2, y2, conf, cls] or (N, 7) with a track id, got shape {tuple(data.shape)}"
            )
        self.data = data
        self.orig_shape = tuple(int(s) for s in orig_shape[:2])
        self.is_track = data.shape[-1] == 7

    def _new(self, data: Array) -> Boxes:
        return Boxes(data, self.orig_shape)

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index) -> Boxes:
        return Boxes(self.data[index], self.orig_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """`data.shape` (a torch.Size for tensors, as upstream)."""
        return self.data.shape

    @property
    def xyxy(self) -> Array:
        return self.data[:, :4]

    @property
    def conf(self) -> Array:
        return self.data[:, -2]

    @property
    def cls(self) -> Array:
        return self.data[:, -1]

    @property
    def id(self) -> Array | None:
        return self.data[:, -3] if self.is_track else None

    @property
    def xywh(self) -> Array:
        return ops.xyxy2xywh(self.xyxy)

    @property
    def xyxyn(self) -> Array:
        xyxy = self.xyxy.clone() if isinstance(self.xyxy, torch.Tensor) else np.copy(self.xyxy)
        h, w = self.orig_shape
        xyxy[..., [0, 2]] /= w
        xyxy[..., [1, 3]] /= h
        return xyxy

    @property
    def xywhn(self) -> Array:
        xywh = ops.xyxy2xywh(self.xyxy)
        h, w = self.orig_shape
        xywh[..., [0, 2]] /= w
        xywh[..., [1, 3]] /= h
        return xywh

    def __str__(self) -> str:
        return _attribute_dump(self, BOXES_ATTRIBUTES)

    __repr__ = __str__


class Results(_TensorHolder, SummaryExports):
    """Predictions for one image: the original image, its path, class names and `Boxes`."""

    def __init__(
        self,
        orig_img: np.ndarray,
        path: str,
        names: dict[int, str],
        boxes: Array | None = None,
        masks: Any = None,
        probs: Any = None,
        keypoints: Any = None,
        obb: Any = None,
        speed: dict[str, float] | None = None,
        semantic_mask: Any = None,
        depth: Any = None,
    ):
        """Upstream's signature, so positional calls line up; the other tasks' outputs must stay None."""
        others = {"masks": masks, "probs": probs, "keypoints": keypoints, "obb": obb}
        others.update(semantic_mask=semantic_mask, depth=depth)
        given = sorted(k for k, v in others.items() if v is not None)
        if given:
            raise ValueError(f"Results: {', '.join(given)} belong to other tasks; this package is detection only")
        if not isinstance(orig_img, np.ndarray) or orig_img.ndim < 2:
            raise ValueError(f"Results needs the original image as an HWC numpy array, got {type(orig_img).__name__}")
        self.orig_img = orig_img
        self.orig_shape = tuple(orig_img.shape[:2])
        self.path = str(path)
        self.names = dict(names)
        self.boxes = Boxes(boxes, self.orig_shape) if boxes is not None else None
        self.speed = speed if speed is not None else {"preprocess": None, "inference": None, "postprocess": None}
        # Other upstream tasks' outputs; always None for a detector.
        self.masks = self.probs = self.keypoints = self.obb = self.semantic_mask = self.depth = None
        self.save_dir: str | None = None

    @property
    def data(self) -> Array | None:
        return None if self.boxes is None else self.boxes.data

    def _new(self, data: Array) -> Results:
        return Results(self.orig_img, self.path, self.names, boxes=data, speed=self.speed)

    def cpu(self) -> Results:
        return self if self.boxes is None else super().cpu()

    def numpy(self) -> Results:
        return self if self.boxes is None else super().numpy()

    def cuda(self) -> Results:
        return self if self.boxes is None else super().cuda()

    def to(self, *args, **kwargs) -> Results:
        return self if self.boxes is None else super().to(*args, **kwargs)

    def __len__(self) -> int:
        return 0 if self.boxes is None else len(self.boxes)

    def __getitem__(self, index) -> Results:
        if self.boxes is None:
            raise IndexError("this Results has no boxes to index")
        data = self.boxes.data[index]
        return self._new(data[None] if data.ndim == 1 else data)

    def new(self) -> Results:
        """Same image, path and names, no detections."""
        return Results(self.orig_img, self.path, self.names, speed=self.speed)

    # ------------------------------------------------------------------ text
    def verbose(self) -> str:
        """The log fragment for this image, e.g. '2 circles, 1 square, ' ('(no detections), ' without any)."""
        if not len(self):
            return "(no detections), "
        cls = np.asarray(_to_numpy(self.boxes.cls)).astype(int)
        parts = []
        for c in np.unique(cls):
            n = int((cls == c).sum())
            parts.append(f"{n} {self.names.get(int(c), str(int(c)))}{'s' * (n > 1)}, ")
        return "".join(parts)

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
        """One dict per box: name, class, confidence, box {x1, y1, x2, y2} (0..1 with `normalize`)."""
        if not len(self):
            return []
        h, w = self.orig_shape if normalize else (1, 1)
        xyxy = _to_numpy(self.boxes.xyxy).astype(np.float64)
        conf = _to_numpy(self.boxes.conf)
        cls = _to_numpy(self.boxes.cls).astype(int)
        ids = _to_numpy(self.boxes.id) if self.boxes.is_track else None
        rows = []
        for i in range(len(xyxy)):
            row: dict[str, Any] = {
                "name": self.names.get(int(cls[i]), str(int(cls[i]))),
                "class": int(cls[i]),
                "confidence": round(float(conf[i]), decimals),
                "box": {
                    "x1": round(float(xyxy[i, 0] / w), decimals),
                    "y1": round(float(xyxy[i, 1] / h), decimals),
                    "x2": round(float(xyxy[i, 2] / w), decimals),
                    "y2": round(float(xyxy[i, 3] / h), decimals),
                },
            }
            if ids is not None:
                row["track_id"] = int(ids[i])
            rows.append(row)
        return rows

    def update(self, boxes: Array | None = None, **others: Any) -> Results:
        """Replace the boxes (clipped to the image, as upstream); other tasks' outputs cannot be set here."""
        given = sorted(k for k, v in others.items() if v is not None)
        if given:
            raise ValueError(
                f"Results.update: {', '.join(given)} belong to other tasks; this package is detection only"
            )
        if boxes is not None:
            data = torch.as_tensor(boxes).clone()
            data = data[None] if data.ndim == 1 else data
            h, w = self.orig_shape
            data[:, [0, 2]] = data[:, [0, 2]].clamp(0, w)
            data[:, [1, 3]] = data[:, [1, 3]].clamp(0, h)
            self.boxes = Boxes(data, self.orig_shape)
        return self

    def save_crop(self, save_dir: str | Path, file_name: str | Path = Path("im.jpg")) -> list[str]:
        """Each detection cut from the original image into save_dir/<class name>/<file_name stem>.jpg.

        As upstream's crops: the box grown by 2 % plus 10 px, clipped to the image; a name already
        taken gets -2, -3, ... so no earlier crop is overwritten. Returns the written paths.
        """
        written: list[str] = []
        if not len(self):
            return written
        xyxy = _to_numpy(self.boxes.xyxy).astype(np.float64)
        cls = _to_numpy(self.boxes.cls).astype(int)
        for i in range(len(xyxy)):
            folder = Path(save_dir) / self.names.get(int(cls[i]), str(int(cls[i])))
            file = _free_name(folder / f"{Path(file_name).stem}.jpg")
            written.append(str(save_one_box(xyxy[i], self.orig_img, file)))
        return written

    def save_txt(self, txt_file: str | Path, save_conf: bool = False) -> str:
        """Append YOLO-format lines 'class xc yc w h [conf]' (normalised) to `txt_file`.

        Appending (as upstream does) lets every frame of a video add to one file, and never
        destroys an existing file.
        """
        txt_file = Path(txt_file)
        lines = []
        if len(self):
            xywhn = _to_numpy(self.boxes.xywhn)
            conf = _to_numpy(self.boxes.conf)
            cls = _to_numpy(self.boxes.cls).astype(int)
            for i in range(len(xywhn)):
                values = [int(cls[i]), *(float(v) for v in xywhn[i])] + ([float(conf[i])] if save_conf else [])
                lines.append(" ".join(f"{v:g}" for v in values))
        if lines:  # append = old text + new lines, written whole through the atomic writer
            old = txt_file.read_bytes() if txt_file.is_file() else b""
            atomic_write(txt_file, old + ("\n".join(lines) + "\n").encode("utf-8"), durable=False)  # per image
        return str(txt_file)

    # ------------------------------------------------------------------ images
    def plot(
        self,
        conf: bool = True,
        labels: bool = True,
        boxes: bool = True,
        line_width: int | None = None,
        img: np.ndarray | None = None,
        show: bool = False,
        save: bool = False,
        filename: str | None = None,
        **_unused: Any,
    ) -> np.ndarray:
        """A BGR copy of the image (or `img`) with boxes, class names and confidences drawn.

        `show=True` displays it (see show()), `save=True` writes it to `filename`, as upstream's plot.
        """
        base = self.orig_img if img is None else img
        if base.ndim == 2:
            base = cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)
        annotator = Annotator(base, line_width=line_width)
        if boxes and len(self):
            xyxy = _to_numpy(self.boxes.xyxy)
            scores = _to_numpy(self.boxes.conf)
            cls = _to_numpy(self.boxes.cls).astype(int)
            ids = _to_numpy(self.boxes.id) if self.boxes.is_track else None
            for i in reversed(range(len(xyxy))):  # highest confidence drawn last, on top
                c = int(cls[i])
                label = ""
                if labels:
                    name = (f"id:{int(ids[i])} " if ids is not None else "") + self.names.get(c, str(c))
                    label = f"{name} {scores[i]:.2f}" if conf else name
                elif conf:
                    label = f"{scores[i]:.2f}"
                annotator.box_label(xyxy[i], label, color=colors(c, bgr=True))
        plotted = annotator.result()
        if show:
            _show_image(plotted, self.path)
        if save:
            self._write_image(plotted, filename)
        return plotted

    def show(self, *args: Any, **kwargs: Any) -> None:
        """Display the plotted image in a window; on a machine without a display, a warning says to save() instead."""
        self.plot(*args, show=True, **kwargs)

    def save(self, filename: str | Path | None = None, **plot_kwargs: Any) -> str:
        """Write the plotted image; default name 'results_<image name>' in the working directory."""
        return self._write_image(self.plot(**plot_kwargs), filename)

    def _write_image(self, image: np.ndarray, filename: str | Path | None) -> str:
        filename = Path(filename) if filename is not None else Path(f"results_{Path(self.path).name or 'image0.jpg'}")
        if not filename.suffix:
            raise ValueError(f"cannot save to {filename}: give a file name with an image suffix such as .jpg")
        filename.parent.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(filename.suffix, image)
        if not ok:
            raise ValueError(f"OpenCV cannot encode images as '{filename.suffix}'; use .jpg or .png")
        atomic_write(filename, encoded.tobytes(), durable=False)  # not imwrite: atomic, non-ASCII paths work
        return str(filename)

    def __str__(self) -> str:
        return _attribute_dump(self, RESULTS_ATTRIBUTES)

    __repr__ = __str__


def _attribute_dump(obj: Any, names: tuple[str, ...]) -> str:
    """Upstream's str() of results objects: the class path, then one 'name: value' line per attribute."""
    lines = []
    for name in names:
        value = getattr(obj, name)
        text = (
            f"{type(value).__module__}.{type(value).__name__} object"
            if isinstance(value, _TensorHolder)
            else repr(value)
        )
        lines.append(f"{name}: {text}")
    return f"{type(obj).__module__}.{type(obj).__name__} object with attributes:\n\n" + "\n".join(lines)


def _free_name(file: Path) -> Path:
    """`file`, or file-2, file-3, ... when taken (upstream's numbering), so nothing is overwritten."""
    n = 2
    candidate = file
    while candidate.exists():
        candidate = file.with_name(f"{file.stem}-{n}{file.suffix}")
        n += 1
    return candidate


def _show_image(image: np.ndarray, title: str) -> None:
    """Open a viewer window, or warn (never fail) where no display exists, e.g. on a server."""
    from ultralytics.utils.settings import display_available

    if not display_available():
        LOGGER.warning(f"WARNING show=True: no display here to open a window for {title}; use save=True instead")
        return
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(image[..., ::-1])).show(title=title)


def _to_numpy(x: Array) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
