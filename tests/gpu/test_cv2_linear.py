"""`resize_linear_uint8_exact` against the installed cv2.resize(INTER_LINEAR): zero differing pixels.

The oracle is OpenCV itself, on real photos, the shapes val images at the sizes predict letterboxes to,
video-sized frames, and seeded noise (noise puts every pixel on a different rounding case) at random,
extreme and 1-pixel sizes. A second, independent oracle is upstream's recorded network input
(reference/shapes_raw_*.npz): letterboxing with this resize reproduces it bit for bit. The float `F.interpolate` resize is run on the same cases to show they
exercise OpenCV's fixed-point rounding: it must differ somewhere, or the tests would prove nothing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import REFERENCE, SHAPES
from tests.gpu.conftest import requires_cuda
from ultralytics.data.augment import letterbox_params
from ultralytics.gpu.cv2_linear import resize_linear_uint8_exact
from ultralytics.gpu.letterbox import resize_bilinear_uint8

PREDICT_SIZES = (320, 640)


def cv2_resize_chw(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """OpenCV's result in the function's layout (CHW float32), for any channel count."""
    h, w = size_hw
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    resized = resized.reshape(h, w, -1)  # cv2 drops a single channel axis
    return resized.transpose(2, 0, 1).astype(np.float32)


def torch_resize_chw(images: list[np.ndarray], size_hw: tuple[int, int], fn=resize_linear_uint8_exact) -> np.ndarray:
    """All images (one shape) resized in one batched call, returned as a (B, C, h, w) array."""
    frames = torch.from_numpy(np.stack([im.reshape(*im.shape[:2], -1) for im in images]))
    return fn(frames, size_hw).numpy()


def differing_pixels(images: list[np.ndarray], size_hw: tuple[int, int], fn=resize_linear_uint8_exact) -> int:
    got = torch_resize_chw(images, size_hw, fn)
    expected = np.stack([cv2_resize_chw(im, size_hw) for im in images])
    return int((got != expected).sum())


def letterbox_size_hw(shape_hw: tuple[int, int], imgsz: int) -> tuple[int, int]:
    """The resized (unpadded) size predict's letterbox asks for."""
    w, h = letterbox_params(shape_hw, (imgsz, imgsz)).new_unpad
    return h, w


@pytest.fixture(scope="module")
def val_images() -> list[np.ndarray]:
    paths = sorted((SHAPES / "val" / "images").glob("*.jpg"))
    assert paths, f"no val images in {SHAPES / 'val' / 'images'}"
    return [cv2.imread(str(p)) for p in paths]


@pytest.fixture(scope="module")
def video_frames(photos) -> dict[str, np.ndarray]:
    """720p and 1080p frames with real content (photos scaled with a different filter than tested)."""
    return {
        "720p": cv2.resize(photos[0], (1280, 720), interpolation=cv2.INTER_CUBIC),
        "1080p": cv2.resize(photos[-1], (1920, 1080), interpolation=cv2.INTER_CUBIC),
    }


def random_cases(seed: int, count: int) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Noise images of random size and channel count, each with a random target (up, down, mixed)."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        in_h, in_w = (int(v) for v in rng.integers(1, 160, 2))
        out_h, out_w = (int(v) for v in rng.integers(1, 330, 2))
        channels = int(rng.choice([1, 3, 4]))
        cases.append((rng.integers(0, 256, (in_h, in_w, channels), dtype=np.uint8), (out_h, out_w)))
    return cases


# sizes where the edge rules matter: 1-pixel sources and targets, very different x/y scales, near-1 scales
EDGE_SIZES = [
    ((1, 1), (640, 640)),
    ((1, 57), (33, 400)),
    ((57, 1), (400, 33)),
    ((640, 480), (1, 1)),
    ((480, 640), (1, 640)),
    ((3, 900), (700, 5)),
    ((900, 3), (5, 700)),
    ((300, 300), (150, 150)),  # exact 2x down: OpenCV switches to INTER_AREA
    ((321, 319), (640, 640)),
    ((1000, 1000), (999, 1001)),
]


