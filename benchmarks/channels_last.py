"""The PyTorch network NCHW vs channels-last on CUDA (gpu/channels_last.py), alone and through the public API.

Network alone: for each model (fused), precision and batch at 384x640 (imgsz 640, a 720x1280 frame's
canvas), the forward is captured twice as a CUDA graph, once with torch's NCHW weights and input, once
with both channels-last (the Detect head's branches on side streams, as the pipeline captures it), and
the two graphs are replayed in alternating rounds: ms per forward is the median of the rounds' means
(CUDA events); `equal` says whether the two outputs are `torch.equal`. `--predict` adds the public API
(`model(frame)` per call and a list of 8, FP16, 720x1280 photos) with `ULTRALYTICS_GPU_CHANNELS_LAST` 0 vs
1, a fresh YOLO per variant (the switch is read when a model's CUDA pipeline is set up), alternating rounds.

    PYTHONPATH=. python3 benchmarks/channels_last.py [--models a.pt yolov8s.yaml] [--predict] [--json out.json]
"""

from __future__ import annotations

import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import ab_timing  # noqa: E402
from benchmarks.ab_timing import (  # noqa: E402
    DTYPES,
    alternate_predict,
    alternate_replays,
    capture,
    load_model,
    photo_frames,
    print_table_head,
    seeded_input,
)
from ultralytics.gpu.channels_last import network_input, to_channels_last  # noqa: E402
from ultralytics.utils.settings import CHANNELS_LAST_ENV  # noqa: E402

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def predict_rows(spec: str, shared: Path, batches: list[int], rounds: int, calls: int) -> list[dict]:
    """Public API per call, FP16, switch 0 vs 1: one YOLO per variant, warmed up, alternating rounds."""
    from ultralytics import YOLO

    frames = photo_frames(shared, max(batches) * 4)
    path = Path(spec) if Path(spec).exists() else shared / "fixtures" / "models" / spec
    models = {}
    for switch in ("0", "1"):
        os.environ[CHANNELS_LAST_ENV] = switch  # read when this model's pipeline state is made, below
        models[switch] = YOLO(str(path))
        for b in batches:
            for _ in range(3):  # warm-up: Triton compile, graph capture, pinned buffers
                models[switch].predict(frames[:b], half=True, device=0, verbose=False)
    samples = alternate_predict(models, frames, batches, rounds, calls)
    return ab_timing.predict_summary(path.name, samples, ("0", "1"), ("nchw_ms_per_img", "cl_ms_per_img"))


def main() -> int:
    args = ab_timing.argument_parser(
        __doc__.splitlines()[0], REPO.parent / "shared", "also the public API per call, FP16, first model"
    ).parse_args()
    if not torch.cuda.is_available():
        print("channels_last.py needs a CUDA GPU (none is visible)")
        return 2
    device = torch.device("cuda")
    started = time.perf_counter()
    header = (
        f"{'model':<28} {'prec':<5} {'batch':>5} {'NCHW ms':>8} {'CL ms':>8} {'saved':>7} {'CL/NCHW':>7} {'equal':>6}"
    )
    print_table_head(device, args.imgsz, header)
    rows = []
    for spec in args.models:
        base = load_model(spec, args.shared)
        for precision in args.precisions:
            variants = {"nchw": copy.deepcopy(base).to(device, DTYPES[precision])}
            variants["channels_last"] = to_channels_last(copy.deepcopy(variants["nchw"]))
            for batch in args.batches:
                x = seeded_input(batch, args.imgsz, device, DTYPES[precision])
                graphs = {k: capture(m, network_input(x, LAYOUTS[k])) for k, m in variants.items()}
                equal, samples = alternate_replays(graphs, args.rounds, args.iters)
                off, on = statistics.median(samples["nchw"]), statistics.median(samples["channels_last"])
                row = {
                    "model": Path(spec).name,
                    "precision": precision,
                    "batch": batch,
                    "nchw_ms": round(off, 4),
                    "channels_last_ms": round(on, 4),
                    "equal": equal,
                    "rounds": {k: [round(v, 4) for v in s] for k, s in samples.items()},
                }
                rows.append(row)
                print(
                    f"{row['model']:<28} {precision:<5} {batch:>5} {off:>8.3f} {on:>8.3f} {off - on:>7.3f} "
                    f"{on / off:>7.3f} {str(equal):>6}",
                    flush=True,
                )
                del graphs
            del variants
            torch.cuda.empty_cache()
    return ab_timing.finish(args, device, rows, started, predict_rows)


if __name__ == "__main__":
    raise SystemExit(main())
