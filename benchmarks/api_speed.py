"""The speed users get through the public API: ours against upstream Ultralytics, same GPU, same run.

Times exactly the calls people write (wall clock around the call, ms per image):

  list      `model.predict(frames[i:i + b])` per call (b=1 is `model(frame)` with one numpy frame)
  pil       the same with PIL images
  tensor    the same with a BCHW RGB 0..1 CUDA tensor of b letterboxed 384x640 frames
  folder    `for r in model.predict("folder/", batch=b, stream=True)` over a folder of 720p JPEGs
  video     the same over an mp4 of those frames (or --video, e.g. a 720p H.264 file)
  --gpu-decode adds the folder and video rows with `gpu_decode=True` for ours (issue 19); upstream runs
            the same call its own way (it has no GPU decoding), so the ratio is against what users get there
  long      one call over --long in-memory frames at batch 32 (the long-call mode; ours only also
            reports `net`, the network alone through a CUDA graph, for the e2e/net ratio)

Each implementation runs in its own worker process (ours: this checkout; upstream: the install at
--upstream-site, e.g. `pip install --no-deps --target /tmp/upsite ultralytics-8.4.190-*.whl`), both
kept alive for the whole run and fed the same cases in alternating order, round after round; the table
shows the median over rounds. Frames are the fixture photos resized to --frame; the same weights
(upstream pickles, which both load) for both.

    PYTHONPATH=. python3 benchmarks/api_speed.py --shared ../shared --models a.pt b.pt \
        --upstream-site /tmp/upsite --json out.json [--profile out.prof.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("API_SPEED_DEVICE", "0")  # "cpu" for a smoke run without a GPU

# ----------------------------------------------------------------------------------------------- worker


def _frames(shared: str, n: int, frame_hw: tuple[int, int]):
    import cv2
    import numpy as np

    paths = sorted((Path(shared) / "fixtures" / "images").glob("*.png"))
    photos = [cv2.resize(cv2.imread(str(p)), (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_LINEAR) for p in paths]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):  # distinct arrays (not one cached frame), lightly varied so no two are identical
        f = photos[i % len(photos)].copy()
        f[0, : 1 + i % 64] = rng.integers(0, 255, size=(1 + i % 64, 3), dtype=np.uint8)
        out.append(f)
    return out


class Worker:
    """Loads models once, then times the cases it is sent (one JSON object per line on stdin)."""

    def __init__(self, impl: str, shared: str, frame_hw: tuple[int, int], n_frames: int, folder: str):
        import torch

        self.impl, self.torch = impl, torch
        self.frames = _frames(shared, n_frames, frame_hw)
        self.folder = folder
        self.models: dict[str, object] = {}
        self._pil = None
        self._tensor = None

    def model(self, path: str):
        if path not in self.models:
            from ultralytics import YOLO

            self.models[path] = YOLO(path)
        return self.models[path]

    def pil(self):
        if self._pil is None:
            from PIL import Image

            self._pil = [Image.fromarray(f[..., ::-1].copy()) for f in self.frames]
        return self._pil

    def tensor(self):
        if self._tensor is None:
            import cv2
            import numpy as np

            small = [cv2.resize(f, (640, 360)) for f in self.frames]
            small = [cv2.copyMakeBorder(s, 12, 12, 0, 0, cv2.BORDER_CONSTANT, value=(114, 114, 114)) for s in small]
            arr = np.stack(small)[..., ::-1].transpose(0, 3, 1, 2).copy()
            dev = "cpu" if DEVICE == "cpu" else "cuda"
            self._tensor = self.torch.from_numpy(arr).to(dev).float().div_(255)
        return self._tensor

    def sync(self):
        if self.torch.cuda.is_available():
            self.torch.cuda.synchronize()

    def run(self, case: dict) -> dict:
        m = self.model(case["model"])
        kw = {"device": DEVICE, "half": case["prec"] == "fp16", "imgsz": 640, "verbose": False}
        b, kind, calls = case["batch"], case["kind"], case["calls"]
        if kind == "net":
            return {"ms": self.net_ms(m, case)}
        if case.get("gpu_decode") and self.impl == "ours":
            kw["gpu_decode"] = True
        if kind == "video":
            video = case["video"]
            n = case["frames"]

            def call():
                k = sum(1 for _ in m.predict(video, batch=b, stream=True, **kw))
                assert k == n, (k, n)

            return {"ms": self.timed(call, case.get("warm", 1), 1) / n}
        if kind == "folder":
            n = len(os.listdir(self.folder))

            def call():
                k = 0
                for _ in m.predict(self.folder, batch=b, stream=True, **kw):
                    k += 1
                assert k == n, (k, n)

            return {"ms": self.timed(call, case.get("warm", 1), 1) / n}
        if kind == "long":
            frames = self.frames[: case["long"]]

            def call():
                assert len(m.predict(frames, batch=32, **kw)) == len(frames)

            return {"ms": self.timed(call, case.get("warm", 1), 1) / len(frames)}
        pool = {"list": self.frames, "pil": self.pil(), "tensor": self.tensor()}[kind]
        step = [0]

        def call():
            i = (step[0] * b) % (len(pool) - b + 1)
            step[0] += 1
            src = pool[i] if (b == 1 and kind == "list") else pool[i : i + b]
            r = m.predict(src, **kw)  # a list (or tensor) is one batch in both packages
            assert len(r) == b

        return {"ms": self.timed(call, case.get("warm", 3), calls) / b}

    def timed(self, call, warm: int, calls: int) -> float:
        for _ in range(warm):
            call()
        self.sync()
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            call()
            self.sync()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def net_ms(self, m, case: dict) -> float:
        """Ours only: the network alone at batch 32, 384x640, through the CUDA-graph runner."""
        torch = self.torch
        from ultralytics.gpu.graphs import CudaGraphRunner
        from ultralytics.utils.torch_utils import select_device

        backend = m._backend(select_device(0), case["prec"] == "fp16")
        runner = CudaGraphRunner(backend.backend.forward, backend.device)
        x = torch.rand(32, 3, 384, 640, device=backend.device).to(backend.dtype)
        for _ in range(5):
            runner(x)
        times = []
        for _ in range(30):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            runner(x)
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))
        return statistics.median(times) / 32

    def profile(self, case: dict, path: str) -> None:
        """Where one kind of call spends host time: cProfile over `calls` calls, top functions."""
        import cProfile
        import io
        import pstats

        self.run({**case, "calls": 2})  # warm
        prof = cProfile.Profile()
        prof.enable()
        self.run({**case, "warm": 0})
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(30)
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(40)
        with open(path, "a") as f:
            f.write(f"==== {self.impl} {case}\n{buf.getvalue()}\n")


def worker_main(args) -> None:
    # stdout carries the protocol; anything the packages print goes to stderr, Python's prints and
    # native libraries' writes to file descriptor 1 alike (PyNvVideoCodec, TensorRT)
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    w = Worker(args.worker, args.shared, tuple(args.frame), args.n_frames, args.folder)
    print(json.dumps({"ready": True}), file=protocol, flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg.get("profile"):
                w.profile(msg["case"], msg["profile"])
                out = {"ok": True}
            else:
                out = w.run(msg["case"])
        except Exception as e:  # reported in the table, the run goes on
            out = {"error": f"{type(e).__name__}: {e}"[:300]}
        print(json.dumps(out), file=protocol, flush=True)


# ----------------------------------------------------------------------------------------------- parent


def start_worker(impl: str, args, folder: str) -> subprocess.Popen:
    env = dict(os.environ, YOLO_OFFLINE="1", YOLO_VERBOSE="False", PYTHONUNBUFFERED="1")
    if impl == "ours":  # this checkout first; optional packages installed elsewhere (e.g. PyNvVideoCodec) stay visible
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    else:
        env["PYTHONPATH"] = args.upstream_site
    cmd = [sys.executable, __file__, "--worker", impl, "--shared", args.shared, "--folder", folder]
    cmd += ["--frame", *map(str, args.frame), "--n-frames", str(args.n_frames)]
    p = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=tempfile.gettempdir()
    )
    assert json.loads(p.stdout.readline()).get("ready")
    return p


def ask(p: subprocess.Popen, msg: dict) -> dict:
    p.stdin.write(json.dumps(msg) + "\n")
    p.stdin.flush()
    line = p.stdout.readline()
    return json.loads(line) if line else {"error": "worker died"}


def make_folder(args) -> str:
    """A folder of 720p JPEGs, and beside it an mp4 of the same frames (the video case)."""
    import cv2

    root = tempfile.mkdtemp(prefix="api_speed_")
    folder = os.path.join(root, "jpgs")
    os.makedirs(folder)
    frames = _frames(args.shared, args.folder_images, tuple(args.frame))
    for i, f in enumerate(frames):
        cv2.imwrite(os.path.join(folder, f"frame_{i:04d}.jpg"), f, [cv2.IMWRITE_JPEG_QUALITY, 90])
    h, w = args.frame
    writer = cv2.VideoWriter(os.path.join(root, "api_speed_clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return folder


def cases(args) -> list[dict]:
    out = []
    for model in args.models:
        for prec in args.precisions:
            base = {"model": model, "prec": prec}
            for b in args.batches:
                out.append({**base, "kind": "list", "batch": b, "calls": max(4, args.calls // b)})
            for kind in args.kinds:
                for b in args.batches if kind in ("pil", "tensor") else ():
                    out.append({**base, "kind": kind, "batch": b, "calls": max(4, args.calls // b)})
            decodes = [False, True] if args.gpu_decode else [False]
            for b in args.folder_batches:
                for gpu in decodes:
                    extra = {"gpu_decode": True} if gpu else {}
                    out.append({**base, "kind": "folder", "batch": b, "calls": 1, **extra})
                    if "video" in args.kinds:
                        video = {"video": args.video_path, "frames": args.video_frames}
                        out.append({**base, "kind": "video", "batch": b, "calls": 1, **video, **extra})
            out.append({**base, "kind": "long", "batch": 32, "calls": 1, "long": args.long})
            out.append({**base, "kind": "net", "batch": 32, "calls": 1, "ours_only": True})
    return out


def label(c: dict) -> str:
    if c.get("gpu_decode"):
        return {
            "folder": "predict('folder/', stream=True, gpu_decode=True)",
            "video": "same over the video, gpu_decode=True",
        }[c["kind"]]
    return {
        "list": "predict(list of numpy) per call" if c["batch"] > 1 else "model(frame) per call",
        "pil": "predict(list of PIL) per call",
        "tensor": "predict(BCHW tensor) per call",
        "folder": "predict('folder/*.jpg', stream=True)",
        "video": "predict('clip.mp4', stream=True)",
        "long": f"one call over {c.get('long')} in-memory frames (long-call mode)",
        "net": "network only (CUDA graph, ours)",
    }[c["kind"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fp16"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--folder-batches", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--kinds", nargs="*", default=["pil", "tensor", "video"], help="extra source kinds")
    ap.add_argument("--calls", type=int, default=64, help="frames per timed per-call measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frame", nargs=2, type=int, default=[720, 1280])
    ap.add_argument("--n-frames", type=int, default=256)
    ap.add_argument("--long", type=int, default=256)
    ap.add_argument("--folder-images", type=int, default=128)
    ap.add_argument("--upstream-site", default=None, help="a folder holding upstream ultralytics (PYTHONPATH)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--profile", default=None, help="write cProfile tables of a few calls (both impls) here")
    ap.add_argument("--video", default=None, help="the video of the video case (default: an mp4v of the frames)")
    ap.add_argument("--gpu-decode", action="store_true", help="also folder/video rows with gpu_decode=True (ours)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args)
    if not args.models:
        args.models = [str(Path(args.shared) / "fixtures/models/yolov8n_random_upstream.pt")]
    folder = make_folder(args)
    import cv2

    args.video_path = (
        os.path.abspath(args.video) if args.video else os.path.join(os.path.dirname(folder), "api_speed_clip.mp4")
    )
    capture = cv2.VideoCapture(args.video_path)
    args.video_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    host = host_speeds(args, folder)  # before the workers start: the machine alone
    impls = ["ours"] + (["upstream"] if args.upstream_site else [])
    workers = {impl: start_worker(impl, args, folder) for impl in impls}
    todo = cases(args)
    results: dict[int, dict[str, list[float]]] = {i: {impl: [] for impl in impls} for i in range(len(todo))}
    errors: dict[tuple, str] = {}
    for r in range(args.rounds):
        order = impls if r % 2 == 0 else impls[::-1]
        for i, c in enumerate(todo):
            for impl in order:
                if impl != "ours" and c.get("ours_only"):
                    continue
                out = ask(workers[impl], {"case": c})
                if "ms" in out:
                    results[i][impl].append(out["ms"])
                else:
                    errors[(i, impl)] = out.get("error", "?")
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    if args.profile:  # the per-call kinds and the folder, FP16, first model
        chosen = [c for c in todo if c["prec"] == args.precisions[-1] and c["model"] == args.models[0]]
        chosen = [c for c in chosen if c["kind"] in ("list", "folder", "tensor", "pil") and c["batch"] in (1, 32)]
        for impl in impls:
            for c in chosen:
                ask(workers[impl], {"case": c, "profile": os.path.abspath(args.profile)})
    for p in workers.values():
        p.stdin.close()
        p.wait(timeout=60)
    rows = []
    for i, c in enumerate(todo):
        med = {impl: (statistics.median(v) if v else None) for impl, v in results[i].items()}
        rows.append({**c, **{f"{k}_ms": v for k, v in med.items()}, **{f"{k}_all": v for k, v in results[i].items()}})
    print_table(rows, impls)
    print("\nthis host alone (the same code ran 1.5-2x apart on different H200 hosts): " + describe_host(host))
    for (i, impl), e in errors.items():
        print(f"ERROR {impl} {todo[i]}: {e}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": rows, "host": host, "errors": {str(k): v for k, v in errors.items()}}, indent=1)
        )


def host_speeds(args, folder: str) -> dict[str, float]:
    """What paces the host side on this machine, measured without either package (medians of 3, ms):
    copying the 720p frames into pinned memory (the upload's staging, CUDA only), decoding the folder's
    JPEGs on cores - 2 threads, and OpenCV reading the video alone. Hosts lent as "an H200" differed
    several-fold in these, which moved both packages' rows (docs/performance.md, session 8)."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import torch

    def median_of_3(fn) -> float:
        return round(statistics.median(fn() for _ in range(3)), 4)

    out: dict[str, float] = {}
    if torch.cuda.is_available():
        frames = _frames(args.shared, args.long, tuple(args.frame))
        pinned = torch.empty(32 * frames[0].size, dtype=torch.uint8, pin_memory=True)

        def stage() -> float:
            t0 = time.perf_counter()
            for i in range(0, len(frames), 32):
                part = [torch.from_numpy(f.reshape(-1)) for f in frames[i : i + 32]]
                torch.cat(part, out=pinned[: sum(t.numel() for t in part)])
            return (time.perf_counter() - t0) * 1e3 / len(frames)

        out["staging_ms_per_frame"] = median_of_3(stage)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    threads = max(1, min(16, (os.cpu_count() or 1) - 2))
    with ThreadPoolExecutor(threads) as pool:

        def decode() -> float:
            t0 = time.perf_counter()
            for _ in pool.map(cv2.imread, files):
                pass
            return (time.perf_counter() - t0) * 1e3 / len(files)

        out[f"jpeg_decode_ms_per_image_{threads}_threads"] = median_of_3(decode)

    def read_video() -> float:
        cap, n, t0 = cv2.VideoCapture(args.video_path), 0, time.perf_counter()
        while cap.read()[0]:
            n += 1
        cap.release()
        return (time.perf_counter() - t0) * 1e3 / max(1, n)

    out["video_read_ms_per_frame"] = median_of_3(read_video)
    return out


def describe_host(host: dict[str, float]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in host.items())


def print_table(rows: list[dict], impls: list[str]) -> None:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"\n{gpu}; ms per image, median over rounds (wall clock around the user's call)\n")
    head = "| model | prec | how the user calls it | batch | upstream 8.4.190 | ours | ours vs upstream |"
    print(head + "\n|---|---|---|---:|---:|---:|---:|")
    net = {(r["model"], r["prec"]): r.get("ours_ms") for r in rows if r["kind"] == "net"}
    for r in rows:
        up, ours = r.get("upstream_ms"), r.get("ours_ms")
        ratio = f"{up / ours:.3f}x" if up and ours else "-"  # three decimals: 3.498 is not 3.5
        extra = ""
        if r["kind"] == "long" and net.get((r["model"], r["prec"])) and ours:
            extra = f" (e2e/net {ours / net[(r['model'], r['prec'])]:.3f})"
        fmt = lambda v: f"{v:.3f}" if v is not None else "-"  # noqa: E731
        print(
            f"| {Path(r['model']).stem} | {r['prec']} | {label(r)} | {r['batch']} | {fmt(up)} | {fmt(ours)}{extra} | {ratio} |"
        )


if __name__ == "__main__":
    main()
