"""GPU letterbox kernels timed against each other: the fused Triton kernel, the torch exact path, the float path.

A batch of same-size uint8 BGR frames (default 32 x 720x1280, real photographs resized) is letterboxed to
the canvas predict uses (384x640 at imgsz 640) in FP16. Each path is timed with CUDA events after a
warm-up, eagerly (launch overhead included, as the batch-32 pipeline runs it) and replayed from a CUDA
graph (device time alone); rounds alternate between the paths so clock drift hits them all alike. The
Triton kernel is also timed at a few tile shapes, and checked equal to the torch exact path first.
`--e2e` also times yolov8n predict end to end at batch 32 with the torch letterbox and with the kernel,
alternating, against the network alone (issue 8's bar: e2e <= 1.5 x network).

    PYTHONPATH=. python3 benchmarks/letterbox_kernels.py --json out.json [--e2e]
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

from ultralytics.data.augment import letterbox_params  # noqa: E402
from ultralytics.gpu import letterbox_triton  # noqa: E402
from ultralytics.gpu.letterbox import RESIZE_ENV, letterbox_batch  # noqa: E402

TILES = [(1, 128, 4), (2, 128, 4), (1, 256, 4), (4, 128, 4), (2, 256, 8), (4, 64, 4), (8, 64, 4), (1, 512, 8)]


def load_frames(shared: Path, n: int, frame_hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    paths = sorted((shared / "fixtures" / "images").glob("*.png"))
    if not paths:
        raise SystemExit(f"no fixture images under {shared}/fixtures/images; pass --shared")
    photos = [cv2.resize(cv2.imread(str(p)), frame_hw[::-1], interpolation=cv2.INTER_LINEAR) for p in paths]
    return torch.from_numpy(np.stack([photos[i % len(photos)] for i in range(n)])).to(device)


def with_env(name: str, value: str, fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        old = os.environ.get(name)
        os.environ[name] = value
        try:
            return fn()
        finally:
            if old is None:
                del os.environ[name]
            else:
                os.environ[name] = old

    return run


def with_tile(tile: tuple[int, int, int], fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        saved = letterbox_triton.BLOCK_Y, letterbox_triton.BLOCK_X, letterbox_triton.NUM_WARPS
        letterbox_triton.BLOCK_Y, letterbox_triton.BLOCK_X, letterbox_triton.NUM_WARPS = tile
        try:
            return fn()
        finally:
            letterbox_triton.BLOCK_Y, letterbox_triton.BLOCK_X, letterbox_triton.NUM_WARPS = saved

    return run


def events_ms(fn: Callable[[], object], iters: int) -> float:
    """Mean ms per call over `iters` back-to-back calls, between two CUDA events."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / iters


