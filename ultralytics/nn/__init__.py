"""Neural-network side of the package: YOLOv8 layers, the detection model, checkpoints, backends.

Names are imported lazily so that `import ultralytics.nn.modules.conv` (what unpickling does) does
not pull in the checkpoint loader or any backend.
"""

__all__ = ["CheckpointError", "DetectionModel", "checkpoint_imgsz", "load_checkpoint"]


def __getattr__(name: str):
    if name == "DetectionModel":
        from ultralytics.nn.tasks import DetectionModel

        return DetectionModel
    if name in ("CheckpointError", "checkpoint_imgsz", "load_checkpoint"):
        from ultralytics.nn import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'ultralytics.nn' has no attribute {name!r}")
