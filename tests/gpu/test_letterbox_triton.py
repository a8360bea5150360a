"""The fused Triton letterbox against the torch exact path and against OpenCV: zero differing grey levels.

Skipped where Triton is not installed (it is optional). Without a GPU the kernel runs under Triton's
interpreter (TRITON_INTERPRET=1, numpy), one program per frame, so these cases stay small; on a CUDA
machine the same tests run the compiled kernel, plus a CUDA-graph capture and replay check.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from unittest import mock

import numpy as np
import pytest
import torch

pytest.importorskip("triton")

from tests.gpu.conftest import requires_cuda, triton_device  # noqa: E402
from tests.gpu.test_letterbox import as_rgb_chw, cv2_letterbox  # noqa: E402
from ultralytics.data.augment import letterbox_params  # noqa: E402
from ultralytics.gpu import letterbox_triton  # noqa: E402
from ultralytics.gpu.letterbox import RESIZE_ENV, letterbox_batch  # noqa: E402
from ultralytics.gpu.letterbox_triton import (  # noqa: E402
    TRITON_ENV,
    letterbox_same_size,
    try_letterbox_triton,
)

DTYPES = (torch.float32, torch.float16)


@pytest.fixture
def device(monkeypatch) -> Iterator[torch.device]:
    yield from triton_device(monkeypatch, letterbox_triton._kernel)


def fused(images: list[np.ndarray], new_shape: tuple[int, int], device, dtype, auto: bool = False) -> torch.Tensor:
    frames = torch.from_numpy(np.stack(images)).to(device)
    geometry = letterbox_params(images[0].shape[:2], new_shape, auto=auto)
    out = try_letterbox_triton(frames, [geometry] * len(images), dtype)
    assert out is not None, "the kernel should apply to a same-size BHWC batch"
    assert out.dtype == dtype and out.device.type == device.type
    return out


def torch_path(frames, geometries, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """letterbox_batch with the kernel switched off (letterbox_batch itself prefers the kernel)."""
    with mock.patch.dict(os.environ, {TRITON_ENV: "0"}):
        return letterbox_batch(frames, geometries, dtype)


def torch_exact(images: list[np.ndarray], new_shape, device, dtype, auto: bool = False) -> torch.Tensor:
    frames = torch.from_numpy(np.stack(images)).to(device)
    geometry = letterbox_params(images[0].shape[:2], new_shape, auto=auto)
    return torch_path(frames, [geometry] * len(images), dtype)


def assert_equals_torch_path(out: torch.Tensor, ref: torch.Tensor) -> None:
    """Bit for bit on CUDA, where torch divides by 255 as the kernel does (a multiply by float32(1/255)).

    On the CPU torch divides exactly, which differs from that product in the last float32 bit for some
    grey levels, so there the bound is 1e-6 (far below the 1/255 between grey levels).
    """
    assert out.shape == ref.shape and out.dtype == ref.dtype
    if out.device.type == "cuda":
        assert torch.equal(out, ref), f"{(out != ref).sum().item()} values differ from the torch path"
    else:
        assert (out.float() - ref.float()).abs().max().item() <= 1e-6


def assert_matches_cv2(out: torch.Tensor, image: np.ndarray, new_shape, auto: bool = False) -> None:
    """Same grey level everywhere (1e-6: the /255 of two libraries may differ in the last float bit)."""
    ref = torch.from_numpy(as_rgb_chw(cv2_letterbox(image, new_shape, auto)))
    ref = ref.to(out.dtype).float().numpy()  # the reference's /255, cast like the output
    got = out.float().cpu().numpy()
    assert got.shape == ref.shape
    diff = np.abs(got - ref)
    assert diff.max() <= 1e-6, f"{image.shape}→{new_shape}: {(diff > 1e-6).sum()} values differ"


@pytest.mark.parametrize("dtype", DTYPES)
def test_photos_at_320_match_cv2(photos, device, dtype):
    """Downscale of real photos of different sizes and aspect ratios (both paddings occur)."""
    for image in photos[2:4]:  # 300x451 and 400x600: horizontal and vertical padding cases
        assert_matches_cv2(fused([image], (320, 320), device, dtype)[0], image, (320, 320))


def test_photo_at_640_and_rectangular_canvas_match_cv2(photos, device):
    image = photos[2]  # 300x451: an upscale to 640
    assert_matches_cv2(fused([image], (640, 640), device, torch.float16)[0], image, (640, 640))
    assert_matches_cv2(fused([image], (256, 416), device, torch.float32, auto=True)[0], image, (256, 416), True)


@pytest.mark.parametrize("imgsz", (320, 640))
def test_shapes_val_images_match_cv2_and_torch_path(shapes_images, device, imgsz):
    """The shapes val images at predict sizes: same size (320x320 at 320), upscale, a 280x320 frame."""
    same_size = [im for _, im in shapes_images if im.shape[:2] == (320, 320)][:2]
    rectangular = [im for _, im in shapes_images if im.shape[:2] == (280, 320)][:1]
    for batch, dtype in ((same_size, torch.float32), (rectangular, torch.float16)):
        out = fused(batch, (imgsz, imgsz), device, dtype)
        for i, image in enumerate(batch):
            assert_matches_cv2(out[i], image, (imgsz, imgsz))
        assert_equals_torch_path(out, torch_exact(batch, (imgsz, imgsz), device, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_noise_equals_torch_exact_path(device, dtype):
    """Seeded noise puts pixels on every rounding case: up, down, odd sizes, a 1-pixel-wide frame."""
    rng = np.random.default_rng(8)
    for (h, w), new_shape in (((37, 53), (32, 32)), ((20, 30), (64, 48)), ((61, 1), (32, 32)), ((5, 7), (40, 24))):
        images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2)]
        out = fused(images, new_shape, device, dtype)
        assert_equals_torch_path(out, torch_exact(images, new_shape, device, dtype))
        assert_matches_cv2(out[1], images[1], new_shape)


def test_uncentred_geometry_and_strided_frames(device):
    """Top-left placement (center=False) and a cropped view of a larger buffer, read through its strides."""
    rng = np.random.default_rng(3)
    buffer = torch.from_numpy(rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)).to(device)
    crop = buffer[:, 5:45, 10:61]  # not contiguous
    geometry = letterbox_params(tuple(crop.shape[1:3]), (48, 64), center=False)
    out = letterbox_same_size(crop, geometry, torch.float32)
    ref = letterbox_batch(crop.contiguous(), [geometry] * 2, torch.float32)
    assert_equals_torch_path(out, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_grey_level_is_divided_like_torch_on_cuda(device, dtype):
    """A same-size letterbox of all 256 levels: each is level * float32(1/255), cast to the dtype.

    That product is what torch computes for `tensor / 255` on CUDA (the CPU predict path's division on
    the model's device), so the network sees the same input from both paths.
    """
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    out = fused([levels], (16, 16), device, dtype)[0, 0].cpu()
    reciprocal = np.float32(1) / np.float32(255)
    expected = (levels[..., 0].astype(np.float32) * reciprocal).astype(torch.empty(0, dtype=dtype).numpy().dtype)
    assert np.array_equal(out.numpy(), expected)
    if device.type == "cuda":  # the CPU predict path's own division, on the GPU
        on_device = torch.from_numpy(levels[..., 0].copy()).to(device).to(dtype) / 255
        assert torch.equal(out, on_device.cpu())


def test_falls_back_where_the_kernel_does_not_apply(photos, device, monkeypatch):
    """None (torch path) for lists, mixed geometries, other dtypes and the switches; same numbers either way."""
    image = photos[2]
    frames = torch.from_numpy(np.stack([image, image])).to(device)
    g320 = letterbox_params(image.shape[:2], (320, 320))
    g_other = letterbox_params(image.shape[:2], (320, 320), auto=True)
    assert try_letterbox_triton([frames[0], frames[1]], [g320] * 2) is None
    assert try_letterbox_triton(frames, [g320, g_other]) is None
    assert try_letterbox_triton(frames, [g320] * 2, torch.float64) is None
    assert try_letterbox_triton(frames, [g320]) is None  # one geometry for two frames
    monkeypatch.setenv(TRITON_ENV, "0")
    assert try_letterbox_triton(frames, [g320] * 2) is None
    monkeypatch.delenv(TRITON_ENV)
    monkeypatch.setenv(RESIZE_ENV, "fast")
    assert try_letterbox_triton(frames, [g320] * 2) is None
    monkeypatch.delenv(RESIZE_ENV)
    # the fallback function keeps letterbox_batch's contract for mixed shapes too
    mixed = [torch.from_numpy(photos[2]).to(device), torch.from_numpy(photos[3]).to(device)]
    geometries = [letterbox_params(im.shape[:2], (320, 320)) for im in mixed]
    together = letterbox_batch(mixed, geometries)  # a list: the torch path
    for k in range(len(mixed)):  # one frame each: the kernel
        assert_equals_torch_path(letterbox_batch(mixed[k][None], geometries[k : k + 1])[0], together[k])


def test_cpu_frames_without_interpreter_use_the_torch_path(photos, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    frames = torch.from_numpy(photos[2])[None]
    geometry = letterbox_params(photos[2].shape[:2], (320, 320))
    assert try_letterbox_triton(frames, [geometry]) is None
    with pytest.raises(ValueError, match="needs CUDA frames"):
        letterbox_same_size(frames, geometry, torch.float32)


def test_direct_call_rejects_bad_input_clearly(photos):
    geometry = letterbox_params(photos[2].shape[:2], (320, 320))
    with pytest.raises(ValueError, match="BHWC uint8"):
        letterbox_same_size(torch.zeros(1, *photos[2].shape), geometry, torch.float32)
    with pytest.raises(ValueError, match="float32 or float16"):
        letterbox_same_size(torch.from_numpy(photos[2])[None], geometry, torch.bfloat16)


@requires_cuda
def test_video_batch_and_cuda_graph_replay(photos):
    """720p frames to a 384x640 canvas as predict batches them, then the kernel captured and replayed."""
    device = torch.device("cuda")
    rng = np.random.default_rng(1)
    frames = torch.from_numpy(rng.integers(0, 256, (4, 720, 1280, 3), dtype=np.uint8)).to(device)
    geometry = letterbox_params((720, 1280), (384, 640))
    out = letterbox_same_size(frames, geometry, torch.float16)
    assert_equals_torch_path(out, letterbox_batch(frames, [geometry] * 4, torch.float16))
    assert_matches_cv2(out[3], frames[3].cpu().numpy(), (384, 640))

    # capture: one size already seen (cached tables), one new size (tables built inside the graph)
    first, second = (torch.from_numpy(im[:280, :400].copy())[None].to(device) for im in photos[:2])
    seen = letterbox_params((280, 400), (640, 640))
    new = letterbox_params((279, 401), (640, 640))
    static_in = first.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        letterbox_same_size(static_in, seen, torch.float16)  # compiles the kernel outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_seen = letterbox_same_size(static_in, seen, torch.float16)
        static_new = letterbox_same_size(static_in[:, :279, :401], new, torch.float16)
    static_in.copy_(second)
    graph.replay()
    torch.cuda.synchronize()
    assert_equals_torch_path(static_seen, letterbox_batch(second, [seen], torch.float16))
    cropped = second[:, :279, :401].contiguous()
    assert_equals_torch_path(static_new, torch_path(cropped, [new], torch.float16))


def test_a_triton_failure_falls_back_to_torch_for_good(photos, device, monkeypatch):
    """Triton present but unable to build the kernel (e.g. no C compiler): one warning, then the torch path."""

    def broken(*args, **kwargs):
        raise RuntimeError("no C compiler found")

    monkeypatch.setattr(letterbox_triton, "letterbox_same_size", broken)
    monkeypatch.setattr(letterbox_triton.HEALTH, "failure", None)
    frames = torch.from_numpy(photos[2])[None].to(device)
    geometries = [letterbox_params(photos[2].shape[:2], (320, 320))]
    assert try_letterbox_triton(frames, geometries) is None
    assert "no C compiler found" in letterbox_triton.HEALTH.failure
    assert torch.equal(letterbox_batch(frames, geometries), torch_path(frames, geometries))
