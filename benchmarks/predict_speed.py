"""Predict speed: end-to-end ms/img against network-only ms/img, and the CPU-preprocessing baseline.

For every model × precision × batch it reports, all in one process on one GPU:
  net_eager   network forward alone, eager PyTorch (CUDA events, median), at the input shape predict
              uses for these frames (upstream's minimal rect padding: 720x1280 → 384x640 at imgsz 640)
  net_graph   network forward alone through the CUDA-graph runner (copy in + replay + copy out)
  e2e         `predict` over in-memory BGR frames with the GPU pipeline (letterbox, graphs, NMS on the
              device, prefetch): wall time of whole predict calls / images
  baseline    the same predict with the CPU path (OpenCV letterbox, eager forward, per-image NMS,
              synchronising stage timers): what upstream-style preprocessing costs here
  e2e/net     e2e over net_graph (the issue asks for <= 1.5 at batch 32)

Frames are real photographs from the shared fixtures resized to --frame (default 720x1280, a typical
camera frame), so letterbox really resizes. Models are built from their yaml with random weights
unless a .pt is given: speed does not depend on the weights, but the number of NMS candidates does
(random heads give few; a trained model on busy scenes gives more).

    PYTHONPATH=. python3 benchmarks/predict_speed.py --models yolov8n.yaml yolov8s.yaml --batches 1 8 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ultralytics import YOLO  # noqa: E402
from ultralytics.cfg import get_cfg  # noqa: E402
from ultralytics.data.augment import letterbox_params  # noqa: E402
from ultralytics.data.loaders import InferenceSource  # noqa: E402
from ultralytics.engine.predictor import DetectionPredictor  # noqa: E402
from ultralytics.gpu.graphs import CudaGraphRunner  # noqa: E402
from ultralytics.utils.torch_utils import select_device  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def load_frames(shared: Path, n: int, frame_hw: tuple[int, int]) -> list[np.ndarray]:
    paths = sorted((shared / "fixtures" / "images").glob("*.png"))
    if not paths:
        raise SystemExit(f"no fixture images under {shared}/fixtures/images; pass --shared")
    photos = [cv2.resize(cv2.imread(str(p)), (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_LINEAR) for p in paths]
    return [photos[i % len(photos)].copy() for i in range(n)]


def cuda_median_ms(fn, x: torch.Tensor, iters: int, warmup: int = 5) -> float:
    """Median per-call time of fn(x) from CUDA events (no host timer involved); host timer on the CPU."""
    for _ in range(warmup):
        fn(x)
    times = []
    if x.device.type != "cuda":  # smoke runs only
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(x)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def make_predictor(model: YOLO, device: torch.device, fp16: bool, batch: int, imgsz: int, fast: bool):
    args = get_cfg(
        {"conf": 0.25, "batch": batch, "imgsz": imgsz, "save": False, "rect": True, "verbose": False, "mode": "predict"}
    )
    predictor = DetectionPredictor(args, model._backend(device, fp16))
    if not fast:
        predictor.gpu = None  # the CPU path: OpenCV letterbox, eager forward, ops NMS, synchronising timers
    return predictor


def batched(frames: list[np.ndarray], batch: int) -> InferenceSource:
    """The frames in batches of `batch` (a plain list would be one batch, as upstream runs a list)."""
    return InferenceSource(frames, batch=int(batch), list_as_one_batch=False)


def predict_ms_per_image(predictor, frames: list[np.ndarray], batch: int, calls: int) -> float:
    """Median over `calls` predict calls, each over len(frames) frames in batches of `batch`."""
    predictor(batched(frames[:batch], batch))  # warm-up: graph capture, cuDNN autotune, pinned buffers
    predictor(batched(frames, batch))
    times = []
    for _ in range(calls):
        sync(predictor.model.device)
        t0 = time.perf_counter()
        results = predictor(batched(frames, predictor.args.batch))
        sync(predictor.model.device)
        times.append((time.perf_counter() - t0) * 1e3 / len(frames))
        assert len(results) == len(frames)
    return statistics.median(times)


def pipeline_events(predictor, frames: list[np.ndarray], batch: int) -> dict[str, float]:
    """Median ms/img of each stage inside one real pipelined predict call, from CUDA events (no extra
    synchronisation): the copy stream's upload, and on the compute stream preprocess (waiting for the
    upload + letterbox), the network, NMS + its copy to the host. `busy` is their compute-stream sum:
    when it is close to e2e the GPU is the limit; a larger e2e means the host left the GPU idle."""
    uploader = predictor.gpu.state.uploader
    uploader.copy_events = []
    try:
        results = predictor(batched(frames, predictor.args.batch))
        sync(predictor.model.device)
        copies = [s.elapsed_time(e) / n for s, e, n in uploader.copy_events]
    finally:
        uploader.copy_events = None
    per_batch = [r.speed for r in results[::batch]]  # every image of a batch carries its batch's times
    out = {"upload": statistics.median(copies) if copies else float("nan")}
    for key, name in (("pre", "preprocess"), ("net", "inference"), ("post", "postprocess")):
        out[key] = statistics.median(s[name] for s in per_batch)
    out["busy"] = out["pre"] + out["net"] + out["post"]
    return out


# (gpu_pipeline.OVERLAP_LETTERBOX_FROM_BATCH, ULTRALYTICS_GPU_FUSED) per variant: the fused graph (the default
# since session 8) takes same-size batches before either letterbox placement would, so those two turn it off
LETTERBOX_VARIANTS = {"beside": (8, "0"), "graphed": (0, "0"), "fused": (8, "1")}


def compare_letterbox(
    predictor, frames: list[np.ndarray], batch: int, calls: int
) -> tuple[dict[str, list[float]], dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """e2e ms/img with the letterbox beside the previous network (eager, letterbox stream), after it
    (graphed, graph stream), and inside the fused graph, 3 alternating rounds so drift on the machine hits
    all alike; then one CUDA-event stage breakdown and one host breakdown per variant."""
    from ultralytics.engine import gpu_pipeline

    saved = gpu_pipeline.OVERLAP_LETTERBOX_FROM_BATCH, os.environ.get("ULTRALYTICS_GPU_FUSED")
    times: dict[str, list[float]] = {k: [] for k in LETTERBOX_VARIANTS}
    events, hosts = {}, {}

    def use(variant: str) -> None:
        gpu_pipeline.OVERLAP_LETTERBOX_FROM_BATCH, os.environ["ULTRALYTICS_GPU_FUSED"] = LETTERBOX_VARIANTS[variant]

    try:
        for _ in range(3):
            for name in LETTERBOX_VARIANTS:
                use(name)
                times[name].append(round(predict_ms_per_image(predictor, frames, batch, calls), 4))
        for name in LETTERBOX_VARIANTS:
            use(name)
            events[name] = {k: round(v, 4) for k, v in pipeline_events(predictor, frames, batch).items()}
            hosts[name] = {k: round(v, 4) for k, v in host_breakdown(predictor, frames).items()}
    finally:
        gpu_pipeline.OVERLAP_LETTERBOX_FROM_BATCH = saved[0]
        if saved[1] is None:
            os.environ.pop("ULTRALYTICS_GPU_FUSED", None)
        else:
            os.environ["ULTRALYTICS_GPU_FUSED"] = saved[1]
    return times, events, hosts


def host_breakdown(predictor, frames: list[np.ndarray]) -> dict[str, float]:
    """Host ms/img of each piece of one real pipelined predict call, timed with perf_counter around the
    pipeline's own methods (wrapped on this predictor only; no extra synchronisation).

    Main thread: `wait_batch` (waiting for the prefetch thread's next batch), `pre` / `net` / `nms_launch`
    (enqueueing those stages), `nms_wait` (waiting for a batch's detections on the host), `results`
    (box scaling + Results), and `other` (the rest of the call: the predictor's own loop, timers).
    Prefetch thread: `upload` (whole upload calls), of which `stage` is the host copies into pinned
    memory and `slot_wait` the wait for a free pinned buffer.
    """
    gpu = predictor.gpu
    acc: dict[str, float] = dict.fromkeys(("wait_batch", "pre", "net", "nms_launch", "nms_wait", "results"), 0.0)

    def timed(key, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                acc[key] += time.perf_counter() - t0

        return wrapper

    def timed_iter(it):
        it = iter(it)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                acc["wait_batch"] += time.perf_counter() - t0
            yield item

    originals = {k: getattr(gpu, k) for k in ("preprocess", "inference")}
    prefetch, finish_post, nms_launch, nms_finish = gpu.prefetch, gpu.finish_postprocess, gpu.nms.launch, gpu.nms.finish
    gpu.preprocess = timed("pre", originals["preprocess"])
    gpu.inference = timed("net", originals["inference"])
    gpu.prefetch = lambda batches, *a, **k: timed_iter(prefetch(batches, *a, **k))
    gpu.nms.launch = timed("nms_launch", nms_launch)
    gpu.nms.finish = timed("nms_wait", nms_finish)
    gpu.finish_postprocess = timed("results", finish_post)  # includes nms_wait; subtracted below
    uploader = gpu.state.uploader
    uploader.host_times = []
    try:
        sync(predictor.model.device)
        t0 = time.perf_counter()
        predictor(batched(frames, predictor.args.batch))
        sync(predictor.model.device)
        total = time.perf_counter() - t0
        host = uploader.host_times
    finally:
        for k in ("preprocess", "inference", "prefetch", "finish_postprocess"):
            gpu.__dict__.pop(k, None)
        gpu.nms.__dict__.pop("launch", None)
        gpu.nms.__dict__.pop("finish", None)
        uploader.host_times = None
    acc["results"] -= acc["nms_wait"]
    acc["other"] = total - sum(acc.values())
    acc["upload"] = sum(h[2] for h in host)
    acc["stage"] = sum(h[1] for h in host)
    acc["slot_wait"] = sum(h[0] for h in host)
    acc["total"] = total
    return {k: v * 1e3 / len(frames) for k, v in acc.items()}


def upload_floors(
    device: torch.device, frames: list[np.ndarray], iters: int, frames_cold: list[np.ndarray]
) -> dict[str, float]:
    """ms/img of the pieces of an upload of len(frames) frames, each alone: the DMA from pinned memory
    (CUDA events), the host copy into pinned memory (one torch.cat), the uploader end to end, and a
    plain pageable `.to(device)` per frame."""
    from ultralytics.gpu.upload import PinnedUploader

    n = len(frames)
    sources = [torch.from_numpy(f).view(-1) for f in frames]
    pinned = torch.empty(sum(t.numel() for t in sources), dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(pinned.numel(), dtype=torch.uint8, device=device)

    def wall(fn) -> float:
        fn()
        sync(device)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            sync(device)
            times.append((time.perf_counter() - t0) * 1e3 / n)
        return statistics.median(times)

    dma = []
    for _ in range(iters + 2):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dev.copy_(pinned, non_blocking=True)
        end.record()
        end.synchronize()
        dma.append(start.elapsed_time(end) / n)
    up = PinnedUploader(device)
    cold = [torch.from_numpy(f).view(-1) for f in frames_cold]
    cold_pinned = torch.empty(sum(t.numel() for t in cold), dtype=torch.uint8, pin_memory=True)
    return {
        "dma": statistics.median(dma[2:]),
        "host_copy": wall(lambda: torch.cat(sources, out=pinned)),
        "uploader": wall(lambda: up.upload(frames).wait()),
        # the same copy over len(frames_cold) distinct frames (bigger than the caches), as in the pipeline
        "host_copy_cold": wall(lambda: torch.cat(cold, out=cold_pinned)) * n / len(frames_cold),
        "pageable_to": wall(lambda: [torch.from_numpy(f).to(device, non_blocking=True) for f in frames]),
    }


def stage_breakdown(predictor, frames: list[np.ndarray], batch: int, iters: int) -> dict[str, float]:
    """Median ms/img of each GPU-pipeline stage run alone, synchronising after each (diagnostics only)."""
    from ultralytics.engine.gpu_pipeline import UploadedImages

    gpu, device = predictor.gpu, predictor.model.device
    stages: dict[str, list[float]] = {k: [] for k in ("upload", "letterbox", "network", "nms", "results")}
    for it in range(iters + 3):
        chunk = frames[(it * batch) % len(frames) :][:batch]
        if len(chunk) < batch:
            chunk = frames[:batch]
        marks = [time.perf_counter()]
        images = UploadedImages(chunk)
        images.device_frames = gpu.upload(chunk)
        images.device_frames.wait()
        sync(device)
        marks.append(time.perf_counter())
        im = predictor.preprocess(images)
        sync(device)
        marks.append(time.perf_counter())
        preds = predictor.inference(im)
        sync(device)
        marks.append(time.perf_counter())
        dets = gpu.nms(preds)
        marks.append(time.perf_counter())
        predictor.postprocess(preds, im, chunk, [""] * batch)  # NMS again + Results; minus the NMS time
        marks.append(time.perf_counter())
        if it >= 3:
            for k, (a, b) in zip(stages, zip(marks, marks[1:])):
                stages[k].append((b - a) * 1e3 / batch)
        assert dets is not None
    out = {k: statistics.median(v) for k, v in stages.items()}
    out["results"] = max(0.0, out["results"] - out["nms"])
    return out


def thread_throughput(model_path: str, device, frames, n_threads: int, shared_model: bool, seconds: float) -> float:
    """Images/s with n_threads each predicting batch-1 frames, on one shared model or one model each."""
    models = [YOLO(model_path)] * n_threads if shared_model else [YOLO(model_path) for _ in range(n_threads)]
    for m in models:
        m.predict(frames[:1], device=device, verbose=False)  # warm-up (captures the graph)
    count = [0] * n_threads
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(n_threads)

    def work(k: int) -> None:
        barrier.wait()
        while time.perf_counter() < stop:
            models[k].predict(frames[k : k + 1], device=device, verbose=False)
            count[k] += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(count) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models", nargs="+", default=["yolov8n.yaml", "yolov8s.yaml"], help=".yaml/.pt, or an exported .onnx/.engine"
    )
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fp16"], choices=["fp32", "fp16"])
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--frame", default="720x1280", help="frame size HxW the photos are resized to")
    ap.add_argument("--images", type=int, default=64, help="frames per predict call (a multiple of each batch)")
    ap.add_argument("--calls", type=int, default=5, help="timed predict calls per row (median)")
    ap.add_argument("--iters", type=int, default=30, help="timed network forwards per row (median)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the CPU-preprocessing baseline")
    ap.add_argument("--threads", type=int, default=4, help="also measure N threads (0: skip)")
    ap.add_argument("--breakdown", action="store_true", help="also time each GPU stage alone (batch 1 and 32)")
    ap.add_argument("--upload-floor", action="store_true", help="also time the pieces of a batch-32 upload alone")
    ap.add_argument(
        "--compare-letterbox",
        action="store_true",
        help="at batch >= 8 also time e2e with the letterbox beside / after the previous network / fused, alternating",
    )
    ap.add_argument("--host-breakdown", action="store_true", help="host time per piece of one pipelined call")
    ap.add_argument("--device", default="0")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--json", type=Path, help="write every row here")
    opt = ap.parse_args()

    device = select_device(opt.device)
    if device.type != "cuda":
        print("# WARNING not a CUDA device: a smoke run of the script only (no graphs, no GPU pipeline)")
    frame_hw = tuple(int(v) for v in opt.frame.lower().split("x"))
    frames = load_frames(opt.shared, opt.images, frame_hw)
    in_hw = letterbox_params(frame_hw, (opt.imgsz, opt.imgsz), auto=True).canvas_hw
    print(
        f"# {device_name(device)}, torch {torch.__version__}, frames {frame_hw}, imgsz {opt.imgsz}, network input {in_hw}"
    )

    rows = []
    header = f"{'model':<14}{'prec':<6}{'batch':>6}{'net_eager':>11}{'net_graph':>11}{'e2e':>9}{'baseline':>10}{'e2e/net':>9}"
    for model_name in opt.models:
        model = YOLO(model_name)
        for prec in opt.precisions:
            fp16 = prec == "fp16"
            backend = model._backend(device, fp16)
            cuda = device.type == "cuda"
            # exported models (.onnx, .engine) go through AutoBackend (static batches split/padded), no graph
            net_fn = backend.backend.forward if backend.pt else backend
            runner = CudaGraphRunner(net_fn, device, max_graphs=4) if cuda and backend.pt else None
            for batch in opt.batches:
                n = max(batch, opt.images // batch * batch)
                # the shape predict really feeds the network: same-size frames get upstream's minimal
                # "rect" padding (720x1280 at 640 → 384x640), so network-only is timed at that shape
                rect = backend.pt or backend.dynamic  # the predictor's rule for minimal padding
                in_hw = letterbox_params(frame_hw, (opt.imgsz, opt.imgsz), auto=rect, stride=backend.stride).canvas_hw
                if backend.imgsz and not backend.dynamic:  # a static export takes only its own size
                    in_hw = tuple(backend.imgsz)
                x = torch.rand(batch, 3, *in_hw, device=device, dtype=backend.dtype)
                with torch.no_grad():
                    net_eager = cuda_median_ms(net_fn, x, opt.iters) / batch
                    net_graph = cuda_median_ms(runner, x, opt.iters) / batch if runner is not None else float("nan")
                fast = make_predictor(model, device, fp16, batch, opt.imgsz, True)
                e2e = predict_ms_per_image(fast, frames[:n], batch, opt.calls)
                events = pipeline_events(fast, frames[:n], batch) if fast.gpu is not None and cuda else {}
                host = {}
                if opt.host_breakdown and fast.gpu is not None:
                    host["default"] = {k: round(v, 4) for k, v in host_breakdown(fast, frames[:n]).items()}
                variants, variant_events = {}, {}
                if opt.compare_letterbox and fast.gpu is not None and batch >= 8:
                    variants, variant_events, hosts = compare_letterbox(fast, frames[:n], batch, opt.calls)
                    host.update(hosts)
                base = float("nan")
                if not opt.no_baseline:
                    base = predict_ms_per_image(
                        make_predictor(model, device, fp16, batch, opt.imgsz, False),
                        frames[:n],
                        batch,
                        max(2, opt.calls // 2),
                    )
                row = dict(
                    model=Path(model_name).name,
                    precision=prec,
                    batch=batch,
                    net_eager_ms=net_eager,
                    net_graph_ms=net_graph,
                    e2e_ms=e2e,
                    baseline_ms=base,
                    e2e_over_net=e2e / (net_graph if runner is not None else net_eager),
                    images_per_call=n,
                    network_input=list(in_hw),
                    events={k: round(v, 4) for k, v in events.items()},
                    host=host,
                    variants=variants,
                    variant_events=variant_events,
                )
                rows.append(row)
                print(
                    f"{row['model']:<14}{prec:<6}{batch:>6}{net_eager:>11.3f}{net_graph:>11.3f}{e2e:>9.3f}{base:>10.3f}"
                    f"{row['e2e_over_net']:>9.2f}",
                    flush=True,
                )
            del runner
            if cuda:
                torch.cuda.empty_cache()

    floors = upload_floors(device, frames[:32], opt.iters, frames) if opt.upload_floor and device.type == "cuda" else {}

    breakdown_rows = []
    if opt.breakdown and device.type == "cuda":
        for model_name in opt.models:
            model = YOLO(model_name)
            for prec in opt.precisions:
                for batch in (1, 32):
                    pred = make_predictor(model, device, prec == "fp16", batch, opt.imgsz, True)
                    b = stage_breakdown(pred, frames, batch, opt.iters)
                    breakdown_rows.append(dict(model=model_name, precision=prec, batch=batch, **b))

    thread_rows = []
    if opt.threads > 1:
        for shared_model in (True, False):
            one = thread_throughput(opt.models[0], device, frames, 1, True, 2.0)
            many = thread_throughput(opt.models[0], device, frames, opt.threads, shared_model, 3.0)
            kind = "one shared model (lock)" if shared_model else "one model per thread"
            thread_rows.append(dict(model=opt.models[0], threads=opt.threads, kind=kind, img_s_1=one, img_s_n=many))

    print("\nms per image (lower is better); e2e/net = e2e over net_graph")
    print(header)
    for r in rows:
        print(
            f"{r['model']:<14}{r['precision']:<6}{r['batch']:>6}{r['net_eager_ms']:>11.3f}{r['net_graph_ms']:>11.3f}"
            f"{r['e2e_ms']:>9.3f}{r['baseline_ms']:>10.3f}{r['e2e_over_net']:>9.2f}"
        )
    event_keys = ("upload", "pre", "net", "post", "busy")
    if any(r["events"] for r in rows):
        print("\nstages inside the pipelined predict, CUDA events, median ms/img (upload on the copy stream;")
        print("pre = wait for the upload + letterbox; post = NMS + copy to host; busy = pre + net + post):")
        print(f"{'model':<14}{'prec':<6}{'batch':>6}{'e2e':>9}" + "".join(f"{k:>9}" for k in event_keys))
        for r in rows:
            if r["events"]:
                print(
                    f"{r['model']:<14}{r['precision']:<6}{r['batch']:>6}{r['e2e_ms']:>9.3f}"
                    + "".join(f"{r['events'][k]:>9.3f}" for k in event_keys)
                )
    host_keys = ("total", "wait_batch", "pre", "net", "nms_launch", "nms_wait", "results", "other", "upload", "stage")
    if any(r["host"] for r in rows):
        print("\nhost time inside one pipelined predict, perf_counter, ms/img (main thread: wait_batch .. other,")
        print("summing to total; prefetch thread: upload, of which stage = host copies into pinned memory):")
        print(f"{'model':<14}{'prec':<6}{'batch':>6}{'variant':>11}" + "".join(f"{k:>11}" for k in host_keys))
        for r in rows:
            for variant, h in r["host"].items():
                print(
                    f"{r['model']:<14}{r['precision']:<6}{r['batch']:>6}{variant:>11}"
                    + "".join(f"{h[k]:>11.3f}" for k in host_keys)
                )
    if any(r["variants"] for r in rows):
        print("\ne2e ms/img, letterbox beside the previous network (eager, own stream), after it (graphed) or fused,")
        print("3 alternating rounds, each the median of --calls predict calls; e2e/net_graph of the median round:")
        for r in rows:
            if r["variants"]:
                cells = [
                    f"{k} {' '.join(f'{t:.3f}' for t in v)} ({statistics.median(v) / r['net_graph_ms']:.2f}x)"
                    for k, v in r["variants"].items()
                ]
                print(f"{r['model']:<14}{r['precision']:<6}{r['batch']:>6}  " + "  |  ".join(cells))
        print("their CUDA-event stages (pre = the compute stream's wait for upload + letterbox):")
        for r in rows:
            for k, ev in r["variant_events"].items():
                print(
                    f"{r['model']:<14}{r['precision']:<6}{r['batch']:>6}{k:>9}"
                    + "".join(f"{ev[key]:>9.3f}" for key in event_keys)
                )
    if floors:
        print(f"\nupload pieces alone, {min(32, len(frames))} frames {frame_hw}, ms/img:")
        print("  " + "  ".join(f"{k} {v:.3f}" for k, v in floors.items()))
    if breakdown_rows:
        print("\nstages alone, synchronised after each (ms/img):")
        keys = ("upload", "letterbox", "network", "nms", "results")
        print(f"{'model':<14}{'prec':<6}{'batch':>6}" + "".join(f"{k:>11}" for k in keys))
        for r in breakdown_rows:
            print(f"{r['model']:<14}{r['precision']:<6}{r['batch']:>6}" + "".join(f"{r[k]:>11.3f}" for k in keys))
    for t in thread_rows:
        print(
            f"threads: {t['model']} batch 1, {t['kind']}: 1 thread {t['img_s_1']:.0f} img/s, {t['threads']} threads {t['img_s_n']:.0f} img/s"
        )
    if opt.json:
        opt.json.write_text(
            json.dumps(
                {
                    "device": device_name(device),
                    "rows": rows,
                    "threads": thread_rows,
                    "stages": breakdown_rows,
                    "upload_floors": floors,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
