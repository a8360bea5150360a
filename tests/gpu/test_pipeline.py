"""End to end: the device pipeline gives the CPU path's detections; one model serves 4 threads."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import torch

from tests.gpu.conftest import requires_cuda, run_in_threads
from ultralytics import YOLO
from ultralytics.engine.gpu_pipeline import GpuPipeline, scale_to_originals
from ultralytics.engine.predictor import DetectionPredictor
from ultralytics.utils.ops import scale_boxes


def boxes_of(results) -> list[np.ndarray]:
    return [r.boxes.data.cpu().numpy() for r in results]


def assert_boxes_match(a: list[np.ndarray], b: list[np.ndarray], px: float = 1.0, conf: float = 0.01):
    """Same detections per image: each box of `a` has its own partner in `b` of the same class with
    xyxy within `px` pixels and a close conf (order may differ where two confs are nearly equal)."""
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.shape == y.shape, f"image {i}: {len(x)} vs {len(y)} detections"
        free = list(range(len(y)))
        for det in x:
            cost = [np.abs(det[:4] - y[j, :4]).max() if y[j, 5] == det[5] else np.inf for j in free]
            if not cost or min(cost) > px:
                raise AssertionError(f"image {i}: no detection within {px}px of {det.tolist()} in {y.tolist()}")
            j = free.pop(int(np.argmin(cost)))
            assert abs(det[4] - y[j, 4]) <= conf, f"image {i}: conf {det[4]} vs {y[j, 4]}"


def predictor_for(model: YOLO, device: str, **kw) -> DetectionPredictor:
    from ultralytics.cfg import get_cfg
    from ultralytics.utils.torch_utils import select_device

    args = get_cfg({"conf": 0.25, "batch": 1, "save": False, "rect": True, "verbose": False, "mode": "predict", **kw})
    return DetectionPredictor(args, model._backend(select_device(device), False))


def test_device_stages_on_cpu_match_opencv_path(shapes_pt, shapes_images):
    """The tensor letterbox + batched NMS, run on the CPU, against the OpenCV letterbox + ops NMS."""
    model = YOLO(shapes_pt)
    sources = [shapes_images[i][1] for i in (0, 1, 2, 4)]
    batch = 2  # one batch of equal shapes (batched resize), one of mixed shapes (per-frame resize)
    reference = predictor_for(model, "cpu", batch=batch, imgsz=320)
    assert reference.gpu is None  # the CPU device keeps the OpenCV path
    ours = predictor_for(model, "cpu", batch=batch, imgsz=320)
    ours.gpu = GpuPipeline(ours.model, ours.args)
    expected, got = boxes_of(reference(sources)), boxes_of(ours(sources))
    assert sum(len(b) for b in expected) > 0, "the fixture images should give detections"
    assert_boxes_match(got, expected)


def run_threads(model: YOLO, sources: list, device: str, n_threads: int = 4, rounds: int = 2) -> list[list]:
    """Each thread predicts every source `rounds` times; returns per thread the list of box arrays."""
    start = threading.Barrier(n_threads)

    def work(k: int) -> list:
        start.wait()
        got = []
        for _ in range(rounds):
            order = sources[k:] + sources[:k]  # every thread a different order
            # one image per call: a list is one batch, and batch composition is not what this tests
            by_index = [boxes_of(model.predict(im, device=device, imgsz=320, verbose=False))[0] for im in order]
            got.append(by_index[-k:] + by_index[:-k] if k else by_index)
        return got

    return run_in_threads(n_threads, work)


def check_threads(shapes_pt, shapes_images, device: str):
    model = YOLO(shapes_pt)
    sources = [im for _, im in shapes_images[:2]]
    single = [boxes_of(model.predict(im, device=device, imgsz=320, verbose=False))[0] for im in sources]
    for per_thread in run_threads(model, sources, device):
        for got in per_thread:
            assert_boxes_match(got, single, px=1e-3, conf=1e-4)


def test_four_threads_one_model_cpu(shapes_pt, shapes_images):
    check_threads(shapes_pt, shapes_images, "cpu")


@requires_cuda
def test_four_threads_one_model_cuda(shapes_pt, shapes_images):
    check_threads(shapes_pt, shapes_images, "0")


@requires_cuda
@pytest.mark.parametrize("batch", [1, 4])
def test_cuda_pipeline_matches_cpu_path(shapes_pt, shapes_images, batch):
    model = YOLO(shapes_pt)
    sources = [im for _, im in shapes_images]
    cpu = boxes_of(model.predict(sources, device="cpu", imgsz=320, batch=batch, verbose=False))
    gpu_pred = predictor_for(model, "0", batch=batch, imgsz=320)
    assert gpu_pred.gpu is not None
    gpu = boxes_of(gpu_pred(sources))
    assert_boxes_match(gpu, cpu)


@requires_cuda
def test_cuda_letterbox_beside_the_network_matches(shapes_pt, shapes_images, monkeypatch):
    """Batches of >= OVERLAP_LETTERBOX_FROM_BATCH equal frames that are not fused are letterboxed eagerly
    on the letterbox stream: the same tensor, bit for bit, as the graphed letterbox, and the same boxes as
    the CPU path, call after call (a list of 18 frames, one batch; the fused graph off)."""
    from ultralytics.engine import gpu_pipeline

    monkeypatch.setenv("ULTRALYTICS_GPU_FUSED", "0")
    model = YOLO(shapes_pt)
    square = [im for _, im in shapes_images if im.shape[:2] == (320, 320)]
    sources = [square[i % len(square)] for i in range(9)]
    pred = predictor_for(model, "0", batch=8, imgsz=320)
    beside = pred.preprocess(sources[:8])
    monkeypatch.setattr(gpu_pipeline, "OVERLAP_LETTERBOX_FROM_BATCH", 0)
    graphed = pred.preprocess(sources[:8])
    torch.cuda.synchronize()
    assert torch.equal(beside, graphed)
    monkeypatch.undo()
    monkeypatch.setenv("ULTRALYTICS_GPU_FUSED", "0")  # undone with the rest: same-size frames would be fused
    cpu = boxes_of(model.predict(sources, device="cpu", imgsz=320, batch=8, verbose=False))
    for _ in range(3):
        assert_boxes_match(boxes_of(pred(sources + sources)), cpu + cpu)


@requires_cuda
def test_cuda_pipeline_on_files_and_fp16(shapes_pt, shapes_images):
    """A directory-like list of files goes through prefetch; FP16 stays within a pixel or two."""
    model = YOLO(shapes_pt)
    files = [p for p, _ in shapes_images]
    cpu = boxes_of(model.predict(files, device="cpu", imgsz=320, verbose=False))
    gpu = boxes_of(model.predict(files, device="0", imgsz=320, verbose=False))
    assert_boxes_match(gpu, cpu)
    half = boxes_of(model.predict(files, device="0", imgsz=320, half=True, verbose=False))
    assert_boxes_match(half, cpu, px=2.0, conf=0.02)


@requires_cuda
def test_cuda_graphs_are_used_and_bounded(shapes_pt, shapes_images):
    from ultralytics.engine.gpu_pipeline import MAX_GRAPHS

    model = YOLO(shapes_pt)
    pred = predictor_for(model, "0", imgsz=320)
    pred([im for _, im in shapes_images])
    graphs = pred.gpu.state.graphs
    assert graphs is not None and graphs.disabled_reason is None and 1 <= len(graphs) <= MAX_GRAPHS
    assert torch.cuda.is_available()


def test_pipelined_loop_handles_tensors_and_early_stop(shapes_pt, shapes_images):
    """The overlapped loop (CPU here) takes tensor sources, and leaving a stream early ends its thread."""
    model = YOLO(shapes_pt)
    tensor = torch.from_numpy(shapes_images[0][1][..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    reference = predictor_for(model, "cpu", imgsz=320)
    ours = predictor_for(model, "cpu", imgsz=320)
    ours.gpu = GpuPipeline(ours.model, ours.args)
    assert_boxes_match(boxes_of(ours(tensor)), boxes_of(reference(tensor)), px=1e-3, conf=1e-4)

    before = threading.active_count()
    stream = ours([im for _, im in shapes_images], stream=True)
    first = next(stream)
    assert first.boxes is not None
    stream.close()
    deadline = threading.Event()
    for _ in range(50):
        if threading.active_count() <= before:
            break
        deadline.wait(0.1)
    assert threading.active_count() <= before, "the prefetch thread outlived the closed stream"


@pytest.mark.parametrize("same_size", [True, False])
def test_batched_box_scaling_equals_scale_boxes(same_size):
    """The whole-batch box scaling gives ops.scale_boxes' float32 values bit for bit, image by image:
    boxes inside, outside (clipped) and none, one original size or several."""
    rng = np.random.default_rng(0)
    im_hw = (384, 640)
    shapes = [(720, 1280, 3)] * 4 if same_size else [(720, 1280, 3), (480, 640, 3), (1080, 607, 3), (33, 900, 3)]
    dets = []
    for n in (5, 0, 1, 12):
        d = np.empty((n, 6), np.float32)
        d[:, :4] = rng.uniform(-40, 700, (n, 4))
        d[:, 4], d[:, 5] = rng.uniform(0.25, 1, n), rng.integers(0, 80, n)
        dets.append(d)
    before = [d.copy() for d in dets]
    got = scale_to_originals(dets, im_hw, shapes)
    for g, d, shape, b in zip(got, dets, shapes, before):
        want = b.copy()
        want[:, :4] = scale_boxes(im_hw, want[:, :4], shape)
        assert g.dtype == np.float32 and g.shape == want.shape
        assert np.array_equal(g, want)
        assert np.array_equal(d, b)  # the inputs (views of the NMS host buffer) are left alone
    assert scale_to_originals([], im_hw, []) == []


def test_results_are_not_held_back_until_the_next_batch_is_decoded(shapes_pt, shapes_images, tmp_path, monkeypatch):
    """A source slower than the network (a camera, a folder decoded on the CPU): each batch's results go
    out as soon as they are ready, not when the next batch arrives (a live stream lagged a frame)."""
    import shutil

    import ultralytics.data.loaders as loaders

    for path, _ in shapes_images[:3]:
        shutil.copy(path, tmp_path)
    first_result_out = threading.Event()
    waited = []
    real_read = loaders._read_entry

    def read(entry):  # the 2nd and 3rd files "arrive" only after the consumer has a result (or 3 s pass)
        if not entry.path.endswith(sorted(p.name for p in tmp_path.iterdir())[0]):
            waited.append(first_result_out.wait(3))
        return real_read(entry)

    monkeypatch.setattr(loaders, "_read_entry", read)
    ours = predictor_for(YOLO(shapes_pt), "cpu", imgsz=320)
    ours.gpu = GpuPipeline(ours.model, ours.args)
    results = []
    for r in ours(str(tmp_path), stream=True):
        results.append(r)
        first_result_out.set()
    assert len(results) == 3 and waited == [True, True]


def test_a_source_failing_mid_stream_still_delivers_the_batches_already_run(
    shapes_pt, shapes_images, tmp_path, monkeypatch
):
    """A source error after good batches (e.g. a decoder failing mid-video): every batch run before it gets
    its results, as on the CPU path, then the error is raised."""
    import shutil

    import ultralytics.data.loaders as loaders

    for path, _ in shapes_images[:4]:
        shutil.copy(path, tmp_path)
    last = sorted(p.name for p in tmp_path.iterdir())[-1]
    real_read = loaders._read_entry

    def read(entry):
        if entry.path.endswith(last):
            raise RuntimeError("decoder failed")  # not an unreadable file (those are skipped): an error
        return real_read(entry)

    monkeypatch.setattr(loaders, "_read_entry", read)
    for gpu in (False, True):
        predictor = predictor_for(YOLO(shapes_pt), "cpu", imgsz=320)
        if gpu:
            predictor.gpu = GpuPipeline(predictor.model, predictor.args)
        results = []
        with pytest.raises(RuntimeError, match="decoder failed"):
            for r in predictor(str(tmp_path), stream=True):
                results.append(r.path)
        assert len(results) == 3, (gpu, results)


def test_files_are_gathered_in_a_thread_of_their_own_only_when_decoded_in_batches(tmp_path, photos):
    """reads_files_ahead: a folder of images at batch >= 2 yes; in-memory frames, batch 1, a video (read
    in its own thread already), or a source that does not say (GPU-decoded batches) no."""
    from ultralytics.data.loaders import load_inference_source
    from ultralytics.engine.gpu_pipeline import reads_files_ahead

    for i, im in enumerate(photos[:3]):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), im)
    assert reads_files_ahead(load_inference_source(str(tmp_path), batch=2))
    assert not reads_files_ahead(load_inference_source(str(tmp_path), batch=1))
    assert not reads_files_ahead(load_inference_source(photos[:3], batch=2))
    assert not reads_files_ahead(iter([]))
    writer = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    assert not reads_files_ahead(load_inference_source(str(tmp_path / "v.mp4"), batch=4))
    assert not reads_files_ahead(load_inference_source(str(tmp_path), batch=2))  # images and a video


def test_folder_batches_are_gathered_and_staged_in_two_threads_that_stop(
    tmp_path, shapes_pt, shapes_images, monkeypatch
):
    """The device stages (run on the CPU here) over a folder at batch 8: batches are gathered in one prefetch
    thread and staged in another; a corrupt file is skipped with the others delivered in order; leaving the
    loop early and closing it stops both threads."""
    import time

    from ultralytics.data.prefetch import Prefetcher
    from ultralytics.engine import gpu_pipeline

    made: list[Prefetcher] = []

    class Recorded(Prefetcher):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(gpu_pipeline, "Prefetcher", Recorded)
    paths = [p for p, _ in shapes_images][:5]
    for i in range(24):
        cv2.imwrite(str(tmp_path / f"{i:03d}.jpg"), cv2.imread(paths[i % len(paths)]))
    (tmp_path / "011.jpg").write_bytes(b"not a jpeg")
    pred = predictor_for(YOLO(shapes_pt), "cpu", imgsz=320, batch=8)
    pred.gpu = GpuPipeline(pred.model, pred.args)
    seen = [r.path.rsplit("/", 1)[-1] for r in pred(str(tmp_path), stream=True)]
    assert seen == [f"{i:03d}.jpg" for i in range(24) if i != 11]
    assert len(made) == 2  # the gathering prefetcher inside the staging one
    made.clear()
    stream = pred(str(tmp_path), stream=True)
    for k, _ in enumerate(stream):
        if k == 2:
            break
    stream.close()
    deadline = time.time() + 5
    while any(p._thread.is_alive() for p in made) and time.time() < deadline:
        time.sleep(0.05)
    assert len(made) == 2 and not any(p._thread.is_alive() for p in made)
