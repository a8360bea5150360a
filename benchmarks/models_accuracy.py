"""YOLO11 / YOLO26 accuracy per route and precision on the shapes fixture (the table in docs/models.md).

Run from the repository root (CPU, PyTorch + ONNX Runtime; several minutes on 2 cores):
    python3 benchmarks/models_accuracy.py [--families yolo11 yolo26] [--imgsz 320]
Every row is `YOLO(<file>).val(data=shapes.yaml, imgsz=320)` on shapes/val (100 images); ONNX files are
made with `YOLO(<pt>).export(format="onnx", ...)`, INT8 calibrated on shapes/calib (split=train).
Upstream's own numbers (../shared/fixtures/reference/shapes_<family>n_val_320.json) head the table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import MODELS, REFERENCE, SHAPES  # noqa: E402

# route name -> (export kwargs or None for the .pt itself, val kwargs, families it applies to)
ROUTES = {
    "PyTorch (.pt)": (None, {}, ("yolo11", "yolo26")),
    "PyTorch (.pt) nms=False": (None, {"nms": False}, ("yolo26",)),
    "ONNX FP32": ({}, {}, ("yolo11", "yolo26")),
    "ONNX FP16": ({"half": True}, {}, ("yolo11", "yolo26")),
    "ONNX FP32 dynamic": ({"dynamic": True}, {}, ("yolo11", "yolo26")),
    "ONNX INT8 Q/DQ": ({"int8": True, "split": "train"}, {}, ("yolo11", "yolo26")),
    "ONNX FP32 end2end": ({"nms": False}, {}, ("yolo26",)),
    "ONNX FP16 end2end": ({"nms": False, "half": True}, {}, ("yolo26",)),
    "ONNX INT8 end2end": ({"nms": False, "int8": True, "split": "train"}, {}, ("yolo26",)),
}


def main() -> None:
    from ultralytics import YOLO

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=["yolo11", "yolo26"], choices=["yolo11", "yolo26"])
    parser.add_argument("--routes", nargs="+", default=list(ROUTES), choices=list(ROUTES))
    parser.add_argument("--imgsz", type=int, default=320)
    args = parser.parse_args()
    data = str(SHAPES / "shapes.yaml")
    print("| model | route | mAP50-95 | mAP50 | vs upstream .pt mAP50-95 |")
    print("|---|---|---|---|---|")
    for family in args.families:
        ref = json.loads((REFERENCE / f"shapes_{family}n_val_{args.imgsz}.json").read_text())
        print(f"| {family}n | upstream 8.4.190 .pt (reference) | {ref['mAP50-95']:.4f} | {ref['mAP50']:.4f} | 0 |")
        with tempfile.TemporaryDirectory() as tmp:
            for route in args.routes:
                export_kw, val_kw, families = ROUTES[route]
                if family not in families:
                    continue
                t0 = time.time()
                pt = Path(tmp) / f"{family}_{len(list(Path(tmp).iterdir()))}.pt"
                shutil.copy(MODELS / f"shapes_{family}n.pt", pt)
                try:
                    weights = (
                        pt
                        if export_kw is None
                        else YOLO(pt).export(format="onnx", imgsz=args.imgsz, data=data, **export_kw)
                    )
                    m = YOLO(weights).val(data=data, imgsz=args.imgsz, device="cpu", verbose=False, **val_kw).box
                    delta = m.map - ref["mAP50-95"]
                    print(f"| {family}n | {route} | {m.map:.4f} | {m.map50:.4f} | {delta:+.4f} |", flush=True)
                except Exception as e:  # report and go on: one broken route must not hide the others
                    print(f"| {family}n | {route} | failed: {type(e).__name__}: {str(e)[:120]} | | |", flush=True)
                print(f"  ({route}: {time.time() - t0:.0f}s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
