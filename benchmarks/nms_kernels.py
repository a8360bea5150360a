"""GPU NMS timed two ways: the torch path of gpu/nms.py against the Triton kernels of gpu/nms_triton.py.

Inputs are head outputs of a 384x640 input (5040 anchors): the fixture `shapes_yolov8n.pt` run on the
fixture photos (4 classes, its real score distribution; conf 0.25 and 0.05), and a yolov8n-shaped head
(84 channels) with clustered boxes and skewed scores giving some 50-300 candidates per image (a trained
COCO model on busy street scenes; the fixture yolov8n has random weights and no candidates). For batch
1, 8 and 32 each path is timed with CUDA events, eagerly (launches included) and replayed from a CUDA
graph (device time), rounds alternating between the paths; outputs are compared first (the detections
of every image, count and candidates; rows past the count are not part of the result).

    PYTHONPATH=. python3 benchmarks/nms_kernels.py [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.letterbox_kernels import events_ms  # noqa: E402
from ultralytics.gpu import nms_triton  # noqa: E402
from ultralytics.gpu.nms import BatchedNMS, capped_top_k  # noqa: E402
from ultralytics.utils.settings import TRITON_ENV  # noqa: E402

FIXTURES = Path(os.environ.get("ULTRALYTICS_SHARED", REPO.parent / "shared")) / "fixtures"
CANVAS_HW = (384, 640)


def shapes_heads(batch: int, device: torch.device) -> torch.Tensor:
    """`shapes_yolov8n.pt` head outputs (B, 8, 5040) for the fixture photos, repeated to `batch`."""
    from ultralytics import YOLO

    net = YOLO(str(FIXTURES / "models" / "shapes_yolov8n.pt")).model.eval().to(device)
    photos = [cv2.imread(str(p)) for p in sorted((FIXTURES / "images").glob("*.png"))]
    frames = [cv2.resize(p, CANVAS_HW[::-1])[..., ::-1].copy() for p in photos]
    x = torch.from_numpy(np.stack([frames[i % len(frames)] for i in range(batch)])).to(device)
    with torch.no_grad():
        out = net(x.permute(0, 3, 1, 2).float() / 255)
    return (out[0] if isinstance(out, (list, tuple)) else out).float().contiguous()


def coco_like_heads(batch: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """A yolov8n-shaped head (B, 84, 5040) over 12 objects (each a class and a size): every anchor predicts a
    jittered box of one object; 50-300 anchors per image score their object's class in 0.25..1 (the
    candidates, which NMS mostly merges back into the objects), every other score is below 0.2."""
    g = torch.Generator().manual_seed(seed)
    anchors, nc, objects = 5040, 80, 12
    centres = torch.rand(batch, 2, objects, generator=g) * torch.tensor([640.0, 384.0])[None, :, None]
    sizes = torch.rand(batch, 2, objects, generator=g) * 150 + 20
    classes = torch.randint(0, nc, (batch, objects), generator=g)
    pick = torch.randint(0, objects, (batch, anchors), generator=g)
    index = pick[:, None].expand(-1, 2, -1)
    xy = torch.gather(centres, 2, index) + torch.randn(batch, 2, anchors, generator=g) * 6
    wh = torch.gather(sizes, 2, index) * (1 + 0.1 * torch.randn(batch, 2, anchors, generator=g))
    scores = torch.rand(batch, nc, anchors, generator=g) * 0.2
    for i in range(batch):
        n = int(torch.randint(50, 301, (1,), generator=g))
        hot = torch.randperm(anchors, generator=g)[:n]
        scores[i, classes[i, pick[i, hot]], hot] = 0.25 + 0.75 * torch.rand(n, generator=g)
    return torch.cat([xy, wh, scores], 1).to(device)


def path(nms: BatchedNMS, triton: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The packed NMS of one path (the Triton switch read at each call, as run_on_device does)."""
    value = "1" if triton else "0"

    def run(preds: torch.Tensor) -> torch.Tensor:
        os.environ[TRITON_ENV] = value
        return nms.run_on_device(preds, capped_top_k(nms.top_k, preds.shape[2]), nms.steps)

    return run


