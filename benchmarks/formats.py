"""Print the accuracy/speed table of every format this machine can run, for one model and dataset.

    python benchmarks/formats.py --model path/to/model.pt --data path/to/data.yaml --imgsz 320 --device 0

Defaults: the shapes model and dataset from ../shared/fixtures (the table in docs/validation.md).
The table is printed and written to <project>/benchmark/benchmark.{csv,json}.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ultralytics.engine.benchmarks import PRECISIONS, format_table, run_benchmark  # noqa: E402
from ultralytics.utils import LOGGER  # noqa: E402

SHARED = Path(os.environ.get("ULTRALYTICS_SHARED", REPO.parent / "shared"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHARED / "fixtures/models/shapes_yolov8n.pt"))
    parser.add_argument("--data", default=str(SHARED / "fixtures/shapes/shapes.yaml"))
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--device", default=None, help="cpu, 0, cuda:0 (default: GPU 0 when there is one)")
    parser.add_argument("--formats", nargs="+", default=None, help="pt onnx engine (default: all)")
    parser.add_argument("--precisions", nargs="+", type=int, default=list(PRECISIONS), help="32 16 8")
    parser.add_argument("--project", default="runs/benchmarks")
    parser.add_argument("--verbose", action="store_true", help="show every export and val log")
    a = parser.parse_args(argv)
    rows = run_benchmark(
        a.model,
        data=a.data,
        imgsz=a.imgsz,
        device=a.device,
        formats=a.formats,
        precisions=a.precisions,
        project=a.project,
        verbose=a.verbose,
    )
    if not LOGGER.isEnabledFor(logging.INFO):  # run_benchmark already logged it otherwise
        print(format_table(rows))


if __name__ == "__main__":
    main()
