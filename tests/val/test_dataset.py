"""Dataset yaml resolution, image lists and YOLO label reading, on copies of the shapes fixture."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import SHAPES
from ultralytics.data.dataset import (
    DatasetError,
    DatasetNotFoundError,
    img2label_paths,
    load_dataset_yaml,
    load_split,
    read_labels,
    split_images,
)

VAL_IMAGES = SHAPES / "val" / "images"


def make_dataset(root: Path, n: int = 3, labels: bool = True) -> list[Path]:
    """Copy n shapes val images (and their labels) into root/images/val and root/labels/val."""
    (root / "images" / "val").mkdir(parents=True)
    if labels:
        (root / "labels" / "val").mkdir(parents=True)
    copied = []
    for src in sorted(VAL_IMAGES.glob("*.jpg"))[:n]:
        dst = root / "images" / "val" / src.name
        shutil.copy(src, dst)
        if labels:
            shutil.copy(SHAPES / "val" / "labels" / f"{src.stem}.txt", root / "labels" / "val" / f"{src.stem}.txt")
        copied.append(dst)
    return copied


def write_yaml(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


def test_shapes_yaml_resolves_against_its_folder():
    data = load_dataset_yaml(SHAPES / "shapes.yaml")
    assert Path(data["val"]) == VAL_IMAGES.resolve()
    assert Path(data["train"]) == (SHAPES / "calib" / "images").resolve()
    assert data["names"] == {0: "circle", 1: "square", 2: "triangle", 3: "star"}
    assert data["nc"] == 4


def test_shapes_labels_match_the_text_files():
    split = load_split(SHAPES / "shapes.yaml", "val")
    assert [p.name for p in split.im_files] == sorted(p.name for p in VAL_IMAGES.glob("*.jpg"))
    lines = sum(len((SHAPES / "val" / "labels" / f"{p.stem}.txt").read_text().split("\n")) for p in split.im_files)
    non_empty = sum(
        sum(1 for line in (SHAPES / "val" / "labels" / f"{p.stem}.txt").read_text().splitlines() if line.strip())
        for p in split.im_files
    )
    assert split.n_instances == non_empty <= lines
    first = np.loadtxt(SHAPES / "val" / "labels" / f"{split.im_files[0].stem}.txt", ndmin=2)
    np.testing.assert_allclose(split.labels[0], first, rtol=0, atol=1e-6)


def test_relative_path_key_resolves_against_the_yaml_folder(tmp_path, monkeypatch):
    make_dataset(tmp_path / "data")
    yaml_file = write_yaml(tmp_path / "d.yaml", {"path": "data", "val": "images/val", "names": ["a", "b", "c", "d"]})
    monkeypatch.chdir(Path("/"))
    data = load_dataset_yaml(yaml_file)
    assert Path(data["path"]) == (tmp_path / "data").resolve()
    assert len(split_images(data, "val")) == 3


def test_relative_path_key_prefers_the_current_directory_like_upstream(tmp_path, monkeypatch):
    make_dataset(tmp_path / "cwd" / "data")
    (tmp_path / "cfg").mkdir()
    yaml_file = write_yaml(tmp_path / "cfg" / "d.yaml", {"path": "data", "val": "images/val", "names": {0: "x"}})
    monkeypatch.chdir(tmp_path / "cwd")
    assert Path(load_dataset_yaml(yaml_file)["path"]) == (tmp_path / "cwd" / "data").resolve()


def test_absolute_path_names_dict_and_dangling_parent_prefix(tmp_path):
    make_dataset(tmp_path / "set")
    yaml_file = write_yaml(
        tmp_path / "d.yaml",
        {"path": str(tmp_path / "set"), "val": "../images/val", "names": {0: "circle", 1: "square", 2: "t", 3: "s"}},
    )
    data = load_dataset_yaml(yaml_file)
    assert Path(data["val"]) == (tmp_path / "set" / "images" / "val").resolve()


def test_split_as_txt_list_and_as_list_of_entries(tmp_path):
    images = make_dataset(tmp_path)
    (tmp_path / "val.txt").write_text(f"./images/val/{images[0].name}\n{images[1]}\n\n")
    names = ["circle", "square", "triangle", "star"]
    data = load_dataset_yaml(write_yaml(tmp_path / "a.yaml", {"val": "val.txt", "names": names}))
    assert split_images(data, "val") == [images[0].resolve(), images[1]]
    data = load_dataset_yaml(write_yaml(tmp_path / "b.yaml", {"val": ["val.txt", str(images[2])], "names": names}))
    split = load_split(data, "val")
    assert len(split) == 3 and all(len(lb) > 0 for lb in split.labels)


def test_image_without_label_is_a_background(tmp_path):
    images = make_dataset(tmp_path)
    (tmp_path / "labels" / "val" / f"{images[1].stem}.txt").unlink()
    (tmp_path / "labels" / "val" / f"{images[2].stem}.txt").write_text("")
    split = load_split(write_yaml(tmp_path / "d.yaml", {"val": "images/val", "nc": 4}), "val")
    assert split.n_backgrounds == 2
    assert split.labels[1].shape == (0, 5) and split.labels[2].shape == (0, 5)
    assert split.names == {i: f"class_{i}" for i in range(4)}


def test_img2label_paths_replaces_the_last_images_folder():
    got = img2label_paths(["/d/images/train/images/x.y.jpg", "/d/pics/a.png"])
    assert got == [Path("/d/images/train/labels/x.y.txt"), Path("/d/pics/a.txt")]


def test_polygon_labels_become_their_bounding_box(tmp_path):
    label = tmp_path / "a.txt"
    label.write_text("1 0.1 0.2 0.5 0.2 0.3 0.6\n")
    np.testing.assert_allclose(read_labels(label, nc=2), [[1, 0.3, 0.4, 0.4, 0.4]], atol=1e-6)


def test_duplicate_label_rows_are_dropped(tmp_path):
    label = tmp_path / "a.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n0 0.5 0.5 0.2 0.2\n")
    np.testing.assert_allclose(read_labels(label, nc=2), [[0, 0.5, 0.5, 0.2, 0.2], [1, 0.3, 0.3, 0.1, 0.1]])


# ------------------------------------------------------------------------------------- errors
def test_missing_yaml_says_nothing_is_downloaded():
    with pytest.raises(DatasetNotFoundError, match="does not exist.*Nothing is downloaded"):
        load_dataset_yaml("coco8.yaml")


def test_missing_split_folder(tmp_path):
    data = load_dataset_yaml(write_yaml(tmp_path / "d.yaml", {"val": "nowhere/images", "names": ["a"]}))
    with pytest.raises(DatasetNotFoundError, match=r"split 'val' path .*nowhere/images does not exist"):
        split_images(data, "val")
    with pytest.raises(DatasetError, match="has no 'test' split"):
        split_images(data, "test")


def test_missing_labels_folder_explains_the_rule(tmp_path):
    make_dataset(tmp_path, labels=False)
    yaml_file = write_yaml(tmp_path / "d.yaml", {"val": "images/val", "names": ["a"]})
    with pytest.raises(DatasetNotFoundError, match=r"labels folder .*labels/val does not exist.*'/images/'"):
        load_split(yaml_file, "val")


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 0.5 0.5 0.2", "4 values; a detection label needs 5"),
        ("0 0.5 0.5 0.2 0.2 0.1", "6 values"),
        ("zero 0.5 0.5 0.2 0.2", "not numeric"),
        ("1.5 0.5 0.5 0.2 0.2", "non-negative integer"),
        ("0 50 60 20 20", "normalised to 0..1"),
        ("0 0.5 0.5 0 0.2", "width and height must be > 0"),
    ],
)
def test_malformed_label_line_names_file_and_line(tmp_path, line, message):
    label = tmp_path / "x.txt"
    label.write_text(f"0 0.5 0.5 0.1 0.1\n\n{line}\n")
    with pytest.raises(DatasetError, match=message) as err:
        read_labels(label, nc=4)
    assert f"{label}:3" in str(err.value)


def test_class_id_out_of_range(tmp_path):
    images = make_dataset(tmp_path, n=2)
    (tmp_path / "labels" / "val" / f"{images[1].stem}.txt").write_text("0 0.5 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n")
    yaml_file = write_yaml(tmp_path / "d.yaml", {"val": "images/val", "names": ["a", "b", "c", "d"]})
    with pytest.raises(DatasetError, match=r"\.txt:2: class id 7 is out of range: the dataset has 4 classes"):
        load_split(yaml_file, "val")


@pytest.mark.parametrize(
    "content, message",
    [
        ({"val": "images"}, "needs 'names'"),
        ({"val": "images", "names": ["a"], "nc": 2}, "nc=2 does not match"),
        ({"val": "images", "names": {0: "a", 2: "b"}}, "without gaps"),
        (["not", "a", "mapping"], "must be a mapping"),
    ],
)
def test_bad_yaml_content(tmp_path, content, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset_yaml(write_yaml(tmp_path / "d.yaml", content))
