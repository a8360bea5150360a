"""Small batches run letterbox + network + NMS as one CUDA graph (`GpuStages.launch_fused`); the
detections must be the three-graph path's, and the pinned staging in pieces must move the same bytes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.gpu.conftest import requires_cuda
from tests.gpu.test_pipeline import boxes_of, predictor_for
from ultralytics import YOLO
from ultralytics.gpu import upload


@pytest.mark.parametrize(
    "shapes",
    [
        [(720, 1280, 3)],  # one 720p frame: whole
        [(2160, 3840, 3)],  # one 4K frame: four pieces
        [(600, 800, 3)],
        [(720, 1280, 3), (720, 1280, 3)],  # whole frames, one group
        [(720, 1280, 3), (480, 640, 3), (12, 20, 3)],
        [(8, 8, 3)],  # below the split size: one piece
    ],
)
def test_staging_pieces_cover_the_frames_in_order(shapes):
    """The byte ranges tile [0, total) without gaps or overlap, and staging them one after another
    reproduces the frames laid end to end (what the single torch.cat did before)."""
    rng = np.random.default_rng(len(shapes))
    frames = [rng.integers(0, 256, s, dtype=np.uint8) for s in shapes]
    sources = [torch.from_numpy(f).view(-1) for f in frames]
    offsets = np.cumsum([0] + [t.numel() for t in sources]).tolist()
    pieces = upload._pieces(offsets, upload.GROUP_BYTES)
    assert pieces[0][0] == 0 and pieces[-1][1] == offsets[-1]
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    assert all(offsets[first] <= begin < end <= offsets[last] for begin, end, first, last in pieces)
    if len(shapes) == 1 and frames[0].nbytes > upload.SPLIT_BYTES:
        assert len(pieces) == upload.SPLIT_PIECES  # the point of the change: a lone big frame is cut
    staging = torch.zeros(offsets[-1], dtype=torch.uint8)
    for piece in pieces:
        upload._stage(sources, offsets, staging, piece)
    assert torch.equal(staging, torch.from_numpy(np.concatenate([f.reshape(-1) for f in frames])))


def test_only_frames_above_12_mb_are_cut():
    """Cutting a lone 720p or 1080p frame in pieces made `model(frame)` slower on the H200 host, cutting a 4K
    frame faster (benchmarks/NOTES.md, session 11, probe MM): each piece costs a copy call and a DMA launch."""

    def pieces_of(h: int, w: int) -> int:
        return len(upload._pieces([0, h * w * 3], upload.GROUP_BYTES))

    assert pieces_of(720, 1280) == 1
    assert pieces_of(1080, 1920) == 1
    assert pieces_of(2160, 3840) == upload.SPLIT_PIECES


def _predict(model: YOLO, images: list[np.ndarray], monkeypatch, fused: str, **kw) -> list[np.ndarray]:
    monkeypatch.setenv("ULTRALYTICS_GPU_FUSED", fused)
    predictor = predictor_for(model, "cuda:0", imgsz=320, **kw)
    return boxes_of(predictor(images))


@requires_cuda
@pytest.mark.parametrize("batch", [1, 4, 8, 40])
def test_fused_graph_gives_the_three_graph_detections(shapes_pt, shapes_images, monkeypatch, batch):
    """Same-size frames at batch 1 to 40 (40: chunks of 32 and 8, the default for every batch size since
    session 8): bit-for-bit the detections of letterbox, network and NMS as three graphs (the same
    kernels, in the same order, on the same inputs)."""
    model = YOLO(shapes_pt)
    square = [im for _, im in shapes_images if im.shape[:2] == shapes_images[0][1].shape[:2]][:batch]
    images = (square * batch)[:batch]
    separate = _predict(model, images, monkeypatch, "0", batch=batch)
    fused = _predict(model, images, monkeypatch, "1", batch=batch)
    assert sum(len(b) for b in separate) > 0
    for a, b in zip(fused, separate):
        np.testing.assert_array_equal(a, b)


@requires_cuda
def test_fused_graph_gate(shapes_pt, shapes_images, monkeypatch):
    """The gate: same-size frames → fused at any batch size up to FUSED_MAX_INPUT_BYTES of frames;
    FUSED_BELOW_BATCH=8 keeps 8 frames out (the letterbox beside the network); switched off → never; mixed
    sizes → never."""
    from ultralytics.engine import gpu_pipeline

    monkeypatch.setenv("ULTRALYTICS_GPU_FUSED", "1")
    model = YOLO(shapes_pt)
    predictor = predictor_for(model, "cuda:0", imgsz=320)
    stages = predictor.gpu
    image = shapes_images[0][1]
    one = stages.stage_batch((["a"], [image], ["i"]))[1]
    assert stages.fused_frames(one) is not None
    eight = stages.stage_batch((["a"] * 8, [image] * 8, ["i"] * 8))[1]
    assert stages.fused_frames(eight) is not None
    monkeypatch.setattr(gpu_pipeline, "FUSED_MAX_INPUT_BYTES", 4 * image.size)  # the graph keeps a copy of its input
    assert stages.fused_frames(eight) is None
    assert stages.fused_frames(one) is not None
    monkeypatch.undo()
    monkeypatch.setenv("ULTRALYTICS_GPU_FUSED", "1")
    monkeypatch.setattr(gpu_pipeline, "FUSED_BELOW_BATCH", 8)
    assert stages.fused_frames(eight) is None
    assert stages.fused_frames(one) is not None
    other = image[: image.shape[0] // 2].copy()  # another size
    mixed = stages.stage_batch((["a", "b"], [image, other], ["i", "j"]))[1]
    assert stages.fused_frames(mixed) is None
    monkeypatch.setenv("ULTRALYTICS_GPU_FUSED", "0")
    assert stages.fused_frames(one) is None


@requires_cuda
@pytest.mark.parametrize("batch", [1, 32])
def test_fused_graph_redoes_nms_when_candidates_overflow(shapes_pt, shapes_images, monkeypatch, batch):
    """conf=0.001 gives more candidates than NMS keeps at first (top_k 256): the redo, which needs the
    network output kept beside the fused graph's detections, must give the separate path's result (at batch
    32 the larger top_k is a new fused key, captured at that size)."""
    model = YOLO(shapes_pt)
    same = [im for _, im in shapes_images if im.shape == shapes_images[0][1].shape]
    images = (same * batch)[:batch]
    separate = _predict(model, images, monkeypatch, "0", conf=0.001, batch=batch)
    model2 = YOLO(shapes_pt)  # a fresh NMS state: top_k starts small again
    fused = _predict(model2, images, monkeypatch, "1", conf=0.001, batch=batch)
    assert len(separate[0]) > 0
    for a, b in zip(fused, separate):
        np.testing.assert_array_equal(a, b)


def test_one_image_scaling_equals_the_batch_arithmetic():
    """`scale_to_originals` has a short path for one image (every batch-1 call): bit for bit the batch
    path's numbers, on random boxes, letterbox sizes and original shapes, as fresh arrays."""
    from ultralytics.engine.gpu_pipeline import scale_to_originals

    rng = np.random.default_rng(0)
    for t in range(100):
        dets = (rng.random((int(rng.integers(0, 20)), 6)) * 700 - 30).astype(np.float32)
        shape = (int(rng.integers(50, 1500)), int(rng.integers(50, 2000)), 3)
        im_hw = (384, 640) if t % 2 else (640, 640)
        (one,) = scale_to_originals([dets], im_hw, [shape])
        batch = scale_to_originals([dets, dets], im_hw, [shape, shape])[0]
        assert one.dtype == np.float32 and np.array_equal(one, batch)
        assert not np.shares_memory(one, dets)
