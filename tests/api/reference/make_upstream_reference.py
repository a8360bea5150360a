"""Records upstream Ultralytics 8.4.190's observable API outputs for tests/api (CI cannot run the oracle).

Run with the oracle's interpreter, on copies so nothing is written into ../shared:
    cp -r ../shared/fixtures/shapes /tmp/shapes_ref && cp ../shared/fixtures/models/shapes_yolov8n.pt /tmp/shapes_ref/
    /work/upstream-venv/bin/python tests/api/reference/make_upstream_reference.py /tmp/shapes_ref ../shared/fixtures/models
Writes upstream_api.json and upstream_curves.npz next to this file.
"""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from ultralytics import YOLO
from ultralytics.engine.results import Results

root = Path(sys.argv[1])
here = Path(__file__).parent
model = YOLO(str(root / "shapes_yolov8n.pt"))
out: dict = {"overrides": {k: v for k, v in model.overrides.items() if k != "model" and k != "data"}}
image = root / "val" / "images" / "00000.jpg"
events: list[str] = []
for event in model.callbacks:
    model.add_callback(event, lambda *_a, e=event: events.append(e))
r = model.predict(str(image), imgsz=320, verbose=False)[0]
out["predict_events"] = list(events)
out["boxes_data"] = r.boxes.data.tolist()
out["str_keys"] = [line.split(":")[0] for line in str(r).splitlines()[2:] if line and not line.startswith(" ")]
out["boxes_str_keys"] = [line.split(":")[0] for line in str(r.boxes).splitlines()[2:] if line and line[0].isalpha()]
out["str_first_line"] = str(r).splitlines()[0]
out["verbose"] = r.verbose()
out["to_json"] = r.to_json()
out["to_json_normalized_3"] = r.to_json(normalize=True, decimals=3)
out["to_csv"] = r.to_csv()
empty = r.new()
out["empty"] = {"verbose": empty.verbose(), "to_json": empty.to_json(), "to_csv": empty.to_csv()}
cv2.imwrite(str(here / "upstream_plot_00000.png"), r.plot())
# a box whose label would pass the right edge
edge = Results(r.orig_img, path=str(image), names=r.names, boxes=torch.tensor([[290.0, 2.0, 319.0, 40.0, 0.9, 3.0]]))
cv2.imwrite(str(here / "upstream_plot_right_edge.png"), edge.plot())  # PNG: lossless

crops = r.save_crop(root / "crops")
out["crop_files"] = sorted(str(p.relative_to(root / "crops")) for p in (root / "crops").rglob("*.jpg"))
out["crop_shapes"] = {
    str(p.relative_to(root / "crops")): list(cv2.imread(str(p)).shape) for p in (root / "crops").rglob("*.jpg")
}
r.save_crop(root / "crops")  # a second time: new names, nothing overwritten
out["crop_files_twice"] = sorted(str(p.relative_to(root / "crops")) for p in (root / "crops").rglob("*.jpg"))

events.clear()
metrics = model.val(data=str(root / "shapes.yaml"), imgsz=320, batch=16, save_json=True, plots=True, verbose=False)
out["val_events"] = list(events)
out["fitness"] = float(metrics.fitness)
out["maps"] = [float(v) for v in metrics.box.maps]
out["map75"] = float(metrics.box.map75)
out["results_dict"] = {k: float(v) for k, v in metrics.results_dict.items()}
out["metrics_to_csv"] = metrics.to_csv()
out["metrics_to_json"] = metrics.to_json()
out["curves"] = list(metrics.curves)
out["curves_labels"] = [[c[2], c[3]] for c in metrics.curves_results]
out["confusion_matrix"] = metrics.confusion_matrix.matrix.astype(int).tolist()
out["save_dir_files"] = sorted(p.name for p in Path(metrics.save_dir).iterdir())
predictions = json.loads((Path(metrics.save_dir) / "predictions.json").read_text())
out["category_ids"] = sorted({p["category_id"] for p in predictions})
out["speed_keys"] = list(metrics.speed)
np.savez_compressed(
    here / "upstream_curves.npz",
    **{f"y{i}": np.asarray(c[1], dtype=np.float64) for i, c in enumerate(metrics.curves_results)},
    x=np.asarray(metrics.curves_results[0][0]),
)
# the shared fixtures' other checkpoints (read only here, nothing written next to them)
models = Path(sys.argv[2]) if len(sys.argv) > 2 else None
if models is not None:
    out["overrides_by_checkpoint"] = {
        name: {k: v for k, v in YOLO(str(models / name)).overrides.items() if k != "model"}
        for name in ("shapes_yolov8n.pt", "shapes_yolov8n_v8.1.44.pt", "yolov8n_random_upstream.pt")
    }
fused = YOLO(str(root / "shapes_yolov8n.pt"))
fused.fuse()
out["info_fused"] = list(fused.info())
fused.save(str(root / "saved.pt"))
out["saved_keys"] = list(torch.load(root / "saved.pt", weights_only=False))
ts = YOLO(str(root / "shapes_yolov8n.pt")).export(format="torchscript", imgsz=320)
extra = {"config.txt": ""}
torch.jit.load(ts, _extra_files=extra)
config = json.loads(extra["config.txt"])
out["torchscript_config_keys"] = list(config)
out["torchscript_args"] = config["args"]
out["torchscript_overrides"] = {k: v for k, v in YOLO(ts).overrides.items() if k != "model"}
(here / "upstream_api.json").write_text(json.dumps(out, indent=1) + "\n")