def as_graph(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()  # warm-up outside the capture (Triton compiles, tables get cached)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def time_paths(paths: dict[str, Callable[[], object]], iters: int, rounds: int) -> dict[str, float]:
    """Median over alternating rounds of each path's mean ms per call."""
    for fn in paths.values():
        for _ in range(3):
            fn()
    torch.cuda.synchronize()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            samples[name].append(events_ms(fn, iters))
    return {name: statistics.median(v) for name, v in samples.items()}


def e2e_comparison(shared: Path, frame_hw: tuple[int, int], batch: int, calls: int, rounds: int) -> dict:
    """yolov8n FP16 predict at `batch`, the letterbox swapped in the pipeline's namespace, alternating."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import predict_speed as ps

    import ultralytics.engine.gpu_pipeline as pipeline
    from ultralytics import YOLO
    from ultralytics.gpu.graphs import CudaGraphRunner

    device = torch.device("cuda")
    model = YOLO("yolov8n.yaml")
    backend = model._backend(device, True)
    frames = ps.load_frames(shared, 2 * batch, frame_hw)
    in_hw = letterbox_params(frame_hw, (640, 640), auto=True, stride=backend.stride).canvas_hw
    runner = CudaGraphRunner(backend.backend.forward, device, max_graphs=4)
    with torch.no_grad():
        net = ps.cuda_median_ms(runner, torch.rand(batch, 3, *in_hw, device=device, dtype=backend.dtype), 30) / batch
    predictor = ps.make_predictor(model, device, True, batch, 640, True)

    def torch_exact(*args, **kwargs):  # letterbox_batch itself prefers the kernel: switch it off
        return with_env(letterbox_triton.TRITON_ENV, "0", lambda: letterbox_batch(*args, **kwargs))()

    variants = {"torch_exact": torch_exact, "triton": letterbox_batch}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    original = pipeline.letterbox_batch
    try:
        for _ in range(rounds):
            for name, fn in variants.items():
                pipeline.letterbox_batch = fn
                samples[name].append(ps.predict_ms_per_image(predictor, frames, batch, calls))
    finally:
        pipeline.letterbox_batch = original
    e2e = {name: statistics.median(v) for name, v in samples.items()}
    return {
        "batch": batch,
        "network_input": list(in_hw),
        "net_graph_ms_per_img": net,
        "e2e_ms_per_img": e2e,
        "e2e_over_net": {name: v / net for name, v in e2e.items()},
        "rounds": {name: [round(x, 4) for x in v] for name, v in samples.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frame", default="720x1280", help="frame size HxW")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--iters", type=int, default=20, help="calls per timed round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--e2e", action="store_true", help="also time yolov8n FP16 predict with each letterbox")
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("ULTRALYTICS_SHARED", REPO.parent / "shared")))
    ap.add_argument("--json", type=Path)
    opt = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")

    device = torch.device("cuda")
    frame_hw = tuple(int(v) for v in opt.frame.lower().split("x"))
    frames = load_frames(opt.shared, opt.batch, frame_hw, device)
    geometry = letterbox_params(frame_hw, (opt.imgsz, opt.imgsz), auto=True)
    geometries = [geometry] * opt.batch
    dtype = torch.float16
    import triton

    print(
        f"# {torch.cuda.get_device_name(device)}, torch {torch.__version__}, triton {triton.__version__}, "
        f"{opt.batch} x {frame_hw} → canvas {geometry.canvas_hw} FP16"
    )

    # the torch exact path: letterbox_batch with the kernel switched off (it prefers the kernel otherwise)
    exact = with_env(letterbox_triton.TRITON_ENV, "0", lambda: letterbox_batch(frames, geometries, dtype))
    fast = with_env(RESIZE_ENV, "fast", lambda: letterbox_batch(frames, geometries, dtype))
    paths = {"torch_exact": exact, "torch_float": fast}
    for tile in TILES:
        paths[f"triton_{tile[0]}x{tile[1]}_w{tile[2]}"] = with_tile(
            tile, lambda: letterbox_triton.letterbox_same_size(frames, geometry, dtype)
        )
    reference = exact()
    for name, fn in paths.items():
        if name.startswith("triton") and not torch.equal(fn(), reference):
            raise SystemExit(f"{name} differs from the torch exact path")
    print("# every Triton tile equals the torch exact path")

    eager = time_paths(paths, opt.iters, opt.rounds)
    graphs = time_paths({name: as_graph(fn) for name, fn in paths.items()}, opt.iters, opt.rounds)
    print(f"{'path':<24}{'eager ms/batch':>16}{'graph ms/batch':>16}{'eager us/img':>14}")
    for name in paths:
        print(f"{name:<24}{eager[name]:>16.4f}{graphs[name]:>16.4f}{eager[name] * 1e3 / opt.batch:>14.2f}")
    result = {
        "device": torch.cuda.get_device_name(device),
        "batch": opt.batch,
        "frame_hw": list(frame_hw),
        "canvas_hw": list(geometry.canvas_hw),
        "default_tile": [letterbox_triton.BLOCK_Y, letterbox_triton.BLOCK_X, letterbox_triton.NUM_WARPS],
        "eager_ms_per_batch": eager,
        "graph_ms_per_batch": graphs,
    }
    if opt.json:
        opt.json.write_text(json.dumps(result, indent=1))
    if opt.e2e:
        result["e2e"] = e2e_comparison(opt.shared, frame_hw, opt.batch, calls=3, rounds=5)
        print(json.dumps(result["e2e"], indent=1))
        if opt.json:
            opt.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
