"""Network forward with the fused bias+SiLU Triton kernel on vs off, replayed from CUDA graphs.

For each model (yolov8n from the fixtures, yolov8s from its yaml with random weights; both fused),
precision and batch at 384x640 (imgsz 640, a 720x1280 frame's canvas), the forward is captured twice as
a CUDA graph, with `ULTRALYTICS_GPU_TRITON` on and off (the Detect head's branches on side streams, as
the pipeline captures it), and the two graphs are replayed in alternating rounds: ms per forward is the
median of the rounds' means (CUDA events). Also printed: CUDA kernels per eager forward (torch.profiler)
and whether the two graphs' outputs are `torch.equal`. `--predict` adds the public API per call
(`model.predict(frame)` / a list of 8 frames, FP16, 720x1280 photos), switch off vs on, alternating.

    PYTHONPATH=. python3 benchmarks/bias_act_kernels.py [--models a.pt yolov8s.yaml] [--predict] [--json out.json]
"""

from __future__ import annotations

import copy
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import ab_timing  # noqa: E402
from benchmarks.ab_timing import (  # noqa: E402
    DTYPES,
    alternate_predict,
    alternate_replays,
    load_model,
    photo_frames,
    print_table_head,
    seeded_input,
)
from ultralytics.gpu import bias_act_triton  # noqa: E402
from ultralytics.utils.settings import TRITON_ENV  # noqa: E402


def set_switch(on: bool) -> None:
    os.environ[TRITON_ENV] = "1" if on else "0"
    bias_act_triton.reload_switch()


def capture(model: torch.nn.Module, x: torch.Tensor, on: bool) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """`ab_timing.capture` with the bias+SiLU switch set to `on` first."""
    set_switch(on)
    return ab_timing.capture(model, x)


def kernels_per_forward(model: torch.nn.Module, x: torch.Tensor, on: bool) -> int | None:
    """CUDA kernels launched by one eager forward (the graph holds the same ones), or None without CUPTI."""
    set_switch(on)
    try:
        from torch.profiler import ProfilerActivity, profile

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the profiler's note about clearing events per cycle
            model(x)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                model(x)
                torch.cuda.synchronize()
        return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    except Exception as error:  # profiler unavailable on this machine
        print(f"(kernel counts unavailable: {type(error).__name__}: {error})")
        return None


def predict_rows(spec: str, shared: Path, batches: list[int], rounds: int, calls: int) -> list[dict]:
    """`model.predict(frames)` per call (FP16, 720x1280 photos): one YOLO captured with the kernel off, one
    with it on (the graphs keep the path they were captured with), timed in alternating rounds. Only the
    bias+SiLU kernel is switched (not `ULTRALYTICS_GPU_TRITON`, which also picks the letterbox)."""
    from ultralytics import YOLO

    frames = photo_frames(shared, max(batches) * 4)
    path = Path(spec) if Path(spec).exists() else shared / "fixtures" / "models" / spec
    models = {}
    set_switch(True)  # the Triton letterbox stays on for both; only the bias+SiLU kernel is switched below
    for on in (False, True):
        models[on] = YOLO(str(path))
        original = bias_act_triton._switch_on
        bias_act_triton._switch_on = lambda on=on: on
        try:
            for b in batches:
                for _ in range(3):  # warm-up: Triton compile, graph capture, pinned buffers
                    models[on].predict(frames[:b], half=True, device=0, verbose=False)
        finally:
            bias_act_triton._switch_on = original
    samples = alternate_predict(models, frames, batches, rounds, calls)
    return ab_timing.predict_summary(path.name, samples, (False, True), ("off_ms_per_img", "on_ms_per_img"))


def main() -> int:
    args = ab_timing.argument_parser(
        __doc__.splitlines()[0],
        REPO.parent / "shared",
        "also model.predict(frames) per call, FP16, first model, on vs off",
    ).parse_args()
    if not torch.cuda.is_available():
        print("bias_act_kernels.py needs a CUDA GPU (none is visible)")
        return 2
    if not bias_act_triton.triton_available():
        print("bias_act_kernels.py needs Triton (pip install triton)")
        return 2
    device = torch.device("cuda")
    started = time.perf_counter()
    header = f"{'model':<28} {'prec':<5} {'batch':>5} {'off ms':>8} {'on ms':>8} {'saved':>7} {'on/off':>7} {'kernels off/on':>15} {'equal':>6}"
    print_table_head(device, args.imgsz, header)
    rows = []
    for spec in args.models:
        base = load_model(spec, args.shared)
        for precision in args.precisions:
            model = copy.deepcopy(base).to(device, DTYPES[precision])
            for batch in args.batches:
                x = seeded_input(batch, args.imgsz, device, DTYPES[precision])
                kernels = ("", "")
                if batch == args.batches[0]:
                    kernels = (kernels_per_forward(model, x, False), kernels_per_forward(model, x, True))
                graphs = {on: capture(model, x, on) for on in (False, True)}
                equal, samples = alternate_replays(graphs, args.rounds, args.iters)
                off, on = statistics.median(samples[False]), statistics.median(samples[True])
                row = {
                    "model": Path(spec).name,
                    "precision": precision,
                    "batch": batch,
                    "off_ms": round(off, 4),
                    "on_ms": round(on, 4),
                    "kernels_off": kernels[0],
                    "kernels_on": kernels[1],
                    "equal": equal,
                    "rounds_off": [round(v, 4) for v in samples[False]],
                    "rounds_on": [round(v, 4) for v in samples[True]],
                }
                rows.append(row)
                kern = f"{kernels[0]}/{kernels[1]}" if kernels[0] != "" else ""
                print(
                    f"{row['model']:<28} {precision:<5} {batch:>5} {off:>8.3f} {on:>8.3f} {off - on:>7.3f} "
                    f"{on / off:>7.3f} {kern:>15} {str(equal):>6}",
                    flush=True,
                )
                del graphs
            torch.cuda.empty_cache()
    return ab_timing.finish(args, device, rows, started, predict_rows)


if __name__ == "__main__":
    raise SystemExit(main())
