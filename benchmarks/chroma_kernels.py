"""The fancy JPEG chroma rebuild timed on CUDA: the torch reference against the two Triton kernels.

32 photographs from the fixtures, resized to 720p and re-encoded as q90 4:2:0 JPEGs with OpenCV, are
decoded in one batch by nvJPEG (torchvision, nearest chroma). On that batch: ms per batch for the torch
reference (`jpeg_chroma.fancy_upsample_bgr`) and for the kernels (`jpeg_chroma_triton`), timed with CUDA
events after a warm-up, rounds alternating; whether the kernels' bytes equal the reference's; and the
mean / max absolute difference from OpenCV's decode of the same files for plain nvJPEG (nearest chroma)
and for the rebuild. `--tiles` also times a few kernel tile shapes. Finishes in well under a minute.

    PYTHONPATH=. python3 benchmarks/chroma_kernels.py [--shared ../shared] [--json out.json] [--tiles]
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
from ultralytics.gpu import jpeg_chroma_triton  # noqa: E402
from ultralytics.gpu.jpeg_chroma import fancy_upsample_bgr, is_h2v2  # noqa: E402

TILES = [  # (block tile, pixel tile), each (BLOCK_Y, BLOCK_X, num_warps)
    ((4, 64, 4), (4, 128, 4)),
    ((2, 64, 4), (2, 128, 4)),
    ((8, 64, 4), (8, 128, 8)),
    ((4, 128, 8), (4, 256, 8)),
    ((2, 128, 4), (1, 256, 4)),
    ((8, 32, 4), (16, 64, 8)),
]


def make_jpegs(shared: Path, n: int, size: tuple[int, int] = (1280, 720), quality: int = 90) -> list[bytes]:
    paths = sorted((shared / "fixtures" / "images").glob("*.png"))
    if not paths:
        raise SystemExit(f"no fixture images under {shared}/fixtures/images; pass --shared")
    photos = [cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA) for p in paths]
    datas = []
    for i in range(n):
        photo = photos[i % len(photos)]
        if i >= len(photos):  # the same photo again: shift it so the batch is not n copies
            photo = np.roll(photo, (7 * i, 13 * i), (0, 1))
        ok, buf = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok and is_h2v2(buf.tobytes()), "OpenCV's default JPEG sampling should be 4:2:0"
        datas.append(buf.tobytes())
    return datas


def nvjpeg_bgr(datas: list[bytes], device: torch.device) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    inputs = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    frames = decode_jpeg(inputs, mode=ImageReadMode.RGB, device=device)
    return torch.stack([f.flip(0).permute(1, 2, 0) for f in frames]).contiguous()


def time_rounds(paths: dict[str, Callable[[], torch.Tensor]], rounds: int, iters: int) -> dict[str, float]:
    """Median ms per call of each path, rounds alternating between them (CUDA events)."""
    for fn in paths.values():
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            samples[name].append(events_ms(fn, iters))
    return {name: statistics.median(s) for name, s in samples.items()}


def diff_stats(frames: torch.Tensor, refs: list[np.ndarray]) -> tuple[float, int]:
    d = np.abs(frames.cpu().numpy().astype(np.int16) - np.stack(refs).astype(np.int16))
    return float(d.mean()), int(d.max())


def with_tiles(block: tuple[int, int, int], pixel: tuple[int, int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(frames: torch.Tensor) -> torch.Tensor:
        saved = jpeg_chroma_triton.BLOCK_TILE, jpeg_chroma_triton.PIXEL_TILE
        jpeg_chroma_triton.BLOCK_TILE, jpeg_chroma_triton.PIXEL_TILE = block, pixel
        try:
            return jpeg_chroma_triton.fancy_upsample_triton(frames)
        finally:
            jpeg_chroma_triton.BLOCK_TILE, jpeg_chroma_triton.PIXEL_TILE = saved

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = os.environ.get("ULTRALYTICS_SHARED", str(REPO.parent / "shared"))
    parser.add_argument("--shared", type=Path, default=Path(default_shared), help="the shared fixtures folder")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--tiles", action="store_true", help="also time the kernels at a few tile shapes")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("chroma_kernels.py needs a CUDA GPU")
    if not jpeg_chroma_triton.triton_available():
        raise SystemExit("chroma_kernels.py needs Triton (it comes with CUDA builds of torch)")
    device = torch.device("cuda")
    datas = make_jpegs(args.shared, args.images)
    refs = [cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR) for d in datas]
    frames = nvjpeg_bgr(datas, device)
    reference = fancy_upsample_bgr(frames)
    kernels = jpeg_chroma_triton.fancy_upsample_triton(frames)
    equal = torch.equal(reference, kernels)
    differing = int((reference != kernels).sum().item())
    ms = time_rounds(
        {
            "torch reference": lambda: fancy_upsample_bgr(frames),
            "Triton kernels": lambda: jpeg_chroma_triton.fancy_upsample_triton(frames),
        },
        args.rounds,
        args.iters,
    )
    nearest, fancy = diff_stats(frames, refs), diff_stats(kernels, refs)
    h, w = frames.shape[1:3]
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  {len(datas)} JPEGs {w}x{h} q90 4:2:0\n")
    print("| path | ms / batch | ms / img |\n|---|---:|---:|")
    for name, value in ms.items():
        print(f"| {name} | {value:.3f} | {value / len(datas):.4f} |")
    print(f"\nkernels == torch reference byte for byte: {equal} ({differing} values differ)\n")
    print("| decode | vs OpenCV: mean abs | max abs |\n|---|---:|---:|")
    print(f"| nvJPEG (nearest chroma) | {nearest[0]:.4f} | {nearest[1]} |")
    print(f"| nvJPEG + fancy rebuild | {fancy[0]:.4f} | {fancy[1]} |")
    results = {
        "device": torch.cuda.get_device_name(),
        "images": len(datas),
        "ms_per_batch": ms,
        "bytes_equal": equal,
        "values_differing": differing,
        "vs_opencv": {"nearest": nearest, "fancy": fancy},
    }
    if args.tiles:
        tiles = {
            f"blocks {b} pixels {p}": with_tiles(b, p)
            for b, p in TILES
            if torch.equal(with_tiles(b, p)(frames), reference)
        }
        tile_ms = time_rounds({name: (lambda fn=fn: fn(frames)) for name, fn in tiles.items()}, args.rounds, args.iters)
        print("\n| kernel tiles (BLOCK_Y, BLOCK_X, warps) | ms / batch |\n|---|---:|")
        for name, value in tile_ms.items():
            print(f"| {name} | {value:.3f} |")
        results["tiles_ms_per_batch"] = tile_ms
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
