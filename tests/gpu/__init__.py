"""Tests of the CUDA fast path (ultralytics/gpu, engine/gpu_pipeline.py, data/prefetch.py)."""