def test_photos_at_predict_sizes_and_odd_scales(photos):
    """Real photos (the grayscale one read as 3 channels) at imgsz 320/640, 2x up, and anisotropic scales."""
    for image in photos:
        shape_hw = image.shape[:2]
        sizes = [letterbox_size_hw(shape_hw, imgsz) for imgsz in PREDICT_SIZES]
        sizes += [(2 * shape_hw[0], 2 * shape_hw[1]), (413, 97), (37, 1001)]
        for size_hw in sizes:
            assert differing_pixels([image], size_hw) == 0, (shape_hw, size_hw)


def test_shapes_val_images_at_predict_sizes(val_images):
    """Every val image shape (up to 3 images of each, batched) at both predict sizes (640: ~2x upscales)."""
    by_shape: dict[tuple[int, int], list[np.ndarray]] = {}
    for image in val_images:
        images = by_shape.setdefault(image.shape[:2], [])
        if len(images) < 3:  # the 65 square ones alone would take most of the test budget on 2 cores
            images.append(image)
    for shape_hw, images in by_shape.items():
        for imgsz in PREDICT_SIZES:
            size_hw = letterbox_size_hw(shape_hw, imgsz)
            assert differing_pixels(images, size_hw) == 0, (shape_hw, size_hw, len(images))


def test_video_frames_downscaled_for_predict(video_frames):
    for name, frame in video_frames.items():
        for imgsz in PREDICT_SIZES:
            size_hw = letterbox_size_hw(frame.shape[:2], imgsz)
            assert differing_pixels([frame], size_hw) == 0, (name, size_hw)


def test_random_sizes_scales_and_channel_counts():
    for image, size_hw in random_cases(seed=0, count=120):
        assert differing_pixels([image], size_hw) == 0, (image.shape, size_hw)


@pytest.mark.parametrize(("in_hw", "out_hw"), EDGE_SIZES)
def test_edge_sizes(in_hw, out_hw):
    image = np.random.default_rng(sum(in_hw) + sum(out_hw)).integers(0, 256, (*in_hw, 3), dtype=np.uint8)
    assert differing_pixels([image], out_hw) == 0


@pytest.mark.parametrize("value", [0, 255])
def test_flat_extremes_stay_put(value):
    """White must not round up past 255 (nor wrap) and black must stay 0, for any weights."""
    image = np.full((50, 37, 3), value, np.uint8)
    for size_hw in [(173, 91), (11, 13), (50, 37 * 3)]:
        out = torch_resize_chw([image], size_hw)
        assert (out == value).all()
        assert differing_pixels([image], size_hw) == 0


@pytest.mark.parametrize("imgsz", PREDICT_SIZES)
def test_letterboxed_input_equals_upstreams_reference_tensor(imgsz):
    """Resize + grey pad + BGR→RGB + /255 gives upstream's recorded network input bit for bit."""
    reference = np.load(REFERENCE / f"shapes_raw_{imgsz}.npz")
    for k in range(4):
        expected = reference[f"input_{k}"]
        image = cv2.imread(str(SHAPES / "val" / "images" / Path(str(reference[f"name_{k}"])).name))
        canvas_hw = expected.shape[2:]
        geometry = letterbox_params(image.shape[:2], (imgsz, imgsz), auto=canvas_hw != (imgsz, imgsz))
        w, h = geometry.new_unpad
        resized = resize_linear_uint8_exact(torch.from_numpy(image)[None], (h, w))
        canvas = torch.full((1, 3, *canvas_hw), 114.0)
        canvas[:, :, geometry.top : geometry.top + h, geometry.left : geometry.left + w] = resized
        got = (canvas.flip(1) / 255).numpy()
        assert got.shape == expected.shape
        assert int((got != expected).sum()) == 0, (imgsz, k)


