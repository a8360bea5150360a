"""Labelled datasets in YOLO format: the dataset yaml, its image lists and the label files.

Used by `val` (ground truth), the benchmark and INT8 calibration (image lists). The rules follow
upstream so existing dataset yamls work unchanged:

- the dataset root is the yaml's `path` key, or the yaml's folder when `path` is absent. A relative
  `path` is tried against the current directory first (upstream), then against the yaml's folder
  (ours: a yaml that sits next to its data keeps working from any directory);
- `train`/`val`/`test` are relative to the root (a leading `../` that does not exist is dropped, as
  upstream does) and may each be a folder, a `.txt` list of images, an image, or a list of those;
- an image's label file is found by replacing the last `/images/` in its path with `/labels/` and its
  suffix with `.txt`; an image without a label file is a background image (no objects);
- a label line is `class cx cy w h` normalised to 0..1, or `class x1 y1 x2 y2 ...` (a polygon, whose
  bounding box is used).

Upstream's `labels.cache` files are ignored: labels are small and reading them is fast, and a stale
cache is a classic source of wrong metrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ultralytics.data.loaders import IMG_FORMATS  # the one list of image suffixes (upstream's)
from ultralytics.utils import LOGGER

SPLITS = ("train", "val", "test")
COORD_TOLERANCE = 1e-6  # normalised coordinates written as e.g. 1.0000001 by float round-off are accepted


class DatasetError(ValueError):
    """A dataset yaml, image list or label file that cannot be used as it is."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file or folder that does not exist."""


# --------------------------------------------------------------------------------------- the yaml
def load_dataset_yaml(path: str | Path) -> dict[str, Any]:
    """Read a dataset yaml and resolve it: absolute split paths, `names` as {int: str}, `nc`.

    Returns the yaml's keys plus `yaml_file` (absolute) and `path` (the dataset root, absolute str).
    Split values keep their shape (str or list of str), each made absolute. Split paths are not
    checked here (a val run does not need `train` to exist); `split_images` checks what it lists.
    """
    yaml_file = Path(path).expanduser()
    if not yaml_file.is_file():
        hint = ""
        if yaml_file.suffix.lower() not in (".yaml", ".yml"):
            hint = " data= must be a dataset .yaml file."
        elif not yaml_file.is_absolute() and len(yaml_file.parts) == 1:
            hint = " Nothing is downloaded here: pass the path to a local dataset yaml."
        raise DatasetNotFoundError(f"dataset yaml '{path}' does not exist.{hint}")
    yaml_file = yaml_file.resolve()
    try:
        data = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DatasetError(f"dataset yaml {yaml_file} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise DatasetError(
            f"dataset yaml {yaml_file} must be a mapping with keys like val:, names: (got {type(data).__name__})"
        )
    data = dict(data)
    data["names"] = _check_names(data, yaml_file)
    data["nc"] = len(data["names"])
    root = _dataset_root(data.get("path"), yaml_file)
    data["path"] = str(root)
    data["yaml_file"] = str(yaml_file)
    for split in SPLITS:
        value = data.get(split)
        if not value:
            continue
        if isinstance(value, str):
            data[split] = str(_resolve_entry(root, value))
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            data[split] = [str(_resolve_entry(root, v)) for v in value]
        else:
            raise DatasetError(f"'{split}' in {yaml_file} must be a path or a list of paths, got {value!r}")
    return data


def _check_names(data: dict, yaml_file: Path) -> dict[int, str]:
    """`names` as a list or {id: name} (ids 0..nc-1), or `nc` alone; upstream's rules, clear errors."""
    names = data.get("names")
    nc = data.get("nc")
    if names is None:
        if isinstance(nc, int) and not isinstance(nc, bool) and nc > 0:
            return {i: f"class_{i}" for i in range(nc)}
        raise DatasetError(f"dataset yaml {yaml_file} needs 'names' (a list, or {{0: name, ...}}) or 'nc'")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise DatasetError(f"'names' in {yaml_file} must be a non-empty list or {{id: name}} mapping, got {names!r}")
    try:
        names = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError):
        raise DatasetError(f"'names' in {yaml_file} must have integer class ids as keys, got {list(names)}") from None
    if sorted(names) != list(range(len(names))):
        raise DatasetError(
            f"'names' in {yaml_file} must number classes 0..{len(names) - 1} without gaps, got ids {sorted(names)}"
        )
    if nc is not None and nc != len(names):
        raise DatasetError(f"{yaml_file}: nc={nc} does not match the {len(names)} entries of 'names'")
    return dict(sorted(names.items()))


