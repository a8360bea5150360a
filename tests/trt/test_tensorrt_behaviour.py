"""TensorRT as it really behaves (issue 16): the stand-in's strict rules, and the package keeping to them.

Each finding of the issue has a test here that failed on be0359c: calibration reads exactly the
static/opt shape, engines run on their own device and a stream of ours, one logger per process,
foreign timing caches, profile checks, VERBOSE filtering, the head-conv heuristic.
"""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import SHAPES
from tests.trt.tiny import tiny_onnx
from tests.trt_standin import plan as standin_plan
from ultralytics.export.engine_file import read_engine_file, write_engine_file
from ultralytics.trt.build import BuildOptions, build_plan

META = {
    "stride": 32,
    "task": "detect",
    "batch": 1,
    "imgsz": [64, 64],
    "names": {"0": "a", "1": "b", "2": "c", "3": "d"},
}
PROFILE = ((1, 3, 32, 32), (2, 3, 64, 64), (2, 3, 128, 128))


def process_logger(trt):
    from ultralytics.trt.logger import process_logger

    return process_logger(trt)


def batch2_onnx(path):
    """The tiny detector with a static batch of 2."""
    model = onnx.load(str(tiny_onnx(path)))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 2
    onnx.save(model, str(path))
    return path


def engine_cfg(**overrides):
    from ultralytics.cfg import get_cfg, resolve_precision

    cfg = get_cfg({"format": "engine", "imgsz": 64, "verbose": False, **overrides})
    cfg.precision = resolve_precision(cfg.half, cfg.int8, cfg.quantize)
    return cfg


def calibration_header(engine):
    header, _ = standin_plan.unpack(read_engine_file(engine).plan)
    return header["calibration"]


