"""`yolo checks tensorrt`: an acceptance run of the TensorRT path on the user's own machine.

Nothing in our CI runs real TensorRT, so this command does what the tests cannot: it exports the
bundled model through every route (ONNX parser FP32 / FP16 / INT8, dynamic shapes, the network
definition API, both engine file layouts), predicts on the bundled images, compares each engine with
the PyTorch model, exercises CUDA graphs and a second GPU when there is one, and prints one report to
paste into an issue. Without TensorRT it says what it would do and exits 0.

    python -m ultralytics.engine.tensorrt_check [--device 0] [--imgsz 320] [--keep DIR]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MODEL = ASSETS / "shapes_yolov8n.pt"


@dataclass(frozen=True)
class Route:
    name: str
    export: dict  # YOLO.export keywords
    min_matched: float  # share of the PyTorch detections the engine must find (same class, IoU >= 0.5)
    predict: dict | None = None


ROUTES = (
    Route("onnx fp32", {}, 0.99),
    Route("onnx fp16", {"half": True}, 0.95),
    Route("onnx int8", {"int8": True}, 0.70),  # two calibration images: a smoke test, not an accuracy claim
    Route("onnx fp32 dynamic", {"dynamic": True, "batch": 2}, 0.99, {"batch": 2}),
    Route("network api fp32", {"builder": "network"}, 0.99),
    Route("network api fp16", {"builder": "network", "half": True}, 0.95),
    Route("plan layout", {"engine_layout": "plan"}, 0.99),
)


@dataclass
class Outcome:
    route: str
    passed: bool
    detail: str
    export_s: float = 0.0
    predict_ms: float = 0.0


def main(argv: list[str] | None = None) -> int:
    """Run the check; 0 when every route passed (or TensorRT is absent), 1 when any failed."""
    parser = argparse.ArgumentParser(prog="yolo checks tensorrt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="0", help="CUDA device index for the engines (default 0)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--keep", type=Path, help="keep the engines in this folder instead of a temporary one")
    args = parser.parse_args(list(argv or []))

    from ultralytics.trt.loader import tensorrt_installed

    print(_versions_block(None))
    if not tensorrt_installed():
        print(_plan_without_tensorrt(args.imgsz))
        return 0
    from ultralytics.trt.device import host_memory_enabled
    from ultralytics.trt.loader import import_tensorrt

    trt = import_tensorrt()
    stand_in = host_memory_enabled()
    if not stand_in and not torch.cuda.is_available():
        print("TensorRT is installed but torch sees no CUDA GPU: nothing can run. Check the driver and torch build.")
        return 1
    device = "cpu" if stand_in else f"cuda:{int(args.device)}"
    print(_versions_block(trt))
    if stand_in:
        print("note: ULTRALYTICS_TRT_HOST_MEMORY=1 (test hook): host buffers, no CUDA graphs, no second GPU")

    with tempfile.TemporaryDirectory(prefix="yolo-checks-tensorrt-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        images = sorted(str(p) for p in ASSETS.glob("*.jpg"))
        reference = _pytorch_reference(images, args.imgsz)  # once: every route is compared with it
        outcomes = run_routes(work, device, args.imgsz, images, reference)
        if not stand_in:
            outcomes.append(_cuda_graphs(work, device, args.imgsz, images))
            outcomes.append(_second_gpu(work, args.imgsz, images, reference))
    print(_report(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


def _pytorch_reference(images: list[str], imgsz: int) -> list:
    """The bundled model's PyTorch predictions on the CPU: what every engine is compared with."""
    from ultralytics import YOLO

    return YOLO(MODEL).predict(images, imgsz=imgsz, device="cpu", verbose=False, conf=0.25)


def run_routes(work: Path, device: str, imgsz: int, images: list[str], reference: list) -> list[Outcome]:
    """Export and check every route; an exception in one route is that route's failure, not the run's."""
    outcomes = []
    for index, route in enumerate(ROUTES):
        folder = work / f"{index}_{route.name.replace(' ', '_')}"
        folder.mkdir(exist_ok=True)
        outcomes.append(
            _guarded(route.name, lambda r=route, f=folder: _check_route(r, f, images, reference, device, imgsz))
        )
    return outcomes


def _check_route(route: Route, folder: Path, images: list[str], reference, device: str, imgsz: int) -> Outcome:
    from ultralytics import YOLO

    weights = folder / MODEL.name
    shutil.copy(MODEL, weights)
    kwargs = dict(route.export)
    if kwargs.get("int8"):
        kwargs["data"] = str(ASSETS)  # an image folder is a calibration set
    start = time.perf_counter()
    engine = YOLO(weights).export(format="engine", imgsz=imgsz, device=device, verbose=False, **kwargs)
    export_s = time.perf_counter() - start
    model = YOLO(engine)
    predict_kw = {"imgsz": imgsz, "device": device, "verbose": False, "conf": 0.25, **(route.predict or {})}
    model.predict(images[:1], **predict_kw)  # warm-up: context creation and buffers
    start = time.perf_counter()
    results = model.predict(images, **predict_kw)
    predict_ms = 1000 * (time.perf_counter() - start) / len(images)
    matched, extra, worst_conf = compare(reference, results)
    passed = matched >= route.min_matched
    detail = f"matched {matched:.1%} of PyTorch's boxes (>= {route.min_matched:.0%}), {extra} extra, max |Δconf| {worst_conf:.3f}"
    return Outcome(route.name, passed, detail, export_s, predict_ms)


