"""INT8 calibration images: a dataset split, preprocessed exactly as predict feeds a static model.

Calibration scales are only valid for inputs that look like what the engine will see, so the images
go through the same square letterbox (gray 114), BGR→RGB and /255 as `predict` on a static model.
Both INT8 routes use this set: the TensorRT <= 10 calibrator and our Q/DQ quantizer (TensorRT 11, ONNX).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from ultralytics.data.augment import LetterBox, images_to_tensor, imgsz_pair
from ultralytics.data.dataset import images_in, load_dataset_yaml, split_images
from ultralytics.utils import LOGGER

FEW_IMAGES = 300  # below this, TensorRT's own guidance (and upstream) warns calibration may be unrepresentative


class CalibrationSet:
    """The calibration images of one dataset split, batched as float32 NCHW RGB 0..1.

    `data` is a dataset yaml (its `split` key names an image folder, a txt list or a list of them) or,
    for convenience, an image folder. `model_hash` ties `fingerprint` to the model so a calibration cache
    made for another model or size is never reused.
    """

    def __init__(
        self,
        data: str | Path | None,
        split: str = "val",
        imgsz: int | Sequence[int] = 640,
        fraction: float = 1.0,
        batch: int = 1,
        *,
        model_hash: str = "",
    ) -> None:
        if not data:
            raise ValueError(
                "INT8 needs calibration images: pass data=<dataset.yaml> (e.g. data=coco8.yaml) and optionally "
                "split=train|val. Nothing is downloaded by default; the images should look like your deployment."
            )
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"fraction={fraction} is not valid for calibration: use a value in (0, 1]")
        if int(batch) < 1:
            raise ValueError(f"batch={batch} is not valid for calibration: use an integer >= 1")
        self.imgsz = imgsz_pair(imgsz)
        self.split = split
        self.files = _split_images(Path(data), split)
        where = f"folder {data}" if Path(data).is_dir() else f"split '{split}' of {Path(data).name}"
        if fraction < 1.0:
            self.files = self.files[: max(1, math.floor(len(self.files) * float(fraction)))]
        if len(self.files) < FEW_IMAGES:
            LOGGER.info(
                f"INT8 calibration uses {len(self.files)} images; {FEW_IMAGES}+ representative images are better"
            )
        if len(self.files) < int(batch):
            # TensorRT reads every calibration batch at the engine's batch size (the static input shape or
            # the calibration profile), so a short batch would be read past its end: repeat images instead.
            LOGGER.warning(
                f"INT8 calibration: batch={batch} is larger than the {len(self.files)} images of {where}; "
                f"repeating images to fill one batch of {batch} (add images for better scales)."
            )
            self.files = [self.files[i % len(self.files)] for i in range(int(batch))]
        self.batch = int(batch)
        self.model_hash = str(model_hash)

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"CalibrationSet({len(self)} images, imgsz={self.imgsz}, batch={self.batch})"

    @property
    def num_batches(self) -> int:
        """Full batches only: TensorRT reads whole batches, so a short last one is dropped (upstream too)."""
        return len(self.files) // self.batch

    @property
    def fingerprint(self) -> str:
        """Changes when the image list, any image file, imgsz or the model changes (stat only, no pixel reads)."""
        digest = hashlib.sha256()
        digest.update(f"imgsz={self.imgsz};batch={self.batch};model={self.model_hash}\n".encode())
        for file in self.files:
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def batches(self) -> Iterator[np.ndarray]:
        """Yield float32 (batch, 3, h, w) RGB arrays in 0..1, letterboxed like predict."""
        for start in range(0, self.num_batches * self.batch, self.batch):
            chunk = self.files[start : start + self.batch]
            yield np.stack([self.preprocess(_read_image(f)) for f in chunk])

    def preprocess(self, image_bgr: np.ndarray) -> np.ndarray:
        """One BGR uint8 HWC image → float32 CHW RGB 0..1, square-letterboxed to imgsz."""
        boxed = letterbox(image_bgr, self.imgsz)
        return images_to_tensor([boxed], "cpu")[0].numpy()


def letterbox(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Full letterbox to `shape` (h, w), as predict does for a static model: the same `LetterBox`."""
    return LetterBox(shape, auto=False)(image=image)


def _read_image(file: Path) -> np.ndarray:
    image = cv2.imread(str(file), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"INT8 calibration could not read image {file}: remove it or replace it with a valid image")
    return image


def _split_images(data: Path, split: str) -> list[Path]:
    """Every image of the split, sorted, so the same data always gives the same batches. The dataset
    reader's rules (yaml, folders, .txt lists, image suffixes), the same ones val uses."""
    if not data.exists():
        raise FileNotFoundError(f"INT8 calibration data {data} does not exist: pass data=<dataset.yaml>")
    if data.is_dir():  # an image folder, labelled or not
        files = images_in(data, "calibration")
    else:
        files = split_images(load_dataset_yaml(data), split)
    if not files:
        raise ValueError(f"INT8 calibration folder {data} has no images: add images or pass data=<dataset.yaml>")
    return sorted(dict.fromkeys(files))