def _dataset_root(path_value: Any, yaml_file: Path) -> Path:
    if not path_value:
        return yaml_file.parent
    root = Path(os.path.expandvars(str(path_value))).expanduser()
    if root.is_absolute():
        return root
    if root.exists():  # upstream: relative to the current directory
        return root.resolve()
    return (yaml_file.parent / root).resolve()  # ours: relative to the yaml


def _resolve_entry(root: Path, value: str) -> Path:
    entry = Path(os.path.expandvars(value)).expanduser()
    if entry.is_absolute():
        return entry
    resolved = (root / entry).resolve()
    if not resolved.exists() and value.startswith("../"):  # upstream drops a dangling leading ../
        resolved = (root / value[3:]).resolve()
    return resolved


# ----------------------------------------------------------------------------------- image lists
def split_images(data: dict[str, Any], split: str = "val") -> list[Path]:
    """Every image of one split (folders searched recursively), sorted, duplicates removed."""
    if split not in SPLITS:
        raise DatasetError(f"split='{split}' is not valid; use one of {', '.join(SPLITS)}")
    value = data.get(split)
    if not value:
        present = [s for s in SPLITS if data.get(s)]
        raise DatasetError(f"dataset {data.get('yaml_file', '')} has no '{split}' split; it has {present or 'none'}")
    entries = value if isinstance(value, list) else [value]
    files: list[Path] = []
    for entry in map(Path, entries):
        files.extend(images_in(entry, split))
    if not files:
        raise DatasetError(
            f"split '{split}' ({', '.join(map(str, entries))}) contains no images ({'/'.join(sorted(IMG_FORMATS))})"
        )
    return list(dict.fromkeys(files))


def images_in(entry: Path, split: str) -> list[Path]:
    """The images of one split entry: a folder (recursive, sorted), a .txt list, or one image."""
    if entry.is_dir():
        return sorted(p for p in entry.rglob("*.*") if p.suffix[1:].lower() in IMG_FORMATS)
    if entry.is_file() and entry.suffix.lower() == ".txt":
        return _images_in_list(entry)
    if entry.is_file() and entry.suffix[1:].lower() in IMG_FORMATS:
        return [entry]
    if entry.is_file():
        raise DatasetError(f"split '{split}' entry {entry} is neither an image folder, a .txt image list nor an image")
    raise DatasetNotFoundError(
        f"split '{split}' path {entry} does not exist: check 'path' and '{split}' in the dataset yaml"
    )


def _images_in_list(txt: Path) -> list[Path]:
    """A .txt list: one image per line; relative lines are relative to the list's folder (upstream: './x')."""
    files = []
    for number, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        image = Path(line)
        if not image.is_absolute():
            beside = (txt.parent / image).resolve()
            image = beside if beside.exists() or line.startswith("./") else image.resolve()
        if image.suffix[1:].lower() not in IMG_FORMATS:
            raise DatasetError(f"{txt}:{number}: '{line}' is not an image file ({'/'.join(sorted(IMG_FORMATS))})")
        if not image.is_file():
            raise DatasetNotFoundError(f"{txt}:{number}: image {image} does not exist")
        files.append(image)
    return files


def img2label_paths(img_paths: list[str | Path]) -> list[Path]:
    """Upstream's rule: the last `/images/` of the path becomes `/labels/`, the suffix becomes `.txt`."""
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    out = []
    for p in map(str, img_paths):
        head, sep, tail = p.rpartition(images)
        swapped = f"{head}{labels}{tail}" if sep else p
        out.append(Path(swapped).with_suffix(".txt"))
    return out


