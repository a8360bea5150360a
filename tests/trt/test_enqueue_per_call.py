"""What an inference call costs the TensorRT backend besides the enqueue: the host-memory switch is read
once per backend (at load), and no logger operation is opened per call; a failing enqueue still reports
the messages TensorRT logged during it, and only those."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from tests.trt.test_tensorrt_behaviour import META, onnx_run
from tests.trt.tiny import tiny_onnx
from ultralytics.export.engine_file import write_engine_file
from ultralytics.trt import device as trt_device
from ultralytics.trt.build import BuildOptions, build_plan


def _engine(trt, tmp_path):
    onnx_file = tiny_onnx(tmp_path / "t.onnx")
    return write_engine_file(tmp_path / "t.engine", build_plan(trt, onnx_file, BuildOptions()).plan, META), onnx_file


@pytest.mark.parametrize("version", ["8.6.1", "10.16.1.11"])
def test_inference_calls_neither_read_the_switch_nor_open_a_log_operation(
    version, install_tensorrt_standin, tmp_path, monkeypatch, two_devices
):
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    trt = install_tensorrt_standin(version)
    path, onnx_file = _engine(trt, tmp_path)
    backend = TensorRTBackend(path, device="cuda:1")  # a CUDA device (faked): the path that picks streams
    reads, operations = [], []
    read_switch, open_operation = trt_device.trt_host_memory, backend.logger.operation
    monkeypatch.setattr(trt_device, "trt_host_memory", lambda: reads.append(1) or read_switch())
    monkeypatch.setattr(backend.logger, "operation", lambda *a, **k: operations.append(1) or open_operation(*a, **k))
    for _ in range(3):
        x = torch.rand(1, 3, 64, 64)
        np.testing.assert_allclose(backend.forward(x).numpy(), onnx_run(onnx_file, x), rtol=1e-4, atol=1e-4)
    # one operation: the first call binds the buffers (set_tensor_address can log); the enqueues open none
    assert reads == [] and operations == [1]


@pytest.mark.parametrize("version", ["8.6.1", "11.4.0.106"])
def test_a_failing_enqueue_reports_what_tensorrt_logged_during_it(
    version, install_tensorrt_standin, tmp_path, two_devices
):
    """The engine lives on device 1 and the enqueue runs with device 0 current: the stand-in logs TensorRT's
    error and returns False. The report carries that error, not a warning logged before the call."""
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    trt = install_tensorrt_standin(version)
    path, _ = _engine(trt, tmp_path)
    backend = TensorRTBackend(path, device="cuda:1")
    backend.forward(torch.rand(1, 3, 64, 64))  # binds the buffers on device 1
    backend.logger.log(trt.ILogger.Severity.WARNING, "an earlier warning of another call")
    backend._cuda_device = contextlib.nullcontext  # enqueue without making the engine's device current
    with pytest.raises(RuntimeError, match="failed to run") as failure:
        backend.forward(torch.rand(1, 3, 64, 64))
    assert "invalid resource handle" in str(failure.value)
    assert "an earlier warning" not in str(failure.value)


def test_a_failing_call_reports_only_its_own_threads_lines(install_tensorrt_standin):
    """Another thread's inference or build logging between the mark and the failure is not this call's."""
    import threading

    from ultralytics.trt.logger import process_logger

    trt = install_tensorrt_standin("10.16.1.11")
    logger = process_logger(trt)
    mark = logger.logged
    other = threading.Thread(target=logger.log, args=(trt.ILogger.Severity.ERROR, "another thread's enqueue failed"))
    other.start()
    other.join()
    logger.log(trt.ILogger.Severity.ERROR, "this call's error")
    report = logger.since(mark)
    assert "this call's error" in report and "another thread" not in report
