"""Issue 2's GPU check: upstream parity on CUDA, FP32 (same bar as the CPU tests) and FP16 (2 px, same classes).

Run on a CUDA machine from the repo root: `PYTHONPATH=. python3 scripts/gpu_parity.py`.
Prints one line per (imgsz, precision) and a raw-output check on the reference input tensors.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from tests.conftest import MODELS, REFERENCE, SHAPES
from tests.predict.parity import compare_image, load_reference
from ultralytics import YOLO


def parity(model: YOLO, imgsz: int, half: bool, gpu_pipeline: bool) -> tuple[int, int, int]:
    ref = load_reference(REFERENCE / f"shapes_predict_{imgsz}.json")
    names = sorted(ref["images"])
    # the references were made one image at a time: a folder source runs them so (a list is one batch)
    assert sorted(p.name for p in (SHAPES / "val" / "images").glob("*.jpg")) == names
    results = model.predict(
        SHAPES / "val" / "images",
        imgsz=imgsz,
        conf=ref["conf"],
        iou=ref["iou"],
        device=0,
        half=half,
        gpu_pipeline=gpu_pipeline,
        verbose=False,
    )
    bad, boxes = 0, 0
    for name, r in zip(names, results):
        b = r.boxes.cpu()
        boxes += len(b)
        problems = compare_image(
            ref["images"][name],
            b.xyxy.numpy(),
            b.conf.numpy(),
            b.cls.numpy().astype(int),
            px_tol=2.0 if half else 0.5,
            conf_tol=None if half else 1e-3,
        )
        if problems:
            bad += 1
            if "-v" in sys.argv:
                print(f"  {imgsz} {'fp16' if half else 'fp32'} {name}: {problems}")
    return len(names), bad, boxes


def raw_outputs(model: YOLO) -> list[tuple[str, float]]:
    out = []
    net = model.model.to("cuda").float()
    for f in ("shapes_raw_320.npz", "shapes_raw_640.npz"):
        z = np.load(REFERENCE / f)
        for k in range(4):
            x = torch.from_numpy(z[f"input_{k}"]).cuda()
            with torch.no_grad():
                y = net(x).float().cpu().numpy()
            ref = z[f"output_{k}"]  # upstream's raw head output on CPU FP32
            out.append((f"{f}:{k}", float(np.linalg.norm(y - ref) / np.linalg.norm(ref))))
    return out


def main() -> int:
    if not torch.cuda.is_available():
        print("CUDA is not available: nothing to check")
        return 1
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    if "--no-tf32" in sys.argv:  # cuDNN's default TF32 convolutions add ~1e-4 relative error to FP32
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    print(f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}")
    model = YOLO(MODELS / "shapes_yolov8n.pt")
    ok = True
    print(f"{'preprocess':>10} {'imgsz':>5} {'prec':>5} {'images':>6} {'differ':>6} {'boxes':>6}")
    for gpu_pipeline in (False, True):
        for imgsz in (320, 640):
            for half in (False, True):
                n, bad, boxes = parity(model, imgsz, half, gpu_pipeline)
                if not gpu_pipeline:  # the bar applies to upstream's CPU letterbox; the GPU letterbox is reported
                    ok &= bad == 0
                where = "gpu" if gpu_pipeline else "cpu"
                print(f"{where:>10} {imgsz:>5} {'fp16' if half else 'fp32':>5} {n:>6} {bad:>6} {boxes:>6}")
    for name, rel in raw_outputs(YOLO(MODELS / "shapes_yolov8n.pt")):
        ok &= rel < 1e-3
        print(f"raw output {name}: relative error {rel:.2e}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
