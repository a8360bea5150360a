"""CalibrationSet: which images, how they are preprocessed, when the fingerprint changes, bad input."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from tests.conftest import REFERENCE, SHAPES
from ultralytics.export.calibration import CalibrationSet

YAML = SHAPES / "shapes.yaml"


def test_train_split_is_the_200_calibration_images():
    calib = CalibrationSet(YAML, split="train", imgsz=320, batch=8)
    assert len(calib) == len(list((SHAPES / "calib" / "images").glob("*.jpg"))) == 200
    assert calib.batch == 8 and calib.num_batches == 25
    assert all(f.parent == SHAPES / "calib" / "images" for f in calib.files)


def test_batches_are_float32_nchw_rgb_unit_range():
    calib = CalibrationSet(YAML, split="val", imgsz=320, fraction=0.1, batch=4)
    batches = list(calib.batches())
    assert len(batches) == len(calib) // 4 == 2  # 10 images, full batches only
    for batch in batches:
        assert batch.dtype == np.float32 and batch.shape == (4, 3, 320, 320)
        assert 0.0 <= batch.min() and batch.max() <= 1.0
    # Channel order: the first image read with OpenCV (BGR) must come out as RGB.
    first = cv2.imread(str(calib.files[0]))
    np.testing.assert_array_equal(batches[0][0, 0], first[..., 2].astype(np.float32) / 255)


def test_preprocess_matches_upstream_predict_input():
    """Upstream's recorded network input (reference npz) for the square val images: identical tensors."""
    raw = np.load(REFERENCE / "shapes_raw_320.npz")
    calib = CalibrationSet(YAML, split="val", imgsz=320)
    compared = 0
    for k in range(4):
        reference = raw[f"input_{k}"][0]
        if reference.shape[1:] != (320, 320):
            continue  # upstream's predict used its minimal 'rect' letterbox for this one; static models never do
        image = cv2.imread(str(SHAPES / "val" / "images" / str(raw[f"name_{k}"]).split("/")[-1]))
        np.testing.assert_array_equal(calib.preprocess(image), reference)
        compared += 1
    assert compared >= 1


def test_non_square_image_is_centred_on_gray_114():
    calib = CalibrationSet(YAML, split="val", imgsz=320)
    image = np.full((100, 200, 3), (10, 20, 30), dtype=np.uint8)  # BGR, twice as wide as high
    out = calib.preprocess(image)
    assert out.shape == (3, 320, 320)
    # 200x100 scales by 1.6 to 320x160: 80 gray rows above and below, the colour in between (as RGB).
    np.testing.assert_allclose(out[:, :80], 114 / 255, atol=1e-7)
    np.testing.assert_allclose(out[:, 240:], 114 / 255, atol=1e-7)
    np.testing.assert_allclose(
        out[:, 80:240, :].reshape(3, -1).T, np.tile([30, 20, 10], (160 * 320, 1)) / 255, atol=1e-7
    )


def test_fingerprint_tracks_images_imgsz_and_model(tmp_path):
    base = CalibrationSet(YAML, split="train", imgsz=320, model_hash="a")
    assert base.fingerprint == CalibrationSet(YAML, split="train", imgsz=320, model_hash="a").fingerprint
    assert base.fingerprint != CalibrationSet(YAML, split="train", imgsz=416, model_hash="a").fingerprint
    assert base.fingerprint != CalibrationSet(YAML, split="train", imgsz=320, model_hash="b").fingerprint
    assert base.fingerprint != CalibrationSet(YAML, split="val", imgsz=320, model_hash="a").fingerprint
    # An image edited in place (same name) changes it too.
    folder = tmp_path / "images"
    folder.mkdir()
    for f in sorted((SHAPES / "val" / "images").glob("*.jpg"))[:3]:
        shutil.copy(f, folder)
    before = CalibrationSet(folder, imgsz=320).fingerprint
    cv2.imwrite(str(folder / "00000.jpg"), np.zeros((50, 60, 3), np.uint8))
    assert CalibrationSet(folder, imgsz=320).fingerprint != before


def test_label_free_folder_through_a_yaml(tmp_path):
    (tmp_path / "imgs").mkdir()
    for f in sorted((SHAPES / "val" / "images").glob("*.jpg"))[:5]:
        shutil.copy(f, tmp_path / "imgs")  # no labels/ anywhere
    (tmp_path / "data.yaml").write_text("val: imgs\nnames: {0: a}\n")  # relative to the yaml
    calib = CalibrationSet(tmp_path / "data.yaml", imgsz=64, batch=5)
    assert len(calib) == 5 and next(calib.batches()).shape == (5, 3, 64, 64)


def test_fraction_keeps_a_share():
    assert len(CalibrationSet(YAML, split="train", imgsz=320, fraction=0.25)) == 50
    with pytest.raises(ValueError, match="fraction"):
        CalibrationSet(YAML, split="train", imgsz=320, fraction=0)


def test_batch_larger_than_the_images_repeats_images_with_a_warning(tmp_path, log_lines):
    """TensorRT reads every calibration batch at the engine's batch: a smaller batch would be read past
    its end, so the batch stays full, made of repeated images (issue 16, finding 1)."""
    files = sorted((SHAPES / "val" / "images").glob("*.jpg"))[:3]
    for f in files:
        shutil.copy(f, tmp_path)
    calib = CalibrationSet(tmp_path, imgsz=64, batch=8)
    assert calib.batch == 8 and calib.num_batches == 1
    (batch,) = list(calib.batches())
    assert batch.shape == (8, 3, 64, 64)
    np.testing.assert_array_equal(batch[3], batch[0])  # the fourth image is the first again
    assert any("batch=8 is larger than the 3 images" in m and "repeating" in m for m in log_lines)


@pytest.mark.parametrize("data", [None, ""])
def test_int8_without_data_is_a_clear_error(data):
    with pytest.raises(ValueError, match=r"pass data=<dataset.yaml>.*Nothing is downloaded"):
        CalibrationSet(data, imgsz=320)


def test_split_with_no_images_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "data.yaml").write_text("val: empty\nnames: {0: a}\n")
    with pytest.raises(ValueError, match="split 'val' .* contains no images"):
        CalibrationSet(tmp_path / "data.yaml", imgsz=320)


def test_missing_split_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"no 'test' split; it has \['train', 'val'\]"):
        CalibrationSet(YAML, split="test", imgsz=320)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CalibrationSet(tmp_path / "nope.yaml", imgsz=320)


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    calib = CalibrationSet(tmp_path, imgsz=64)
    with pytest.raises(ValueError, match="broken.jpg"):
        next(calib.batches())
