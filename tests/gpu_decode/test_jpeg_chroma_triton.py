"""gpu/jpeg_chroma_triton.py: the two Triton kernels give the torch reference's bytes, and the wiring picks them.

Skipped where Triton is not installed (it is optional). Without a GPU the kernels run under Triton's
interpreter (TRITON_INTERPRET=1, numpy), one program per frame; on a CUDA machine the same tests run the
compiled kernels, plus a check that the CUDA bytes equal the CPU reference's (the point of doing the
rebuild in integers only).
"""

from __future__ import annotations

from collections.abc import Iterator
from unittest import mock

import cv2
import numpy as np
import pytest
import torch

from tests.gpu.conftest import triton_device

pytest.importorskip("triton")

from tests.conftest import IMAGES  # noqa: E402
from tests.gpu_decode.conftest import requires_cuda  # noqa: E402
from ultralytics.gpu import jpeg_chroma_triton  # noqa: E402
from ultralytics.gpu.jpeg_chroma import fancy_upsample_bgr  # noqa: E402
from ultralytics.gpu.jpeg_chroma_triton import (  # noqa: E402
    fancy_upsample,
    fancy_upsample_triton,
    try_fancy_upsample_triton,
)
from ultralytics.utils.settings import TRITON_ENV  # noqa: E402

# odd and even sizes, 1-pixel rows and columns, a frame with only a partial block at both far edges
SIZES = [(1, 1), (1, 6), (5, 1), (2, 2), (3, 5), (7, 10), (17, 33), (40, 23)]


@pytest.fixture
def device(monkeypatch) -> Iterator[torch.device]:
    monkeypatch.delenv(TRITON_ENV, raising=False)
    yield from triton_device(monkeypatch, jpeg_chroma_triton._kernels)


@pytest.fixture(autouse=True)
def healthy_kernels() -> Iterator[None]:
    """Each test starts (and leaves) with no recorded kernel failure."""
    jpeg_chroma_triton.HEALTH.failure = None
    yield
    jpeg_chroma_triton.HEALTH.failure = None


def nearest_chroma(bgr: np.ndarray) -> np.ndarray:
    """What nvJPEG hands over for a 4:2:0 JPEG, made from an image: each 2x2 block's chroma repeated
    (OpenCV's own BGR→YCrCb and back, so clipping at saturated colours happens as in a real decode)."""
    ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
    h, w = ycrcb.shape[:2]
    small = ycrcb[::2, ::2, 1:]
    ycrcb[..., 1:] = np.repeat(np.repeat(small, 2, 0), 2, 1)[:h, :w]
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)


