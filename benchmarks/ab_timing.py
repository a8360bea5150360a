"""The A/B timing both kernel-switch benchmarks use (bias_act_kernels.py, channels_last.py): a network
captured as a CUDA graph once per variant and replayed in alternating rounds, and `model.predict` per call
with one YOLO per variant, also in alternating rounds (so a drifting GPU clock or host hits both alike)."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Hashable
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


def print_table_head(device: torch.device, imgsz: list[int], header: str) -> None:
    """The card, torch and input size, then a table's header line and its rule."""
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, input {imgsz[0]}x{imgsz[1]}")
    print(header)
    print("-" * len(header))


def seeded_input(batch: int, imgsz: list[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A random 0..1 network input, the same for a given batch size in every benchmark and variant."""
    gen = torch.Generator().manual_seed(batch)
    return torch.rand(batch, 3, *imgsz, generator=gen).to(device, dtype)


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


def finish(
    args: Any, device: torch.device, rows: list[dict], started: float, predict_rows: Callable[..., list[dict]]
) -> int:
    """The end both benchmarks share: the public-API rows when `--predict` asks (batches up to 8, the first
    model), the time taken, the JSON report; exit status 1 when a variant's output differed."""
    predict = []
    if args.predict:
        predict = predict_rows(
            args.models[0], args.shared, [b for b in args.batches if b <= 8], args.rounds, args.calls
        )
    print(
        f"({time.perf_counter() - started:.0f} s; median of {args.rounds} alternating rounds of {args.iters} replays)"
    )
    if args.json:
        report = {"device": torch.cuda.get_device_name(device), "rows": rows, "predict": predict}
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if all(r["equal"] for r in rows) else 1


def argument_parser(description: str, shared: Path, predict_help: str) -> argparse.ArgumentParser:
    """The options both benchmarks take (models, precisions, batches, rounds, --predict ...)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--models", nargs="+", default=["yolov8n_random_upstream.pt", "yolov8s.yaml"])
    parser.add_argument("--shared", type=Path, default=shared, help="the shared/ folder (fixtures)")
    parser.add_argument("--precisions", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--imgsz", nargs=2, type=int, default=[384, 640], metavar=("H", "W"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=30, help="replays per round")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--predict", action="store_true", help=predict_help)
    parser.add_argument("--calls", type=int, default=40, help="predict calls per round (--predict)")
    return parser


def predict_summary(
    name: str, samples_by_batch: dict[int, dict[Hashable, list[float]]], variants: tuple, keys: tuple[str, str]
) -> list[dict]:
    """`alternate_predict`'s samples as rows ({keys[0]: variant 0's median ms/img, keys[1]: variant 1's}),
    each printed as it is made."""
    rows = []
    for b, samples in samples_by_batch.items():
        off, on = (statistics.median(samples[v]) for v in variants)
        rows.append({"model": name, "batch": b, keys[0]: round(off, 4), keys[1]: round(on, 4)})
        print(f"predict per call {name:<28} fp16 {b:>5} {off:>8.3f} {on:>8.3f} {off - on:>7.3f} ms/img", flush=True)
    return rows