def one_image_folder(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    shutil.copy(sorted((SHAPES / "val" / "images").glob("*.jpg"))[0], folder)
    return folder


# -- 1. calibration reads the static / opt shape ---------------------------------------------------


@pytest.mark.parametrize("version", ["8.6.1", "10.16.1.11"])
def test_standin_calibration_reads_the_static_batch_whatever_get_batch_size_says(
    version, install_tensorrt_standin, tmp_path
):
    """A one-image buffer for a batch-2 network is an out-of-bounds read: the build fails and says so."""
    trt = install_tensorrt_standin(version)
    onnx_file = batch2_onnx(tmp_path / "b2.onnx")
    one_image = torch.zeros(1, 3, 64, 64)

    class Short(trt.IInt8MinMaxCalibrator):
        def __init__(self):
            trt.IInt8MinMaxCalibrator.__init__(self)
            self.served = False

        def get_batch_size(self):
            return 1  # does not change what TensorRT reads

        def get_batch(self, names):
            if self.served:
                return None
            self.served = True
            return [one_image.data_ptr()]

        def read_calibration_cache(self):
            return None

        def write_calibration_cache(self, cache):
            pass

    calibrator = Short()

    def configure(trt, builder, network, config, profile):
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator

    with pytest.raises(RuntimeError, match=r"out-of-bounds(.|\n)*"):
        build_plan(trt, onnx_file, BuildOptions(configure=configure))


def test_fewer_images_than_the_static_batch_still_fill_every_batch(install_tensorrt_standin, detection_model, tmp_path):
    """Export: batch=2 with one calibration image repeats it to a full batch (be0359c shrank the batch to 1,
    which TensorRT reads past)."""
    install_tensorrt_standin("10.16.1.11")
    from ultralytics.export.tensorrt import export_engine

    cfg = engine_cfg(int8=True, batch=2, data=str(one_image_folder(tmp_path)))
    engine = export_engine(detection_model, tmp_path / "b2.engine", cfg, onnx_file=batch2_onnx(tmp_path / "b2.onnx"))
    calibration = calibration_header(engine)
    assert calibration["batches"] == 1 and calibration["shapes"] == {"images": [2, 3, 64, 64]}


def test_dynamic_calibration_gets_its_own_profile(install_tensorrt_standin, detection_model, tmp_path):
    """opt_shape differing from the calibration batches: calibration still reads exactly those batches."""
    install_tensorrt_standin("8.6.1")
    from ultralytics.export.tensorrt import export_engine

    cfg = engine_cfg(
        int8=True, batch=2, dynamic=True, opt_shape=[2, 3, 96, 96], max_shape=[2, 3, 128, 128],
        data=str(one_image_folder(tmp_path)),
    )  # fmt: skip
    engine = export_engine(detection_model, tmp_path / "d.engine", cfg, onnx_file=tiny_onnx(tmp_path / "d.onnx", True))
    assert calibration_header(engine)["shapes"] == {"images": [2, 3, 64, 64]}  # min = opt = max = the batches


# -- 2. the engine's device, 4. a stream of ours --------------------------------------------------


def test_standin_enqueue_checks_the_current_device(install_tensorrt_standin, tmp_path, two_devices):
    trt = install_tensorrt_standin("10.16.1.11")
    plan = build_plan(trt, tiny_onnx(tmp_path / "t.onnx"), BuildOptions()).plan
    logger = process_logger(trt)
    with two_devices("cuda:1"):
        engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
        context = engine.create_execution_context()
    x, y = torch.zeros(1, 3, 64, 64), torch.zeros(1, 8, 64 * 64)
    context.set_tensor_address("images", x.data_ptr())
    context.set_tensor_address("output0", y.data_ptr())
    with logger.operation() as log:
        assert not context.execute_async_v3(12345)  # device 0 is current: the engine lives on device 1
    assert "invalid resource handle" in log.tail()
    with two_devices("cuda:1"):
        assert context.execute_async_v3(12345)


@pytest.mark.parametrize("version", ["8.6.1", "11.4.0.106"])
def test_device_1_runs_every_call_inside_its_context(version, install_tensorrt_standin, tmp_path, two_devices):
    """set_input_shape and the enqueue of a dynamic engine run with device 1 current (upstream issue 21300)."""
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    trt = install_tensorrt_standin(version)
    onnx_file = tiny_onnx(tmp_path / "d.onnx", dynamic=True)
    path = write_engine_file(
        tmp_path / "d.engine", build_plan(trt, onnx_file, BuildOptions(profile=PROFILE)).plan, META
    )
    backend = TensorRTBackend(path, device="cuda:1")
    for shape in ((1, 3, 64, 64), (2, 3, 96, 64)):
        x = torch.rand(shape)
        expected = onnx_run(onnx_file, x)
        np.testing.assert_allclose(backend.forward(x).numpy(), expected, rtol=1e-4, atol=1e-4)
    assert two_devices.current == 0  # the caller's device is left as it was


def onnx_run(onnx_file, x):
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx_file)).run(None, {"images": x.numpy()})[0]


@pytest.mark.parametrize("version", ["8.6.1", "10.16.1.11"])
def test_no_enqueue_on_the_default_stream(version, install_tensorrt_standin, tmp_path):
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    trt = install_tensorrt_standin(version)
    path = write_engine_file(
        tmp_path / "t.engine", build_plan(trt, tiny_onnx(tmp_path / "t.onnx"), BuildOptions()).plan, META
    )
    backend = TensorRTBackend(path, device="cpu")
    backend.forward(torch.rand(1, 3, 64, 64))
    assert "default stream" not in backend.logger.tail()
    assert backend.stream.cuda_stream not in (0, 1, 2)


# -- 3. one logger per process, each operation its own messages -----------------------------------