def random_frames(batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Random BGR with a fifth of the values clipped to 0 or 255 (the block means' other branch)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8, generator=g)
    x[torch.rand(x.shape, generator=g) < 0.15] = 255
    x[torch.rand(x.shape, generator=g) < 0.05] = 0
    return x


def assert_same_bytes(out: torch.Tensor, expected: torch.Tensor) -> None:
    assert out.shape == expected.shape and out.dtype == torch.uint8
    differing = (out.cpu() != expected.cpu()).sum().item()
    assert differing == 0, f"{differing} values differ from the torch reference"


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("hw", SIZES, ids=lambda hw: f"{hw[0]}x{hw[1]}")
def test_kernels_equal_reference_on_random_odd_sizes(device, batch, hw):
    frames = random_frames(batch, *hw, seed=hw[0] * 100 + hw[1] + batch)
    assert_same_bytes(fancy_upsample_triton(frames.to(device)), fancy_upsample_bgr(frames))


def test_kernels_equal_reference_on_val_images(device, val_jpegs):
    """A batch of the shapes val JPEGs (saturated colour edges: both block-mean branches) as nvJPEG gives them."""
    images = [cv2.imread(str(p)) for p in val_jpegs]
    images = [im for im in images if im.shape == images[0].shape]
    assert len(images) > 1
    frames = torch.from_numpy(np.stack([nearest_chroma(im) for im in images]))
    rebuilt = fancy_upsample_triton(frames.to(device))
    assert_same_bytes(rebuilt, fancy_upsample_bgr(frames))
    assert not torch.equal(rebuilt.cpu(), frames), "the rebuild should change the colours of these images"


def test_kernels_equal_reference_on_photos_with_odd_crops(device):
    """Real photographs cropped to odd sizes, one of them read through strides (a crop of a larger frame)."""
    photos = [cv2.imread(str(p)) for p in sorted(IMAGES.glob("*.png"))[:2]]
    for photo, (h, w) in zip(photos, [(201, 157), (96, 255)]):
        frame = torch.from_numpy(nearest_chroma(np.ascontiguousarray(photo[:h, :w])))
        assert_same_bytes(fancy_upsample_triton(frame.to(device)), fancy_upsample_bgr(frame))
    crop = torch.from_numpy(nearest_chroma(photos[0]))[None, 11:144, 7:200]
    assert not crop.is_contiguous()
    assert_same_bytes(fancy_upsample_triton(crop.to(device)), fancy_upsample_bgr(crop.contiguous()))


def test_fancy_upsample_picks_kernels_unless_switched_off(device, monkeypatch):
    frames = random_frames(2, 9, 14, seed=1).to(device)
    with mock.patch.object(jpeg_chroma_triton, "fancy_upsample_triton", wraps=fancy_upsample_triton) as kernels:
        assert_same_bytes(fancy_upsample(frames), fancy_upsample_bgr(frames.cpu()))
        assert kernels.call_count == 1
        monkeypatch.setenv(TRITON_ENV, "0")  # the existing switch: torch reference only
        assert_same_bytes(fancy_upsample(frames), fancy_upsample_bgr(frames.cpu()))
        assert kernels.call_count == 1


def test_cpu_frames_without_interpreter_use_torch(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv(TRITON_ENV, raising=False)
    frames = random_frames(1, 6, 8, seed=2)
    assert try_fancy_upsample_triton(frames) is None
    assert torch.equal(fancy_upsample(frames), fancy_upsample_bgr(frames))
    with pytest.raises(ValueError, match="needs CUDA frames"):
        fancy_upsample_triton(frames)


def test_bad_input_is_a_clear_error(device):
    assert try_fancy_upsample_triton(torch.zeros(4, 4, 3, dtype=torch.float32, device=device)) is None
    with pytest.raises(ValueError, match="uint8 BGR frames"):
        fancy_upsample_triton(torch.zeros(2, 4, 4, 4, dtype=torch.uint8, device=device))
    with pytest.raises(ValueError, match="empty"):
        fancy_upsample_triton(torch.zeros(1, 0, 4, 3, dtype=torch.uint8, device=device))


def test_a_kernel_failure_warns_once_then_uses_torch(device):
    """Triton present but unable to build the kernels (e.g. no C compiler): one warning, then torch for good."""
    frames = random_frames(1, 5, 7, seed=3).to(device)
    broken = mock.patch.object(jpeg_chroma_triton, "fancy_upsample_triton", side_effect=RuntimeError("no compiler"))
    with broken as kernels, mock.patch.object(jpeg_chroma_triton.LOGGER, "warning") as warning:
        first, second = fancy_upsample(frames), fancy_upsample(frames)
    assert_same_bytes(first, fancy_upsample_bgr(frames.cpu()))
    assert torch.equal(first, second)
    assert kernels.call_count == 1 and warning.call_count == 1
    assert "no compiler" in warning.call_args[0][0] and "no compiler" in jpeg_chroma_triton.HEALTH.failure


def test_decode_jpegs_rebuilds_through_the_kernels(device, monkeypatch):
    """decode.py's fancy mode goes through `fancy_upsample` (nvJPEG stood in for by a nearest-chroma decode)."""
    from ultralytics.gpu import decode
    from ultralytics.utils.settings import CHROMA_ENV

    photo = cv2.imread(str(sorted(IMAGES.glob("*.png"))[0]))[:63, :81]
    ok, buf = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    nearest = torch.from_numpy(nearest_chroma(cv2.imdecode(buf, cv2.IMREAD_COLOR))).to(device)
    frames: list[torch.Tensor | None] = [nearest, None]
    monkeypatch.setenv(CHROMA_ENV, "fancy")
    with mock.patch.object(decode, "fancy_upsample", wraps=fancy_upsample) as wired:
        decode._fancy_chroma(frames, [buf.tobytes(), b"not a jpeg"])
    assert wired.call_count == 1 and frames[1] is None
    assert_same_bytes(frames[0], fancy_upsample_bgr(nearest.cpu()))


@requires_cuda
def test_cuda_bytes_equal_cpu_reference():
    """Integers only: the compiled kernels on CUDA and the torch reference on CUDA give the CPU reference's bytes."""
    photo = cv2.imread(str(sorted(IMAGES.glob("*.png"))[0]))
    cpu = torch.stack([torch.from_numpy(nearest_chroma(photo[:301, :443]))] * 2)
    cpu = torch.cat([cpu, random_frames(1, 301, 443, seed=4)])
    expected = fancy_upsample_bgr(cpu)
    with mock.patch.dict("os.environ", {TRITON_ENV: "1"}):
        out = try_fancy_upsample_triton(cpu.cuda())
    assert out is not None, jpeg_chroma_triton.HEALTH.failure
    assert_same_bytes(out, expected)
    assert_same_bytes(fancy_upsample_bgr(cpu.cuda()), expected)
