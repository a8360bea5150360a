"""Ultralytics-compatible YOLOv8, built for deployment through TensorRT 8.6, 10.x and 11.x.

Imports are lazy so that `import ultralytics` stays cheap and a broken optional
backend never prevents the PyTorch path from loading.
"""

__version__ = "8.4.190+trt.1"

__all__ = ["YOLO", "__version__"]


def __getattr__(name: str):
    if name == "YOLO":
        from ultralytics.engine.model import YOLO

        return YOLO
    raise AttributeError(f"module 'ultralytics' has no attribute {name!r}")