# ----------------------------------------------------------------------------------------- labels
def read_labels(label_file: str | Path, nc: int | None = None) -> np.ndarray:
    """One label file → float32 (n, 5) array of `class cx cy w h` (normalised); missing file → (0, 5).

    Exact duplicate rows are dropped with a warning, as upstream does (a duplicate would otherwise
    count as an object no prediction can match). Raises DatasetError naming file:line for anything
    that is not a valid box or polygon, or a class id outside 0..nc-1.
    """
    label_file = Path(label_file)
    if not label_file.is_file():
        return np.zeros((0, 5), dtype=np.float32)
    rows = []
    for number, line in enumerate(label_file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        rows.append(_parse_label_line(parts, f"{label_file}:{number}", nc))
    labels = np.array(rows, dtype=np.float32).reshape(-1, 5)
    _, first = np.unique(labels, axis=0, return_index=True)
    if len(first) < len(labels):
        LOGGER.warning(f"WARNING {label_file}: {len(labels) - len(first)} duplicate labels removed")
        labels = labels[np.sort(first)]
    return labels


def _parse_label_line(parts: list[str], where: str, nc: int | None) -> list[float]:
    try:
        values = [float(v) for v in parts]
    except ValueError:
        raise DatasetError(f"{where}: '{' '.join(parts)}' is not numeric; expected 'class cx cy w h'") from None
    cls, coords = values[0], values[1:]
    if len(coords) == 4:
        box = coords
    elif len(coords) >= 6 and len(coords) % 2 == 0:  # polygon x1 y1 x2 y2 ... → its bounding box
        xs, ys = coords[0::2], coords[1::2]
        box = [(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)]
    else:
        raise DatasetError(
            f"{where}: {len(parts)} values; a detection label needs 5 ('class cx cy w h') or a class and polygon"
        )
    if not cls.is_integer() or cls < 0:
        raise DatasetError(f"{where}: class id {parts[0]} must be a non-negative integer")
    if nc is not None and cls >= nc:
        raise DatasetError(
            f"{where}: class id {int(cls)} is out of range: the dataset has {nc} classes (ids 0..{nc - 1}). "
            f"Fix the label or add the class to 'names' in the dataset yaml"
        )
    if not all(np.isfinite(v) and -COORD_TOLERANCE <= v <= 1 + COORD_TOLERANCE for v in coords):
        raise DatasetError(f"{where}: coordinates {coords} must be normalised to 0..1 (divide pixels by image size)")
    if box[2] <= 0 or box[3] <= 0:
        raise DatasetError(f"{where}: box width and height must be > 0, got w={box[2]} h={box[3]}")
    return [cls, *(min(max(v, 0.0), 1.0) for v in box)]


# ------------------------------------------------------------------------------- a labelled split
@dataclass
class LabelledSplit:
    """One split's images with their ground truth; labels[i] is (n, 5) `class cx cy w h` normalised."""

    im_files: list[Path]
    labels: list[np.ndarray]
    names: dict[int, str]
    label_files: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.im_files)

    @property
    def n_instances(self) -> int:
        return int(sum(len(lb) for lb in self.labels))

    @property
    def n_backgrounds(self) -> int:
        return sum(len(lb) == 0 for lb in self.labels)


def load_split(data: dict[str, Any] | str | Path, split: str = "val") -> LabelledSplit:
    """Images and labels of one split; a clear error when no label folder exists at all."""
    if not isinstance(data, dict):
        data = load_dataset_yaml(data)
    images = split_images(data, split)
    label_files = img2label_paths(images)
    if not any(p.is_file() for p in label_files):
        folders = sorted({str(p.parent) for p in label_files})
        shown = ", ".join(folders[:3]) + (" ..." if len(folders) > 3 else "")
        if not any(Path(f).is_dir() for f in folders):
            problem = f"the labels folder {shown} does not exist"
        else:
            problem = f"no label file was found in {shown}"
        raise DatasetNotFoundError(
            f"split '{split}' has {len(images)} images but {problem}. Labels are found by replacing the last "
            f"'/images/' in each image path with '/labels/' and the suffix with '.txt' (e.g. {images[0]} → "
            f"{label_files[0]}); put the images in an 'images' folder next to a 'labels' folder"
        )
    nc = len(data["names"])
    labels = [read_labels(p, nc) for p in label_files]
    return LabelledSplit(images, labels, dict(data["names"]), label_files)
