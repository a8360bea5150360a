"""LetterBox against upstream's recorded network inputs, and its geometry rules."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import IMAGES, REFERENCE, SHAPES
from ultralytics.data.augment import LetterBox, letterbox_params


def to_input(image: np.ndarray) -> np.ndarray:
    """BGR HWC uint8 → 1x3xHxW RGB float 0..1, the way the predictor feeds the network."""
    return (image[..., ::-1].transpose(2, 0, 1)[None] / 255).astype(np.float32)


@pytest.mark.parametrize("imgsz", [320, 640])
def test_matches_upstream_inputs(imgsz):
    """Upstream predicts .pt models in rect mode (auto=True): non-square images get the smallest
    stride-multiple canvas (00002.jpg, 280x320 → 288x320 at 320), square ones the full square."""
    ref = np.load(REFERENCE / f"shapes_raw_{imgsz}.npz")
    for k in range(4):
        image = cv2.imread(str(SHAPES / "val" / "images" / str(ref[f"name_{k}"])))
        expected = ref[f"input_{k}"]
        got = to_input(LetterBox(imgsz, auto=True, stride=32)(image=image))
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def test_static_mode_pads_to_full_square():
    image = cv2.imread(str(SHAPES / "val" / "images" / "00002.jpg"))  # 280x320
    out = LetterBox(320, auto=False)(image=image)
    assert out.shape == (320, 320, 3)
    assert (out[:20] == 114).all() and (out[-20:] == 114).all()  # 40 px split evenly
    np.testing.assert_array_equal(out[20:300], image)  # no resize needed at ratio 1


def brute_force_geometry(h, w, new_h, new_w, auto, stride):
    """Independent restatement of the rules, for comparison over many shapes."""
    r = min(new_h / h, new_w / w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    dw, dh = new_w - nw, new_h - nh
    if auto:
        dw, dh = dw % stride, dh % stride
    return (nw, nh), (round(dh / 2 - 0.1), round(dh / 2 + 0.1), round(dw / 2 - 0.1), round(dw / 2 + 0.1))


def test_geometry_over_many_shapes():
    rng = np.random.default_rng(0)
    for _ in range(500):
        h, w = (int(v) for v in rng.integers(1, 2000, 2))
        new = (int(rng.integers(1, 20)) * 32, int(rng.integers(1, 20)) * 32)
        auto = bool(rng.integers(0, 2))
        p = letterbox_params((h, w), new, auto=auto, stride=32)
        unpad, pads = brute_force_geometry(h, w, *new, auto, 32)
        assert p.new_unpad == unpad and (p.top, p.bottom, p.left, p.right) == pads
        if not auto:
            assert p.canvas_hw == new


def test_odd_padding_goes_bottom_right_and_tiny_images_survive():
    p = letterbox_params((1, 1000), (64, 64))  # 1 px tall → rounds to 0, clamped to 1
    assert p.new_unpad == (64, 1) and p.top == 31 and p.bottom == 32
    out = LetterBox((64, 64))(image=np.zeros((1, 1000, 3), np.uint8))
    assert out.shape == (64, 64, 3)


def test_real_photos_and_gray():
    for name in ("chelsea.png", "coffee.png", "camera.png"):
        image = cv2.imread(str(IMAGES / name))
        out = LetterBox(320)(image=image)
        assert out.shape == (320, 320, 3)
    gray = cv2.imread(str(IMAGES / "camera.png"), cv2.IMREAD_GRAYSCALE)
    assert LetterBox(320)(image=gray).shape == (320, 320)
    assert LetterBox(320)(image=gray[..., None]).shape == (320, 320, 1)


def test_scaleup_false_and_scale_fill():
    image = np.full((100, 50, 3), 7, np.uint8)
    assert letterbox_params(image.shape[:2], 640, scaleup=False).new_unpad == (50, 100)
    out = LetterBox(64, scale_fill=True)(image=image)
    assert out.shape == (64, 64, 3) and (out == 7).all()


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="non-empty"):
        LetterBox(320)(image=np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="int or"):
        LetterBox((1, 2, 3))