def test_standin_keeps_the_first_logger_and_warns(install_tensorrt_standin):
    trt = install_tensorrt_standin("10.16.1.11")
    first, second = [], []

    def collecting(into):
        class Collect(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)

            def log(self, severity, msg):
                into.append(msg)

        return Collect()

    trt.Builder(collecting(first))
    trt.Runtime(collecting(second)).deserialize_cuda_engine(b"not a plan")
    assert any("differs from one already provided" in m for m in first)
    assert second == [] and any("Serialization" in m for m in first)  # the runtime's error went to the first


@pytest.mark.parametrize("version", ["8.6.1", "11.4.0.106"])
def test_each_operation_reports_its_own_log(version, install_tensorrt_standin, tmp_path):
    """After a good build, a failing build's error carries its own messages (be0359c's second logger got
    none: TensorRT sent them to the first) and a failing load does not repeat the build's."""
    from ultralytics.nn.backends.tensorrt import TensorRTBackend

    trt = install_tensorrt_standin(version)
    build_plan(trt, tiny_onnx(tmp_path / "t.onnx"), BuildOptions())

    def no_outputs(trt, network):
        network.add_input("images", trt.DataType.FLOAT, trt.Dims([1, 3, 8, 8]))

    with pytest.raises(RuntimeError, match="at least one output") as build_error:
        build_plan(trt, None, BuildOptions(populate=no_outputs))
    assert "differs from one already provided" not in str(build_error.value)
    corrupt = write_engine_file(tmp_path / "bad.engine", b"x" * 64, META)
    with pytest.raises(RuntimeError, match="Serialization") as load_error:
        TensorRTBackend(corrupt, device="cpu")
    assert "at least one output" not in str(load_error.value)


def test_verbose_messages_are_dropped_unless_verbose(install_tensorrt_standin, tmp_path, log_lines):
    trt = install_tensorrt_standin("10.16.1.11")
    onnx_file = tiny_onnx(tmp_path / "t.onnx")
    logger = process_logger(trt)
    build_plan(trt, onnx_file, BuildOptions())
    assert not any("Builder: layer" in m for m in log_lines) and logger.threshold == 2  # WARNING
    build_plan(trt, onnx_file, BuildOptions(verbose=True))
    assert any("Builder: layer" in m for m in log_lines) and logger.threshold == 2  # back to WARNING after


# -- 5. a foreign timing cache --------------------------------------------------------------------


def test_foreign_timing_cache_is_neither_claimed_nor_overwritten(install_tensorrt_standin, tmp_path, log_lines):
    onnx_file = tiny_onnx(tmp_path / "t.onnx")
    cache = tmp_path / "shared.timing.cache"
    build_plan(install_tensorrt_standin("10.0.1"), onnx_file, BuildOptions(timing_cache=cache))
    made_by_10_0 = cache.read_bytes()
    log_lines.clear()
    build_plan(install_tensorrt_standin("10.16.1.11"), onnx_file, BuildOptions(timing_cache=cache))
    assert not any("reusing timing cache" in m for m in log_lines)
    assert any("made for another GPU or TensorRT version" in m for m in log_lines)
    assert cache.read_bytes() == made_by_10_0  # the user's file is untouched


# -- 7. head convs ----------------------------------------------------------------------------------