def test_float_interpolate_differs_on_the_same_cases(photos, val_images):
    """The float resize differs from cv2 on these inputs, so the zero counts above are not vacuous."""
    squares = [im for im in val_images if im.shape[:2] == (320, 320)][:2]
    assert differing_pixels(squares, (640, 640), fn=resize_bilinear_uint8) > 0
    assert differing_pixels([photos[0]], letterbox_size_hw(photos[0].shape[:2], 320), fn=resize_bilinear_uint8) > 0


def test_output_contract(photos):
    frames = torch.from_numpy(np.stack([photos[0], photos[0][::-1].copy()]))
    out = resize_linear_uint8_exact(frames, (100, 60))
    assert out.shape == (2, 3, 100, 60)
    assert out.dtype == torch.float32
    assert out.is_contiguous()
    assert torch.equal(out, out.round())
    same = resize_linear_uint8_exact(frames, tuple(frames.shape[1:3]))
    assert torch.equal(same, frames.permute(0, 3, 1, 2).float())
    assert torch.equal(resize_linear_uint8_exact(frames, (np.int64(100), np.int64(60))), out)
    crop = frames[:, 10:-20:2, 5:]  # a strided view (an ROI of a larger frame) needs no copy first
    assert torch.equal(
        resize_linear_uint8_exact(crop, (77, 91)), resize_linear_uint8_exact(crop.contiguous(), (77, 91))
    )
    assert differing_pixels([crop[0].numpy()], (77, 91)) == 0


@pytest.mark.parametrize(
    ("frames", "size_hw", "message"),
    [
        (torch.zeros(1, 8, 8, 3), (4, 4), "uint8"),
        (torch.zeros(8, 8, 3, dtype=torch.uint8), (4, 4), "BHWC"),
        (np.zeros((1, 8, 8, 3), np.uint8), (4, 4), "ndarray"),
        (torch.zeros(1, 0, 8, 3, dtype=torch.uint8), (4, 4), "at least 1x1"),
        (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), (0, 4), "positive"),
        (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), (4.5, 4), "two ints"),
        (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), (4, 4, 4), "two ints"),
    ],
)
def test_bad_input_is_refused_clearly(frames, size_hw, message):
    with pytest.raises(ValueError, match=message):
        resize_linear_uint8_exact(frames, size_hw)


@requires_cuda
def test_cuda_eager_and_graph_replay_match_cv2(photos, val_images):
    """On the GPU: eager, then captured in a CUDA graph and replayed on new frames, still exact."""
    device = torch.device("cuda")
    first, second = val_images[0], val_images[1]
    assert first.shape == second.shape
    size_hw = letterbox_size_hw(first.shape[:2], 640)
    expected = {id(im): cv2_resize_chw(im, size_hw) for im in (first, second)}

    static_in = torch.from_numpy(first)[None].to(device)
    eager = resize_linear_uint8_exact(static_in, size_hw)
    np.testing.assert_array_equal(eager[0].cpu().numpy(), expected[id(first)])

    # a size not seen before, so its tables are built inside the capture, not taken from the cache
    capture_size = (size_hw[0] - 1, size_hw[1] + 1)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        resize_linear_uint8_exact(static_in, size_hw)  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = resize_linear_uint8_exact(static_in, size_hw)
        static_new = resize_linear_uint8_exact(static_in, capture_size)
    static_in.copy_(torch.from_numpy(second)[None].to(device))
    graph.replay()
    torch.cuda.synchronize()
    np.testing.assert_array_equal(static_out[0].cpu().numpy(), expected[id(second)])
    np.testing.assert_array_equal(static_new[0].cpu().numpy(), cv2_resize_chw(second, capture_size))

    frame = torch.from_numpy(photos[-1])[None].to(device)
    size_hw = letterbox_size_hw(photos[-1].shape[:2], 320)
    np.testing.assert_array_equal(
        resize_linear_uint8_exact(frame, size_hw)[0].cpu().numpy(), cv2_resize_chw(photos[-1], size_hw)
    )
