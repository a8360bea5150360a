"""gpu/jpeg_chroma.py on the CPU: the JPEG frame-header parser against PIL, and the chroma rebuild on a
nearest-chroma decode of the shapes JPEGs (FFmpeg's own 4:2:0 planes through PyAV, each sample repeated
over its 2x2 block: what nvJPEG outputs) against OpenCV's libjpeg-turbo decode of the same files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ultralytics.gpu.jpeg_chroma import _fancy_h2v2, _ycc_to_bgr, fancy_upsample_bgr, is_h2v2, sampling_factors


def _pil_factors(data: bytes) -> tuple[tuple[int, int], ...]:
    import io

    with Image.open(io.BytesIO(data)) as im:
        return tuple((h, v) for _, h, v, _ in im.layer)


@pytest.mark.parametrize("sampling", ["420", "422", "444"])
def test_sampling_factors_match_pil(photo_png, sampling):
    flag = getattr(cv2, f"IMWRITE_JPEG_SAMPLING_FACTOR_{sampling}")
    ok, buf = cv2.imencode(".jpg", cv2.imread(str(photo_png)), [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, flag])
    data = buf.tobytes()
    assert sampling_factors(data) == _pil_factors(data)
    assert is_h2v2(data) == (sampling == "420")
    assert sampling_factors(b"not a jpeg") is None


def _nearest_chroma_decode(path) -> np.ndarray:
    av = pytest.importorskip("av", reason="PyAV gives the JPEG's own chroma planes (pip install av)")
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    h, w = frame.height, frame.width
    planes = [np.frombuffer(p, np.uint8).reshape(-1, p.line_size) for p in frame.planes]
    y = torch.from_numpy(planes[0][:h, :w].astype(np.int32))[None]
    cb, cr = (
        torch.from_numpy(np.repeat(np.repeat(p[: (h + 1) // 2, : (w + 1) // 2], 2, 0), 2, 1)[:h, :w].astype(np.int32))[
            None
        ]
        for p in planes[1:]
    )
    return _ycc_to_bgr(y, cb, cr)[0].numpy()


def test_rebuilt_chroma_is_close_to_libjpeg(val_jpegs):
    before, after = [], []
    for path in val_jpegs:
        assert is_h2v2(path.read_bytes())
        reference = cv2.imread(str(path)).astype(np.int16)
        nearest = _nearest_chroma_decode(path)
        rebuilt = fancy_upsample_bgr(torch.from_numpy(nearest)).numpy()
        before.append(np.abs(nearest - reference))
        after.append(np.abs(rebuilt - reference))
    before, after = np.concatenate([d.ravel() for d in before]), np.concatenate([d.ravel() for d in after])
    # nearest chroma is as far from OpenCV as nvJPEG was measured (mean 1.49, max 101 on all 100 images)
    assert before.mean() > 1.0 and before.max() > 50
    # the rebuild: all 100 images measured mean 0.075, p99.9 6, max 20 (the IDCT of FFmpeg vs libjpeg remains)
    assert after.mean() < 0.15 and np.percentile(after, 99.9) <= 8 and after.max() <= 24


def _float_fancy_upsample_bgr(bgr: torch.Tensor) -> torch.Tensor:
    """The rebuild as it was first written, in float32 (Y, Cb, Cr from RGB with the exact JFIF constants,
    block means by float division, round half to even); kept here to bound what the integer form changed."""
    h, w = bgr.shape[1:3]
    b, g, r = bgr.float().unbind(-1)
    y = (0.299 * r + 0.587 * g + 0.114 * b).round_().clamp_(0, 255).to(torch.int32)
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    weight = ((bgr > 0) & (bgr < 255)).all(-1).float()
    planes = torch.nn.functional.pad(torch.stack([cb, cr, weight], 1), (0, w % 2, 0, h % 2), mode="replicate")
    n, _, hh, ww = planes.shape
    blocks = planes.view(n, 3, hh // 2, 2, ww // 2, 2)
    wsum = blocks[:, 2].sum((2, 4))
    weighted = (blocks[:, :2] * blocks[:, 2:3]).sum((3, 5)) / wsum.clamp(min=1e-9)[:, None]
    means = torch.where(wsum[:, None] > 0, weighted, blocks[:, :2].mean((3, 5)))
    means = means.round_().clamp_(0, 255).to(torch.int32)
    cb, cr = (_fancy_h2v2(means[:, k])[:, :h, :w] for k in (0, 1))
    return _ycc_to_bgr(y, cb, cr)


def test_integer_rebuild_matches_the_float_one(val_jpegs):
    """The integer reference (jccolor.c's 16-bit constants, rounded integer means) against the float version
    it replaced, on the nearest-chroma decodes: on all 100 shapes val images 0.0011% of the values differ
    (by at most 2 grey levels; ties and the constants' last bits), and the accuracy against OpenCV is the
    same to the fourth decimal (mean 0.0752, p99.9 4, max 20 both ways)."""
    diffs = []
    for path in val_jpegs:
        nearest = torch.from_numpy(_nearest_chroma_decode(path))[None]
        diffs.append((fancy_upsample_bgr(nearest).int() - _float_fancy_upsample_bgr(nearest).int()).abs().ravel())
    diff = torch.cat(diffs)
    assert (diff > 0).float().mean().item() <= 1e-4 and diff.max().item() <= 2
