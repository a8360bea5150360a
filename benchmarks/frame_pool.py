"""The frame pool on and off (`ULTRALYTICS_FRAME_POOL_MB`), through the public API, in alternating rounds.

Times what the pool changes: a video read at batch 32 and 1 (`predict("clip.mp4", batch=b, stream=True)`, an
mp4v clip made from the fixture photos, as api_speed.py makes it) and `model(pil_image)` per call; with the minor
page faults per frame the process took meanwhile (getrusage), the quantity the pool exists to remove
(data/frame_pool.py; benchmarks/NOTES.md, session 9). The switch is read at every `take`, so one process
alternates the two settings round after round.

    PYTHONPATH=. python3 benchmarks/frame_pool.py --shared ../shared [--model yolov8n_random_upstream.pt]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from api_speed import _frames  # noqa: E402  (benchmarks/ is not a package on every path)

from ultralytics.utils.settings import FRAME_POOL_ENV  # noqa: E402

VARIANTS = {"pool on": None, "pool off": "0"}  # the setting's value (None: unset, the default)


def write_clip(frames: list, path: Path) -> Path:
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def set_pool(value: str | None) -> None:
    """Set the pool's switch (None: unset, its default)."""
    if value is None:
        os.environ.pop(FRAME_POOL_ENV, None)
    else:
        os.environ[FRAME_POOL_ENV] = value


def measure(call, per: int) -> tuple[float, float]:
    """(ms per frame, minor page faults per frame) of one call that handles `per` frames."""
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    call()
    sync()
    ms = (time.perf_counter() - t0) * 1e3 / per
    return ms, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--model", default="yolov8n_random_upstream.pt")
    parser.add_argument("--frames", type=int, default=256, help="frames in the clip")
    parser.add_argument("--frame", nargs=2, type=int, default=[720, 1280], metavar=("H", "W"))
    parser.add_argument("--pil-calls", type=int, default=32, help="model(pil_image) calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="0", help="'cpu' for a smoke run")
    args = parser.parse_args()

    from PIL import Image

    from ultralytics import YOLO

    frames = _frames(str(args.shared), args.frames, tuple(args.frame))
    clip = write_clip(frames, Path(tempfile.mkdtemp(prefix="frame_pool_")) / "clip.mp4")
    pils = [Image.fromarray(f[..., ::-1].copy()) for f in frames[: args.pil_calls]]
    model_path = Path(args.model)
    if not model_path.exists():
        model_path = args.shared / "fixtures" / "models" / args.model
    model = YOLO(model_path)
    kw = {"device": args.device, "half": args.device != "cpu", "imgsz": 640, "verbose": False}

    def video(b: int):
        return lambda: sum(1 for _ in model.predict(str(clip), batch=b, stream=True, **kw))

    def pil_calls():
        for im in pils:
            model(im, **kw)

    cases = {
        "video b32": (video(32), len(frames)),
        "video b1": (video(1), len(frames)),
        "PIL per call": (pil_calls, len(pils)),
    }
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds + 1):  # round 0 warms both settings up (graphs, the pool's first arrays)
        for variant in VARIANTS if r % 2 == 0 else list(VARIANTS)[::-1]:
            set_pool(VARIANTS[variant])
            for name, (call, per) in cases.items():
                result = measure(call, per)
                if r:
                    samples.setdefault((name, variant), []).append(result)
    set_pool(None)

    print(f"\n{args.model}, frames {args.frame[0]}x{args.frame[1]}, median of {args.rounds} alternating rounds\n")
    print("| case | " + " | ".join(f"{v} ms/frame (faults/frame)" for v in VARIANTS) + " |")
    print("|---|" + "---:|" * len(VARIANTS))
    for name in cases:
        cells = []
        for variant in VARIANTS:
            ms = [s[0] for s in samples[(name, variant)]]
            faults = statistics.median(s[1] for s in samples[(name, variant)])
            cells.append(f"{statistics.median(ms):.3f} ({min(ms):.3f}-{max(ms):.3f}; {faults:.0f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
