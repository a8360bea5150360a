"""Made the list-source reference once, with upstream Ultralytics 8.4.190 (never run by the tests):

    YOLO_OFFLINE=1 /work/upstream-venv/bin/python tests/predict/reference/make_list_reference.py \
        ../shared/fixtures tests/predict/reference/shapes_list_predict.json

Upstream runs `predict([paths...])` as ONE batch (a list becomes in-memory images), so frames of
different sizes share one square letterbox; the per-image references in shared/ were made one image
at a time and do not cover that.
"""

import json
import sys
from pathlib import Path

from ultralytics import YOLO

fixtures, out = Path(sys.argv[1]), Path(sys.argv[2])
model = YOLO(str(fixtures / "models" / "shapes_yolov8n.pt"))
paths = sorted(str(p) for p in (fixtures / "shapes" / "val" / "images").glob("*.jpg"))
ref = {"model": "shapes_yolov8n.pt", "upstream": "ultralytics 8.4.190", "conf": 0.25, "iou": 0.7, "runs": {}}
for imgsz in (320, 640):
    results = model.predict(paths, imgsz=imgsz, device="cpu", verbose=False)
    ref["runs"][str(imgsz)] = {
        Path(p).name: {
            "orig_shape": list(r.orig_shape),
            "xyxy": [[round(v, 4) for v in b] for b in r.boxes.xyxy.tolist()],
            "conf": [round(v, 6) for v in r.boxes.conf.tolist()],
            "cls": [int(c) for c in r.boxes.cls.tolist()],
        }
        for p, r in zip(paths, results)
    }
out.write_text(json.dumps(ref, separators=(",", ":")))
print(out, out.stat().st_size, "bytes")
