"""The torch letterbox against OpenCV, pixel by pixel, on the CPU and (when present) on CUDA.

The reference is built here from upstream's documented rules (scale = min ratio, rounded new size,
padding split round(d∓0.1), grey 114) with cv2.resize INTER_LINEAR, independent of both the torch path
and the package's own LetterBox, which is compared separately.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tests.gpu.conftest import requires_cuda
from ultralytics.data.augment import letterbox_params
from ultralytics.gpu.letterbox import letterbox_batch


def cv2_letterbox(im: np.ndarray, new_shape: tuple[int, int], auto: bool, stride: int = 32) -> np.ndarray:
    h, w = im.shape[:2]
    r = min(new_shape[0] / h, new_shape[1] / w)
    new_w, new_h = max(1, round(w * r)), max(1, round(h * r))
    dw, dh = new_shape[1] - new_w, new_shape[0] - new_h
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    if (new_w, new_h) != (w, h):
        im = cv2.resize(im, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return cv2.copyMakeBorder(im, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))


def as_rgb_chw(im: np.ndarray) -> np.ndarray:
    return im[..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255


def torch_letterbox(images: list[np.ndarray], new_shape, auto: bool, device: str) -> torch.Tensor:
    geos = [letterbox_params(im.shape[:2], new_shape, auto=auto, stride=32) for im in images]
    if len({im.shape for im in images}) == 1:
        frames = torch.from_numpy(np.stack(images)).to(device)
    else:
        frames = [torch.from_numpy(im).to(device) for im in images]
    return letterbox_batch(frames, geos, dtype=torch.float32)


CASES = [((640, 640), False), ((640, 640), True), ((320, 320), False), ((384, 640), False), ((256, 416), True)]


def check_against_cv2(photos, device, exact: bool = True):
    for new_shape, auto in CASES:
        for im in photos:
            ref = as_rgb_chw(cv2_letterbox(im, new_shape, auto))
            out = torch_letterbox([im], new_shape, auto, device)[0].cpu().numpy()
            assert out.shape == ref.shape, (new_shape, auto, im.shape)
            diff = np.abs(out - ref)
            if exact:  # the default resize reproduces OpenCV's fixed point: same grey level everywhere
                # (1e-6, not 0: CUDA's division by 255 may differ from numpy's in the last float bit)
                assert diff.max() <= 1e-6, f"{im.shape}→{new_shape} auto={auto}: {(diff > 1e-6).mean():.2%} differ"
                continue
            assert diff.max() <= 1 / 255 + 1e-6, (
                f"{im.shape}→{new_shape} auto={auto}: max diff {diff.max() * 255:.2f}/255"
            )
            # off by one grey level only where OpenCV's 11-bit fixed point rounds the other way (~10% here)
            assert (diff > 1e-6).mean() < 0.15


def test_torch_letterbox_matches_cv2_on_cpu(photos):
    check_against_cv2(photos, "cpu")


def test_fast_resize_is_within_one_grey_level_on_cpu(photos, monkeypatch):
    from ultralytics.gpu.letterbox import RESIZE_ENV

    monkeypatch.setenv(RESIZE_ENV, "fast")
    check_against_cv2(photos, "cpu", exact=False)


def test_unknown_resize_mode_is_a_clear_error(photos, monkeypatch):
    from ultralytics.gpu.letterbox import RESIZE_ENV

    monkeypatch.setenv(RESIZE_ENV, "cubic")
    with pytest.raises(ValueError, match="use 'exact'"):
        torch_letterbox([photos[0]], (320, 320), False, "cpu")


@requires_cuda
def test_gpu_letterbox_matches_cv2(photos):
    check_against_cv2(photos, "cuda")


def test_matches_package_letterbox(photos):
    """Same geometry and pixels as the CPU path's LetterBox (ultralytics/data/augment.py)."""
    from ultralytics.data.augment import LetterBox

    for new_shape, auto in CASES[::2]:
        for im in photos:
            ref = as_rgb_chw(LetterBox(new_shape, auto=auto, stride=32)(image=im))
            out = torch_letterbox([im], new_shape, auto, "cpu")[0].numpy()
            assert out.shape == ref.shape
            assert np.abs(out - ref).max() == 0


def test_mixed_shapes_in_one_batch(photos):
    """Frames of different sizes land in one canvas, each exactly as it would alone."""
    batch = torch_letterbox(photos, (640, 640), False, "cpu")
    assert batch.shape == (len(photos), 3, 640, 640)
    for i, im in enumerate(photos):
        alone = torch_letterbox([im], (640, 640), False, "cpu")[0]
        assert torch.equal(batch[i], alone)


def test_same_shape_batch_equals_single_frames(photos):
    im = photos[0]
    frames = [im, np.ascontiguousarray(im[:, ::-1])]
    batch = torch_letterbox(frames, (640, 640), False, "cpu")
    for i, f in enumerate(frames):
        assert torch.equal(batch[i], torch_letterbox([f], (640, 640), False, "cpu")[0])


def test_fp16_output(photos):
    geos = [letterbox_params(photos[0].shape[:2], (320, 320))]
    out = letterbox_batch(torch.from_numpy(photos[0])[None], geos, dtype=torch.float16)
    assert out.dtype == torch.float16
    ref = letterbox_batch(torch.from_numpy(photos[0])[None], geos, dtype=torch.float32)
    assert (out.float() - ref).abs().max() < 1e-3


def test_bad_frames_raise_clear_errors(photos):
    geo = letterbox_params(photos[0].shape[:2], (320, 320))
    with pytest.raises(ValueError, match="uint8 HWC"):
        letterbox_batch(torch.zeros(1, *photos[0].shape), [geo])
    with pytest.raises(ValueError, match="at least one"):
        letterbox_batch([], [])
    other = letterbox_params(photos[0].shape[:2], (640, 640))
    with pytest.raises(ValueError, match="one canvas size"):
        letterbox_batch([torch.from_numpy(photos[0])] * 2, [geo, other])


def test_chunked_resize_equals_one_pass(photos, monkeypatch):
    """Bounding memory by resizing same-size frames in chunks changes nothing."""
    import ultralytics.gpu.letterbox as lb

    frames = [photos[0], np.ascontiguousarray(photos[0][::-1]), np.ascontiguousarray(photos[0][:, ::-1])]
    whole = torch_letterbox(frames, (320, 320), False, "cpu")
    monkeypatch.setattr(lb, "CHUNK_ELEMENTS", photos[0].size * 2)  # chunks of two frames
    assert torch.equal(torch_letterbox(frames, (320, 320), False, "cpu"), whole)