def same_result(a: torch.Tensor, b: torch.Tensor, max_det: int) -> bool:
    """Equal detections (the first `count` rows), counts and candidates for every image."""
    a, b = a.cpu(), b.cpu()
    for row_a, row_b in zip(a, b):
        count = int(row_a[-3])
        if count != int(row_b[-3]) or row_a[-2] != row_b[-2]:
            return False
        if not torch.equal(row_a[: count * 6], row_b[: count * 6]):
            return False
    return True


def eager_ms(fn: Callable[[torch.Tensor], torch.Tensor], preds: torch.Tensor, n: int = 50) -> float:
    fn(preds)  # the first call compiles (Triton) or picks kernels (torch)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        fn(preds)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / n


def graph_ms(
    fn: Callable[[torch.Tensor], torch.Tensor], preds: torch.Tensor, n: int = 200
) -> tuple[float, torch.Tensor]:
    static = preds.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # Triton compiles, torch settles
            fn(static)
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        out = fn(static)
    graph.replay()
    torch.cuda.synchronize()
    return events_ms(graph.replay, n), out.clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=str, default="")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/nms_kernels.py needs a CUDA GPU")
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, 384x640 input (5040 anchors)")
    inputs = {"yolov8n-like 80 cls conf 0.25": (coco_like_heads, 0.25)}
    if (FIXTURES / "models" / "shapes_yolov8n.pt").exists():
        inputs = {
            "shapes_yolov8n conf 0.25": (shapes_heads, 0.25),
            "shapes_yolov8n conf 0.05": (shapes_heads, 0.05),
        } | inputs
    else:
        print(f"(no {FIXTURES / 'models' / 'shapes_yolov8n.pt'}: synthetic heads only; set ULTRALYTICS_SHARED)")
    rows = []
    header = (
        f"{'input':31} {'batch':>5} {'cand/img':>8} {'top_k':>5} {'equal':>5} | {'eager torch':>11} {'triton':>7} | "
        f"{'graph torch':>11} {'triton':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, (make, conf) in inputs.items():
        for batch in (1, 8, 32):
            preds = make(batch, device)
            nms = BatchedNMS(conf, 0.7, top_k=1024)
            per_image = (preds[:, 4:].max(1).values > conf).sum(1)
            candidates = per_image.float().mean().item()
            most = max(int(per_image.max()), 1)
            nms.top_k = capped_top_k(max(256, 1 << (most - 1).bit_length()), preds.shape[2])  # all kept
            torch_fn, triton_fn = path(nms, False), path(nms, True)
            times: dict[str, list[float]] = {
                "eager torch": [],
                "eager triton": [],
                "graph torch": [],
                "graph triton": [],
            }
            outs = {}
            for _ in range(args.rounds):
                for label, fn in (("torch", torch_fn), ("triton", triton_fn)):
                    times[f"eager {label}"].append(eager_ms(fn, preds))
                    ms, outs[label] = graph_ms(fn, preds)
                    times[f"graph {label}"].append(ms)
            equal = same_result(outs["torch"], outs["triton"], nms.max_det) and same_result(
                torch_fn(preds), triton_fn(preds), nms.max_det
            )
            med = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"{name:31} {batch:>5} {candidates:>8.0f} {nms.top_k:>5} {str(equal):>5} | {med['eager torch']:>11.3f} "
                f"{med['eager triton']:>7.3f} | {med['graph torch']:>11.3f} {med['graph triton']:>7.3f}"
            )
            rows.append(
                {"input": name, "batch": batch, "candidates": candidates, "equal": equal, "top_k": nms.top_k, **med}
            )
    os.environ.pop(TRITON_ENV, None)
    print(f"(ms per call, median of {args.rounds} rounds; Triton NMS failure: {nms_triton.HEALTH.failure})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
