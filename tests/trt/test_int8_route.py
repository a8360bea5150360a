"""`trt.precision.int8_route`: the INT8 route is a property of the TensorRT module, asked in one place.

Expected per NVIDIA's release notes: 8.6-10.x calibrate during the build; 11.0 removed the calibrator
classes and `BuilderFlag.INT8` (implicit quantization), leaving explicit Q/DQ ONNX as the only route.
"""

from __future__ import annotations

from ultralytics.trt.precision import int8_route


def test_int8_route_follows_the_recorded_api(trt):
    major = int(trt.__version__.split(".")[0])
    assert int8_route(trt) == ("calibrator" if major <= 10 else "qdq")