def body_projection_onnx(path):
    """images → Conv (no activation: a body projection) → Conv + SiLU → Conv (head) → output0."""
    rng = np.random.default_rng(0)
    weights = {
        "w0": rng.standard_normal((8, 3, 1, 1)),
        "w1": rng.standard_normal((8, 8, 3, 3)),
        "w2": rng.standard_normal((8, 8, 1, 1)),
    }
    nodes = [
        helper.make_node("Conv", ["images", "w0"], ["p"], name="/body/proj/Conv"),
        helper.make_node("Conv", ["p", "w1"], ["c"], pads=[1, 1, 1, 1], name="/body/feat/Conv"),
        helper.make_node("Sigmoid", ["c"], ["s"], name="/body/feat/Sigmoid"),
        helper.make_node("Mul", ["c", "s"], ["a"], name="/body/feat/Mul"),
        helper.make_node("Conv", ["a", "w2"], ["h"], name="/head/predict/Conv"),
        helper.make_node("Reshape", ["h", "shape"], ["output0"], name="/head/Reshape"),
    ]
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    inits.append(numpy_helper.from_array(np.array([0, 8, -1], np.int64), "shape"))
    graph = helper.make_graph(
        nodes,
        "proj",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 8, 1024])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_an_activation_less_body_conv_is_not_a_head_conv(install_tensorrt_standin, tmp_path):
    from ultralytics.export.calibrator import constrain_sensitive_layers
    from ultralytics.export.quantize import head_prediction_convs
    from ultralytics.trt.network import network_flags

    onnx_file = body_projection_onnx(tmp_path / "proj.onnx")
    assert head_prediction_convs(onnx.load(str(onnx_file))) == ["/head/predict/Conv"]
    trt = install_tensorrt_standin("10.16.1.11")
    logger = process_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    assert trt.OnnxParser(network, logger).parse_from_file(str(onnx_file))
    pinned = constrain_sensitive_layers(trt, network, builder.create_builder_config())
    assert "/head/predict/Conv" in pinned and "/body/proj/Conv" not in pinned


# -- the stand-in's strongly typed and shape-tensor rules -------------------------------------------


@pytest.mark.parametrize("version", ["11.0.0.114", "11.4.0.106"])
@pytest.mark.parametrize("kind", ["elementwise", "concatenation", "matrix_multiply"])
def test_standin_strongly_typed_rejects_mixed_input_types(version, kind, install_tensorrt_standin):
    trt = install_tensorrt_standin(version)
    logger = process_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    a = network.add_input("a", trt.DataType.FLOAT, trt.Dims([1, 4, 4]))
    b = network.add_input("b", trt.DataType.HALF, trt.Dims([1, 4, 4]))
    if kind == "elementwise":
        layer = network.add_elementwise(a, b, trt.ElementWiseOperation.SUM)
    elif kind == "concatenation":
        layer = network.add_concatenation([a, b])
    else:
        layer = network.add_matrix_multiply(a, trt.MatrixOperation.NONE, b, trt.MatrixOperation.NONE)
    network.mark_output(layer.get_output(0))
    with logger.operation() as log:
        assert builder.build_serialized_network(network, builder.create_builder_config()) is None
    assert "strongly typed network" in log.tail()


def test_standin_shape_tensors_must_be_integers(install_tensorrt_standin):
    trt = install_tensorrt_standin("10.16.1.11")
    logger = process_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    x = network.add_input("x", trt.DataType.FLOAT, trt.Dims([2, 6]))
    dims = network.add_constant(trt.Dims([2]), np.array([3, 4], np.float32)).get_output(0)
    shuffle = network.add_shuffle(x)
    shuffle.set_input(1, dims)
    network.mark_output(shuffle.get_output(0))
    with logger.operation() as log:
        assert builder.build_serialized_network(network, builder.create_builder_config()) is None
    assert "INT32 or INT64" in log.tail()


# -- progress bars (issue 14 asks for them; they live in these files) -------------------------------


@pytest.mark.parametrize(("version", "bars"), [("8.6.1", 0), ("10.16.1.11", 1)])
def test_engine_build_shows_a_progress_bar_where_tensorrt_reports_progress(
    version, bars, install_tensorrt_standin, tmp_path, monkeypatch
):
    made = []

    class FakeBar:
        def __init__(self, total=None, desc="", **kw):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            made.append(self)

        def update(self, n=1):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setattr("ultralytics.trt.progress.tqdm", FakeBar)
    build_plan(install_tensorrt_standin(version), tiny_onnx(tmp_path / "t.onnx"), BuildOptions())
    assert len(made) == bars  # 8.6 has no IProgressMonitor
    assert all(bar.desc.startswith("TensorRT build") and bar.n == bar.total == 1 and bar.closed for bar in made)
