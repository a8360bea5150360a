"""CUDA-graph runner: same output as eager, bounded cache, correct from several threads."""

from __future__ import annotations

import threading

import pytest
import torch

from tests.gpu.conftest import requires_cuda
from ultralytics.gpu.graphs import CudaGraphRunner


def test_refuses_cpu_device():
    with pytest.raises(ValueError, match="CUDA device"):
        CudaGraphRunner(lambda x: x, torch.device("cpu"))


@pytest.fixture
def yolo_backend():
    from ultralytics.nn.autobackend import AutoBackend

    return AutoBackend("yolov8n.yaml", device=torch.device("cuda"))


@requires_cuda
def test_graph_output_equals_eager(yolo_backend):
    runner = CudaGraphRunner(yolo_backend.backend.forward, yolo_backend.device, max_graphs=2)
    for shape in [(1, 3, 320, 320), (2, 3, 256, 320), (1, 3, 320, 320)]:
        x = torch.rand(shape, device="cuda")
        expected = yolo_backend(x)
        got = runner(x)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-3)
        fresh = torch.rand(shape, device="cuda")  # a replay must read the new input, not the captured one
        torch.testing.assert_close(runner(fresh), yolo_backend(fresh), rtol=1e-4, atol=1e-3)
    assert runner.disabled_reason is None


@requires_cuda
def test_cache_is_bounded(yolo_backend):
    runner = CudaGraphRunner(yolo_backend.backend.forward, yolo_backend.device, max_graphs=2)
    for size in (160, 192, 224, 256):
        runner(torch.rand(1, 3, size, size, device="cuda"))
    assert len(runner) == 2


@requires_cuda
def test_threads_sharing_one_runner_get_their_own_results(yolo_backend):
    runner = CudaGraphRunner(yolo_backend.backend.forward, yolo_backend.device)
    inputs = [torch.rand(1, 3, 256, 256, device="cuda") for _ in range(4)]
    expected = [yolo_backend(x).cpu() for x in inputs]
    errors: list[str] = []

    def work(i: int) -> None:
        for _ in range(20):
            out = runner(inputs[i]).cpu()
            if not torch.allclose(out, expected[i], rtol=1e-4, atol=1e-3):
                errors.append(f"thread {i} got another input's output")
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@requires_cuda
def test_graph_family_replays_letterbox_and_nms_on_new_inputs(photos):
    """Letterbox and NMS replayed from graphs give what the eager code gives, for fresh inputs each time."""
    import numpy as np

    from tests.gpu.test_nms import random_preds
    from ultralytics.data.augment import letterbox_params
    from ultralytics.gpu.graphs import GraphFamily
    from ultralytics.gpu.letterbox import letterbox_batch
    from ultralytics.gpu.nms import BatchedNMS

    family = GraphFamily(torch.device("cuda"), max_members=2)
    im = photos[-1]
    geo = letterbox_params(im.shape[:2], (640, 640))
    for k in range(3):
        frames = torch.from_numpy(np.stack([np.roll(im, 7 * k, axis=1)] * 2)).cuda()
        got = family(("lb", geo), lambda: lambda f: letterbox_batch(f, [geo] * f.shape[0]), frames)
        torch.testing.assert_close(got, letterbox_batch(frames, [geo] * 2), rtol=0, atol=0)

    nms_graphs = GraphFamily(torch.device("cuda"))
    for seed in range(3):
        preds = random_preds(b=2, seed=seed)
        eager = BatchedNMS(0.25, 0.6, classes=[0, 2], top_k=1024)(preds)
        graphed = BatchedNMS(0.25, 0.6, classes=[0, 2], top_k=1024, graphs=nms_graphs)(preds.cuda())
        for a, b in zip(eager, graphed):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-3)
    assert len(nms_graphs) == 1  # one settings key, replayed for every seed
