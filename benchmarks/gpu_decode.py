"""GPU decoding (`gpu_decode=True`, issue 19): accuracy against OpenCV and speed, in one process.

Sections (each prints a table and adds to the JSON written to --out):
  jpeg_accuracy   nvJPEG (torchvision) vs OpenCV on the same JPEG bytes: share of differing values, mean and
                  max absolute difference (grey levels), per set of images
  video_accuracy  NVDEC (PyNvVideoCodec) vs OpenCV on each video: frame counts, pixel differences
  decode_speed    decode alone: OpenCV on one host thread vs nvJPEG batches of 32 (ms/img); NVDEC frames/s
                  (one sequential session, the threaded reader, and 2 / 4 sessions per video)
  e2e             `predict(stream=True)` over a JPEG folder and a 720p video, batch 1 and 32, FP16, with
                  gpu_decode False/True: wall time of whole calls / images (median of --calls calls)
  val             shapes val mAP50-95 with OpenCV-decoded vs nvJPEG-decoded images
  agreement       shapes predict boxes, nvJPEG vs OpenCV decoding: images whose boxes differ, by how much

    PYTHONPATH=. python3 benchmarks/gpu_decode.py --media DIR_WITH_MP4S --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ultralytics import YOLO  # noqa: E402

RESULTS: dict = {}


def jpeg_modes(device: torch.device) -> list[tuple[str, dict[str, str]]]:
    """The GPU JPEG decodes compared: torchvision's nvJPEG as it decodes, the same with libjpeg's chroma
    rebuilt (the default without a hardware decoder), and the hardware decoder (nvImageCodec) where there is one."""
    from ultralytics.gpu.jpeg_hw import hardware_jpeg_decoder

    modes = [
        ("nvjpeg", {"ULTRALYTICS_GPU_JPEG_DECODER": "nvjpeg", "ULTRALYTICS_GPU_JPEG_CHROMA": "nvjpeg"}),
        ("fancy", {"ULTRALYTICS_GPU_JPEG_DECODER": "nvjpeg", "ULTRALYTICS_GPU_JPEG_CHROMA": "fancy"}),
    ]
    if hardware_jpeg_decoder(device) is not None:
        modes.append(("hardware", {"ULTRALYTICS_GPU_JPEG_DECODER": "auto"}))
    return modes


def clear_jpeg_mode() -> None:
    for name in ("ULTRALYTICS_GPU_JPEG_DECODER", "ULTRALYTICS_GPU_JPEG_CHROMA"):
        os.environ.pop(name, None)


def section(name: str):
    """Run a section, record its error instead of stopping the whole benchmark."""

    def wrap(fn):
        def run(*a, **k):
            t0 = time.perf_counter()
            print(f"\n## {name}", flush=True)
            try:
                RESULTS[name] = fn(*a, **k)
            except Exception as e:
                traceback.print_exc()
                RESULTS[name] = {"error": f"{type(e).__name__}: {e}"}
            print(f"({name}: {time.perf_counter() - t0:.1f} s)", flush=True)

        return run

    return wrap


def diff_stats(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {
        "differ": float((d > 0).mean()),
        "over8": float((d > 8).mean()),
        "mean": float(d.mean()),
        "p999": float(np.percentile(d, 99.9)),
        "max": int(d.max()),
    }


def make_jpegs(shared: Path, folder: Path, n: int, hw: tuple[int, int] = (720, 1280), quality: int = 90) -> list[Path]:
    """n distinct 720p JPEGs from the fixture photos (different crops), written to folder."""
    photos = [cv2.imread(str(p)) for p in sorted((shared / "fixtures" / "images").glob("*.png"))]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        big = cv2.resize(photos[i % len(photos)], (hw[1] + 64, hw[0] + 64))
        dy, dx = (i * 7) % 64, (i * 13) % 64
        path = folder / f"{i:04d}.jpg"
        cv2.imwrite(str(path), big[dy : dy + hw[0], dx : dx + hw[1]], [cv2.IMWRITE_JPEG_QUALITY, quality])
        paths.append(path)
    return paths


@section("jpeg_accuracy")
def jpeg_accuracy(sets: dict[str, list[Path]], device: torch.device) -> dict:
    from ultralytics.gpu.decode import decode_jpegs

    out = {}
    for (name, paths), (chroma, env) in [(item, mode) for item in sets.items() for mode in jpeg_modes(device)]:
        clear_jpeg_mode()
        os.environ.update(env)
        name = f"{name} decode={chroma}"
        datas = [p.read_bytes() for p in paths]
        gpu = decode_jpegs(datas, device)
        stats = [
            diff_stats(g.cpu().numpy(), cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR))
            for g, d in zip(gpu, datas)
        ]
        out[name] = {
            "images": len(paths),
            "differ": statistics.mean(s["differ"] for s in stats),
            "mean": statistics.mean(s["mean"] for s in stats),
            "mean_worst_image": max(s["mean"] for s in stats),
            "over8_worst_image": max(s["over8"] for s in stats),
            "p999_worst_image": max(s["p999"] for s in stats),
            "max": max(s["max"] for s in stats),
        }
        print(f"{name:>28}: {out[name]}")
    clear_jpeg_mode()
    return out


@section("video_accuracy")
def video_accuracy(videos: list[Path], device: torch.device) -> dict:
    from ultralytics.gpu.video_decode import NvdecFrameReader, video_info

    out = {}
    stream = torch.cuda.Stream(device)
    for video in videos:
        cap = cv2.VideoCapture(str(video))
        cpu = []
        while True:
            ok, im = cap.read()
            if not ok:
                break
            cpu.append(im)
        reader = NvdecFrameReader(video, device, stream)
        gpu = []
        while (block := reader.read(32)) is not None:
            stream.synchronize()
            gpu += list(block.cpu().numpy())
        stats = [diff_stats(g, c) for g, c in zip(gpu, cpu)]
        count, fps = video_info(video)
        out[video.name] = {
            "opencv_frames": len(cpu),
            "opencv_count_prop": count,
            "fps": fps,
            "nvdec_frames": len(gpu),
            "differ": statistics.mean(s["differ"] for s in stats) if stats else None,
            "mean": statistics.mean(s["mean"] for s in stats) if stats else None,
            "mean_worst_frame": max(s["mean"] for s in stats) if stats else None,
            "p999_worst_frame": max(s["p999"] for s in stats) if stats else None,
            "max": max(s["max"] for s in stats) if stats else None,
        }
        print(f"{video.name}: {out[video.name]}")
    return out


@section("decode_speed")
def decode_speed(jpegs: list[Path], videos: list[Path], device: torch.device) -> dict:
    from ultralytics.gpu.decode import decode_jpegs
    from ultralytics.gpu.video_decode import NvdecFrameReader, open_nvdec_reader

    datas = [p.read_bytes() for p in jpegs]
    t0 = time.perf_counter()
    for d in datas:
        cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR)
    cpu_ms = (time.perf_counter() - t0) * 1e3 / len(datas)
    out = {"opencv_jpeg_ms_per_img": cpu_ms}
    for batch in (1, 32):
        decode_jpegs(datas[:batch], device)
        torch.cuda.synchronize()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(0, len(datas), batch):
                decode_jpegs(datas[i : i + batch], device)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3 / len(datas))
        out[f"nvjpeg_b{batch}_ms_per_img"] = statistics.median(times)
    stream = torch.cuda.Stream(device)
    for video in videos:
        for kind in ("simple", "threaded"):
            os.environ["ULTRALYTICS_NVDEC_READER"] = kind
            for batch in (1, 32):
                reader = NvdecFrameReader(video, device, stream)
                n, t0 = 0, time.perf_counter()
                while (block := reader.read(batch)) is not None:
                    n += block.shape[0]
                stream.synchronize()
                reader.close()
                out[f"nvdec_{kind}_{video.stem}_b{batch}_fps"] = n / (time.perf_counter() - t0)
        os.environ.pop("ULTRALYTICS_NVDEC_READER")
        for sessions in (2, 4):  # gpu/segmented_decode.py; the timing includes opening the sessions
            n, t0 = 0, time.perf_counter()
            reader = open_nvdec_reader(video, device, stream, sessions)
            while (block := reader.read(32)) is not None:
                n += block.shape[0]
            stream.synchronize()
            reader.close()
            out[f"nvdec_sessions{sessions}_{video.stem}_b32_fps"] = n / (time.perf_counter() - t0)
        cap, n, t0 = cv2.VideoCapture(str(video)), 0, time.perf_counter()
        while cap.read()[0]:
            n += 1
        out[f"opencv_{video.stem}_fps"] = n / (time.perf_counter() - t0)
    for k, v in out.items():
        print(f"{k:>36}: {v:.3f}")
    return out


@section("e2e")
def e2e(model_cfg: str, folder: Path, video: Path, device: torch.device, calls: int, batches: list[int]) -> dict:
    model = YOLO(model_cfg)
    n_images = len(list(folder.glob("*.jpg")))
    n_frames = int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
    rows = {}
    cases = [("jpeg_folder", str(folder), n_images, None), ("video_720p_h264", str(video), n_frames, None)]
    cases.append(("video_720p_h264 threaded", str(video), n_frames, "threaded"))
    cases.append(("video_720p_h264 sessions=1", str(video), n_frames, "sessions1"))
    cases.append(("jpeg_folder decode=nvjpeg", str(folder), n_images, "nvjpeg"))
    for name, source, n, reader in cases:
        if reader == "threaded":
            os.environ["ULTRALYTICS_NVDEC_READER"] = reader
        if reader == "nvjpeg":  # torchvision's decode with its own chroma (the default: hardware, else rebuilt)
            os.environ.update({"ULTRALYTICS_GPU_JPEG_DECODER": "nvjpeg", "ULTRALYTICS_GPU_JPEG_CHROMA": "nvjpeg"})
        if reader == "sessions1":  # the default is several NVDEC sessions per video; this is one
            os.environ["ULTRALYTICS_NVDEC_SESSIONS"] = "1"
        for batch in batches:
            for gpu_decode in (False, True) if not reader else (True,):
                kw = dict(device=device, half=True, imgsz=640, batch=batch, gpu_decode=gpu_decode, verbose=False)
                times = []
                for k in range(calls + 1):  # the first call warms up (graphs, nvJPEG/NVDEC sessions)
                    t0 = time.perf_counter()
                    seen = sum(1 for _ in model.predict(source, stream=True, **kw))
                    torch.cuda.synchronize()
                    if k:
                        times.append((time.perf_counter() - t0) * 1e3 / seen)
                assert seen == n, (seen, n)
                key = f"{name} b{batch} gpu_decode={gpu_decode}"
                rows[key] = statistics.median(times)
                print(f"{key:>40}: {rows[key]:.3f} ms/img ({1e3 / rows[key]:.0f} img/s, {n} per call)", flush=True)
        os.environ.pop("ULTRALYTICS_NVDEC_READER", None)
        clear_jpeg_mode()
        os.environ.pop("ULTRALYTICS_NVDEC_SESSIONS", None)
    return rows


def _gpu_imread(device: torch.device):
    from ultralytics.data.loaders import imread
    from ultralytics.gpu.decode import decode_jpegs

    def imread_gpu(path):
        data = Path(path).read_bytes()
        (frame,) = decode_jpegs([data], device)
        return frame.cpu().numpy() if frame is not None else imread(path)

    return imread_gpu


@section("val")
def val(shapes_pt: Path, shapes_yaml: Path, device: torch.device) -> dict:
    import ultralytics.engine.validator as validator

    out = {}
    original = validator.imread
    readers = [("opencv", original, {})] + [(name, _gpu_imread(device), env) for name, env in jpeg_modes(device)]
    for name, reader, env in readers:
        validator.imread = reader
        clear_jpeg_mode()
        os.environ.update(env)
        try:
            for half in (False, True):
                m = YOLO(str(shapes_pt)).val(data=str(shapes_yaml), imgsz=320, device=device, half=half, verbose=False)
                out[f"{name} {'fp16' if half else 'fp32'}"] = {
                    "map50_95": float(m.box.map),
                    "map50": float(m.box.map50),
                }
        finally:
            validator.imread = original
            clear_jpeg_mode()
    for k, v in out.items():
        print(f"{k:>12}: {v}")
    for prec in ("fp32", "fp16"):
        for name in [r[0] for r in readers[1:]]:
            out[f"delta {name} {prec}"] = out[f"{name} {prec}"]["map50_95"] - out[f"opencv {prec}"]["map50_95"]
            print(f"delta mAP50-95 {name} {prec}: {out[f'delta {name} {prec}']:+.5f}")
    return out


def match_boxes(a: np.ndarray, b: np.ndarray, iou_min: float = 0.5) -> tuple[list[tuple[int, int]], list[float]]:
    """Greedy same-class IoU matching of two (n, 6) detection sets; (pairs, confidences of the unmatched)."""
    pairs, used = [], set()
    for i in np.argsort(-a[:, 4]):
        best, best_iou = -1, iou_min
        for j in range(len(b)):
            if j in used or b[j, 5] != a[i, 5]:
                continue
            x1, y1 = max(a[i, 0], b[j, 0]), max(a[i, 1], b[j, 1])
            x2, y2 = min(a[i, 2], b[j, 2]), min(a[i, 3], b[j, 3])
            inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
            union = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1]) + (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1]) - inter
            if union > 0 and inter / union > best_iou:
                best, best_iou = j, inter / union
        if best >= 0:
            used.add(best)
            pairs.append((int(i), best))
    lone = [float(a[i, 4]) for i in set(range(len(a))) - {p[0] for p in pairs}]
    lone += [float(b[j, 4]) for j in set(range(len(b))) - used]
    return pairs, lone


@section("agreement")
def agreement(shapes_pt: Path, images: list[Path], device: torch.device) -> dict:
    model = YOLO(str(shapes_pt))
    out = {}
    for imgsz, (chroma, env) in [(size, mode) for size in (320, 640) for mode in jpeg_modes(device)]:
        clear_jpeg_mode()
        os.environ.update(env)
        kw = dict(device=device, imgsz=imgsz, batch=16, verbose=False)
        cpu = model.predict([str(p) for p in images], **kw)
        gpu = model.predict([str(p) for p in images], gpu_decode=True, **kw)
        differ, moved, dconf, unmatched, unmatched_conf = 0, 0.0, 0.0, 0, 0.0
        for a, b in zip(cpu, gpu):
            da, db = a.boxes.data.numpy(), b.boxes.data.numpy()
            if da.shape == db.shape and np.array_equal(da, db):
                continue
            differ += 1
            pairs, lone = match_boxes(da, db)
            for i, j in pairs:
                moved = max(moved, float(np.abs(da[i, :4] - db[j, :4]).max()))
                dconf = max(dconf, float(abs(da[i, 4] - db[j, 4])))
            unmatched += len(lone)
            unmatched_conf = max([unmatched_conf, *lone])
        counts = {"cpu": sum(len(r.boxes) for r in cpu), "gpu": sum(len(r.boxes) for r in gpu)}
        out[f"{imgsz} chroma={chroma}"] = {
            "images": len(images),
            "images_differ": differ,
            "boxes": counts,
            "matched_max_px": moved,
            "matched_max_conf": dconf,
            "unmatched": unmatched,
            "unmatched_max_conf": unmatched_conf,
        }
        print(f"imgsz {imgsz} chroma={chroma}: {out[f'{imgsz} chroma={chroma}']}")
    clear_jpeg_mode()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, required=True, help="folder with the 720p .mp4 test videos")
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("ULTRALYTICS_SHARED", REPO.parent / "shared")))
    ap.add_argument("--model", default="yolov8n.yaml")
    ap.add_argument("--images", type=int, default=256, help="720p JPEGs in the e2e folder")
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument(
        "--sections", nargs="+", default=["jpeg_accuracy", "video_accuracy", "decode_speed", "e2e", "val", "agreement"]
    )
    ap.add_argument("--out", type=Path, default=Path("gpu_decode.json"))
    args = ap.parse_args()
    device = torch.device("cuda:0")
    RESULTS["device"] = torch.cuda.get_device_name(device)
    RESULTS["versions"] = {"torch": torch.__version__, "cv2": cv2.__version__}
    try:
        import torchvision

        RESULTS["versions"]["torchvision"] = torchvision.__version__
        import PyNvVideoCodec

        RESULTS["versions"]["PyNvVideoCodec"] = PyNvVideoCodec.__version__
    except Exception as e:
        RESULTS["versions"]["import_error"] = str(e)
    print(RESULTS)
    shapes = args.shared / "fixtures" / "shapes"
    val_images = sorted((shapes / "val" / "images").glob("*.jpg"))
    videos = sorted(args.media.glob("*.mp4"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "jpegs720"
        jpegs = make_jpegs(args.shared, folder, args.images)
        if "jpeg_accuracy" in args.sections:
            jpeg_accuracy({"shapes_val": val_images, "720p_q90": jpegs[:32]}, device)
        if "video_accuracy" in args.sections:
            video_accuracy(videos, device)
        if "decode_speed" in args.sections:
            decode_speed(jpegs[:128], videos, device)
        if "e2e" in args.sections:
            e2e(args.model, folder, args.media / "pan720_h264.mp4", device, args.calls, args.batches)
    shapes_pt = args.shared / "fixtures" / "models" / "shapes_yolov8n.pt"
    if "val" in args.sections:
        val(shapes_pt, shapes / "shapes.yaml", device)
    if "agreement" in args.sections:
        agreement(shapes_pt, val_images, device)
    args.out.write_text(json.dumps(RESULTS, indent=1, default=str))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
