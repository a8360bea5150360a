"""The A/B timing both kernel-switch benchmarks use (bias_act_kernels.py, channels_last.py): a network
captured as a CUDA graph once per variant and replayed in alternating rounds, and `model.predict` per call
with one YOLO per variant, also in alternating rounds (so a drifting GPU clock or host hits both alike)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import torch

from benchmarks.letterbox_kernels import events_ms
from ultralytics.gpu.streams import parallel_branches

DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def load_model(spec: str, shared: Path) -> torch.nn.Module:
    """A fused, eval-mode DetectionModel from a checkpoint path (or a fixture's name) or a yaml name."""
    if spec.endswith(".yaml"):
        from ultralytics.nn.tasks import DetectionModel

        torch.manual_seed(0)
        return DetectionModel(spec).fuse().eval()
    from ultralytics.nn.checkpoint import load_checkpoint

    path = Path(spec) if Path(spec).exists() else shared / "fixtures" / "models" / spec
    return load_checkpoint(path)[0].eval()


def capture(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """Three warm-up passes then the capture, on a side stream (the Detect head's branches on side streams,
    as the pipeline captures it)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), parallel_branches(x.device):
        with torch.cuda.stream(stream):
            for _ in range(3):
                model(x)
        stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            out = model(x)
    torch.cuda.synchronize()
    return graph, out


def replay_ms(graph: torch.cuda.CUDAGraph, iters: int) -> float:
    """Mean ms per replay over `iters` back-to-back replays."""
    return events_ms(graph.replay, iters)


def alternate_replays(
    graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, torch.Tensor]], rounds: int, iters: int
) -> tuple[bool, dict[Hashable, list[float]]]:
    """(whether the variants' outputs are `torch.equal`, ms per replay of each variant per round)."""
    for graph, _ in graphs.values():
        replay_ms(graph, 3)  # also fills the static outputs (a capture runs nothing)
    outputs = [out for _, out in graphs.values()]
    equal = all(torch.equal(outputs[0], out) for out in outputs[1:])
    samples: dict[Hashable, list[float]] = {k: [] for k in graphs}
    for _ in range(rounds):
        for k, (graph, _) in graphs.items():
            samples[k].append(replay_ms(graph, iters))
    return equal, samples


def photo_frames(shared: Path, count: int) -> list[Any]:
    """`count` 720x1280 BGR frames made from the fixture photos."""
    import cv2

    paths = sorted((shared / "fixtures" / "images").glob("*.png"))
    if not paths:
        raise SystemExit(f"no fixture images under {shared}/fixtures/images; pass --shared")
    frames = [cv2.resize(cv2.imread(str(p)), (1280, 720)) for p in paths]
    return [frames[i % len(frames)].copy() for i in range(count)]


def alternate_predict(
    models: dict[Hashable, Any], frames: list[Any], batches: list[int], rounds: int, calls: int
) -> dict[int, dict[Hashable, list[float]]]:
    """Per batch size, per variant: the median ms/img of `calls` `model.predict(frames)` calls (FP16, a lone
    frame for batch 1, as `model(frame)`), one sample per round; the models are warmed up already."""
    out = {}
    for b in batches:
        samples: dict[Hashable, list[float]] = {k: [] for k in models}
        for _ in range(rounds):
            for k, model in models.items():
                times = []
                for i in range(calls):
                    batch = frames[(i * b) % (len(frames) - b + 1) :][:b]
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    model.predict(batch[0] if b == 1 else batch, half=True, device=0, verbose=False)
                    torch.cuda.synchronize()
                    times.append((time.perf_counter() - t0) * 1e3 / b)
                samples[k].append(statistics.median(times))
        out[b] = samples
    return out
