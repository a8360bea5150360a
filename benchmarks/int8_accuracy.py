"""FP32 / INT8 Q/DQ accuracy on the shapes fixture, per calibration method and head policy (docs/int8.md).

Run from the repository root (CPU, ONNX Runtime; a few minutes on 2 cores):
    python3 benchmarks/int8_accuracy.py [--methods minmax percentile entropy] [--fraction 1.0]
    python3 benchmarks/int8_accuracy.py --precisions   # FP32 / FP16 / INT8 exports of the .pt, both evaluators
    python3 benchmarks/int8_accuracy.py --methods percentile --also other.onnx   # score other Q/DQ files too
    python3 benchmarks/int8_accuracy.py --placement modelopt.onnx   # our Q/DQ placement vs another, per node
Calibrates on shapes/calib (split=train), evaluates mAP with pycocotools on shapes/val at imgsz 320.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import MODELS, SHAPES  # noqa: E402
from tests.int8.evaluate import evaluate_onnx  # noqa: E402
from ultralytics.export.calibration import CalibrationSet  # noqa: E402
from ultralytics.export.quantize import METHODS, quantize_onnx  # noqa: E402

HEAD_POLICIES = {"head in float": "auto", "all Conv INT8": []}
PRECISIONS = {"FP32": {}, "FP16": {"half": True}, "INT8": {"int8": True, "split": "train"}}


def precision_table(imgsz: int) -> None:
    """Export the .pt at each precision through YOLO.export and score it with pycocotools and YOLO.val."""
    from ultralytics import YOLO

    data, val = SHAPES / "shapes.yaml", SHAPES / "val" / "images"
    print("| model | mAP50-95 (pycocotools) | mAP50-95 (project val) | mAP50 (project val) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in PRECISIONS.items():
            pt = Path(tmp) / f"shapes_{name.lower()}.pt"
            shutil.copy(MODELS / "shapes_yolov8n.pt", pt)
            onnx_file = YOLO(pt).export(format="onnx", imgsz=imgsz, data=str(data), **kw)
            ours = evaluate_onnx(onnx_file, val, imgsz)
            metrics = YOLO(onnx_file).val(data=str(data), imgsz=imgsz, batch=1, verbose=False)
            print(f"| {name} | {ours['mAP50-95']:.4f} | {metrics.box.map:.4f} | {metrics.box.map50:.4f} |")


def qdq_placement(onnx_file: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Node name → (op type, indices of its inputs that come from a DequantizeLinear)."""
    import onnx

    model = onnx.load(str(onnx_file))
    producers = {out: node for node in model.graph.node for out in node.output}
    placement = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        quantized = tuple(
            i for i, name in enumerate(node.input) if getattr(producers.get(name), "op_type", "") == "DequantizeLinear"
        )
        if quantized:
            placement[node.name] = (node.op_type, quantized)
    return placement


def placement_table(ours: Path, theirs: Path) -> None:
    """Per op type: nodes with Q/DQ inputs in each file; then every node where the two differ."""
    a, b = qdq_placement(ours), qdq_placement(theirs)
    ops = sorted({op for op, _ in (*a.values(), *b.values())})
    print(f"| op | nodes with Q/DQ inputs: ours | {theirs.name} | same inputs quantized |")
    print("|---|---|---|---|")
    for op in ops:
        mine = {n for n, (o, _) in a.items() if o == op}
        other = {n for n, (o, _) in b.items() if o == op}
        same = sum(1 for n in mine & other if a[n] == b[n])
        print(f"| {op} | {len(mine)} | {len(other)} | {same} |")
    differing = sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))
    print(f"\n{len(differing)} node(s) differ:")
    for name in differing:
        print(f"- `{name}`: ours {a.get(name, '-')}, theirs {b.get(name, '-')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODELS / "shapes_yolov8n_upstream.onnx")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--precisions", action="store_true", help="FP32/FP16/INT8 table through YOLO.export")
    parser.add_argument("--also", nargs="*", type=Path, default=[], help="other (e.g. Model Optimizer) ONNX to score")
    parser.add_argument("--placement", type=Path, help="compare our Q/DQ placement with this ONNX's, node by node")
    args = parser.parse_args()
    if args.precisions:
        return precision_table(args.imgsz)

    val = SHAPES / "val" / "images"
    calib = CalibrationSet(SHAPES / "shapes.yaml", split="train", imgsz=args.imgsz, batch=8, fraction=args.fraction)
    fp32 = evaluate_onnx(args.model, val, args.imgsz)
    rows = [("FP32", "-", fp32, 0.0)]
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            for policy, keep in HEAD_POLICIES.items():
                start = time.perf_counter()
                out = quantize_onnx(args.model, Path(tmp) / f"{method}.onnx", calib, method=method, keep_fp_nodes=keep)
                seconds = time.perf_counter() - start
                rows.append((f"INT8 {method}", policy, evaluate_onnx(out, val, args.imgsz), seconds))
                if args.placement is not None and method == args.methods[0] and keep == "auto":
                    print(f"\nQ/DQ placement: ours (INT8 {method}, head in float) vs {args.placement}\n")
                    placement_table(out, args.placement)
        for other in args.also:
            rows.append((other.name, "as given", evaluate_onnx(other, val, args.imgsz), 0.0))
    print(f"\n{len(calib)} calibration images, imgsz {args.imgsz}, mAP by pycocotools on {val}\n")
    print("| model | head | mAP50-95 | Δ vs FP32 (points) | mAP50 | quantize s |")
    print("|---|---|---|---|---|---|")
    for name, policy, result, seconds in rows:
        delta = 100 * (result["mAP50-95"] - fp32["mAP50-95"])
        print(
            f"| {name} | {policy} | {result['mAP50-95']:.4f} | {delta:+.2f} | {result['mAP50']:.4f} | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