def _cuda_graphs(work: Path, device: str, imgsz: int, images: list[str]) -> Outcome:
    """The fp32 engine with the GPU pipeline (CUDA graphs) against the same engine without it."""

    def check() -> Outcome:
        from ultralytics import YOLO

        engine = next(work.glob("0_*/*.engine"))
        model = YOLO(engine)
        plain = model.predict(images, imgsz=imgsz, device=device, verbose=False, gpu_pipeline=False)
        for _ in range(3):  # capture, then replay
            graphed = model.predict(images, imgsz=imgsz, device=device, verbose=False, gpu_pipeline=True)
        matched, extra, worst = compare(plain, graphed)
        return Outcome(
            "cuda graphs",
            matched >= 0.99 and extra == 0,
            f"matched {matched:.1%}, {extra} extra, max |Δconf| {worst:.3f}",
        )

    return _guarded("cuda graphs", check)


def _second_gpu(work: Path, imgsz: int, images: list[str], reference: list) -> Outcome:
    if torch.cuda.device_count() < 2:
        return Outcome("second gpu", True, "skipped: one GPU")
    route = Route("second gpu", {}, 0.99)
    folder = work / "second_gpu"
    folder.mkdir(exist_ok=True)
    return _guarded("second gpu", lambda: _check_route(route, folder, images, reference, "cuda:1", imgsz))


def _guarded(name: str, run: Callable[[], Outcome]) -> Outcome:
    try:
        return run()
    except Exception as e:  # noqa: BLE001 - a failing route is reported, the others still run
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return Outcome(name, False, f"{type(e).__name__}: {first_line}")


def compare(reference, results) -> tuple[float, int, float]:
    """(share of reference boxes matched by class and IoU >= 0.5, unmatched extra boxes, max |Δconf|)."""
    total = matched = extra = 0
    worst = 0.0
    for ref, got in zip(reference, results):
        a, b = _boxes(ref), _boxes(got)
        used = np.zeros(len(b), bool)
        total += len(a)
        for box in a:
            candidates = [j for j in range(len(b)) if not used[j] and b[j, 5] == box[5]]
            if not candidates:
                continue
            ious = [_iou(box[:4], b[j, :4]) for j in candidates]
            best = int(np.argmax(ious))
            if ious[best] >= 0.5:
                used[candidates[best]] = True
                matched += 1
                worst = max(worst, abs(float(box[4]) - float(b[candidates[best], 4])))
        extra += int((~used).sum())
    return (matched / total if total else 1.0), extra, worst


def _boxes(result) -> np.ndarray:
    data = result.boxes.data
    return data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _versions_block(trt) -> str:
    import ultralytics

    if trt is None:
        lines = [
            "yolo checks tensorrt",
            f"ultralytics {ultralytics.__version__}, Python {platform.python_version()}, torch {torch.__version__}",
        ]
        return "\n".join(lines)
    from ultralytics.trt.loader import tensorrt_version

    lines = [f"TensorRT {tensorrt_version(trt)} ({getattr(trt, '__file__', '?')})"]
    if torch.cuda.is_available():
        cuda = torch.version.cuda
        for index in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(index)
            lines.append(f"GPU {index}: {p.name}, compute capability {p.major}.{p.minor}, CUDA {cuda}")
    else:
        lines.append("GPU: none visible to torch")
    return "\n".join(lines)


def _plan_without_tensorrt(imgsz: int) -> str:
    routes = "\n".join(
        f"  - {r.name}: YOLO('{MODEL.name}').export(format='engine', imgsz={imgsz}, **{r.export})" for r in ROUTES
    )
    return (
        "TensorRT is not installed, so nothing was run. With TensorRT (e.g. `pip install tensorrt-cu12`) and a CUDA "
        "GPU this command would:\n"
        f"{routes}\n"
        "  - predict the bundled images with each engine and compare the boxes with the PyTorch model's\n"
        "  - run the FP32 engine with CUDA graphs (gpu_pipeline=True) and compare with the plain run\n"
        "  - repeat the FP32 route on cuda:1 when a second GPU is present\n"
        "and print a report (versions, GPU, pass/fail with numbers, timings) to paste into an issue."
    )


def _report(outcomes: list[Outcome]) -> str:
    lines = ["", "| route | result | export s | predict ms/img | details |", "|---|---|---|---|---|"]
    for o in outcomes:
        timing = (f"{o.export_s:.1f}", f"{o.predict_ms:.1f}") if o.export_s else ("-", "-")
        lines.append(f"| {o.route} | {'PASS' if o.passed else 'FAIL'} | {timing[0]} | {timing[1]} | {o.detail} |")
    failed = [o.route for o in outcomes if not o.passed]
    lines.append("")
    lines.append(
        f"{len(outcomes) - len(failed)}/{len(outcomes)} passed" + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
