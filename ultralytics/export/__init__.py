"""Export targets, one module each: ONNX (`onnx.py`), TensorRT (`tensorrt.py`), and the shared metadata."""
