"""The CUDA fast path of predict: device-side letterbox, pinned uploads, CUDA graphs and batched NMS.

Each module is one concept and works on any torch device, so CPU CI exercises the same code that runs
on the GPU; `ultralytics/engine/gpu_pipeline.py` wires them into the predictor for CUDA devices.
"""
