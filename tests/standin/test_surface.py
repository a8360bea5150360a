"""The stand-in's API surface is exactly the recorded one, and calls are checked like pybind11 does."""

from __future__ import annotations

import pytest

from tests.trt_standin.surface import _recorded_members, is_modelled, load_api

# Members the ONNX → engine path uses: each must have real behaviour wherever the version records it.
MODELLED = {
    "Logger": ["log", "min_severity"],
    "Builder": [
        "create_network",
        "create_builder_config",
        "create_optimization_profile",
        "build_serialized_network",
        "build_engine",
        "platform_has_fast_fp16",
        "platform_has_fast_int8",
        "logger",
    ],
    "IBuilderConfig": [
        "set_flag",
        "get_flag",
        "clear_flag",
        "flags",
        "set_memory_pool_limit",
        "get_memory_pool_limit",
        "max_workspace_size",
        "add_optimization_profile",
        "num_optimization_profiles",
        "create_timing_cache",
        "set_timing_cache",
        "get_timing_cache",
        "builder_optimization_level",
        "profiling_verbosity",
        "int8_calibrator",
        "set_calibration_profile",
    ],
    "IOptimizationProfile": ["set_shape", "get_shape", "__bool__"],
    "ITimingCache": ["serialize", "combine", "reset"],
    "INetworkDefinition": [
        "get_input",
        "get_output",
        "num_inputs",
        "num_outputs",
        "num_layers",
        "add_input",
        "mark_output",
    ],
    "ITensor": ["name", "shape", "dtype", "is_network_input", "is_network_output"],
    "OnnxParser": ["parse", "parse_from_file", "num_errors", "get_error", "clear_errors"],
    "ParserError": ["code", "desc", "node"],
    "Runtime": ["deserialize_cuda_engine"],
    "ICudaEngine": [
        "num_io_tensors",
        "get_tensor_name",
        "get_tensor_mode",
        "get_tensor_dtype",
        "get_tensor_shape",
        "get_tensor_profile_shape",
        "create_execution_context",
        "serialize",
        "num_optimization_profiles",
        "num_bindings",
        "binding_is_input",
        "get_binding_name",
        "get_binding_index",
        "get_binding_shape",
        "get_binding_dtype",
        "get_profile_shape",
        "__getitem__",
    ],
    "IExecutionContext": [
        "set_input_shape",
        "get_tensor_shape",
        "set_tensor_address",
        "get_tensor_address",
        "execute_async_v3",
        "execute_v2",
        "set_optimization_profile_async",
        "active_optimization_profile",
        "set_binding_shape",
        "get_binding_shape",
        "execute_async_v2",
        "all_binding_shapes_specified",
    ],
    "IHostMemory": ["nbytes", "dtype"],
    "Dims": ["__getitem__", "__len__"],
}


def test_module_names_are_exactly_the_recorded_ones(trt):
    api = load_api(trt.__version__)
    public = {name for name in vars(trt) if not name.startswith("_")}
    recorded = set(api["module_attrs"]) | set(api["constants"]) | set(api["functions"])
    recorded = {name for name in recorded if not name.startswith("_")}
    assert public == recorded


def test_every_class_exposes_exactly_its_recorded_members(trt):
    api = load_api(trt.__version__)
    for name, spec in api["classes"].items():
        cls = trt
        for part in name.split("."):
            cls = getattr(cls, part)
        exposed = {m for m in dir(cls) if not m.startswith("_")}
        recorded = {m for m in _recorded_members(spec) if not m.startswith("_")}
        assert exposed == recorded, f"{name}: extra {exposed - recorded}, missing {recorded - exposed}"
        for dunder in spec["methods"]:
            if dunder in ("__init__", "__getitem__", "__len__", "__bool__"):
                assert dunder in vars(cls) or hasattr(cls, dunder), f"{name}.{dunder} missing"


def test_classes_on_the_engine_path_are_modelled(trt):
    api = load_api(trt.__version__)
    for class_name, members in MODELLED.items():
        spec = api["classes"][class_name]
        recorded = _recorded_members(spec)
        for member in members:
            if member in recorded:
                assert is_modelled(getattr(trt, class_name), member), f"{class_name}.{member} has no behaviour"


def test_enum_members_have_the_recorded_values(trt):
    api = load_api(trt.__version__)
    for name, spec in api["classes"].items():
        if spec["kind"] != "enum":
            continue
        cls = trt
        for part in name.split("."):
            cls = getattr(cls, part)
        for member, value in spec["enum_values"].items():
            assert int(getattr(cls, member)) == value, f"{name}.{member}"
        assert set(cls.__members__) == set(spec["enum_values"])


def test_network_creation_flags_match_the_json(trt):
    recorded = load_api(trt.__version__)["classes"]["NetworkDefinitionCreationFlag"]["enum_values"]
    flags = trt.NetworkDefinitionCreationFlag
    assert {name: int(member) for name, member in flags.__members__.items()} == recorded
    assert hasattr(flags, "EXPLICIT_BATCH") == ("EXPLICIT_BATCH" in recorded)


def test_fp16_flag_exists_in_10_16_and_not_in_11_4(install_tensorrt_standin):
    trt10 = install_tensorrt_standin("10.16.1.11")
    assert int(trt10.BuilderFlag.FP16) == load_api("10.16.1.11")["classes"]["BuilderFlag"]["enum_values"]["FP16"]
    trt11 = install_tensorrt_standin("11.4.0.106")
    with pytest.raises(AttributeError):
        trt11.BuilderFlag.FP16  # noqa: B018 - the access itself is the test
    assert not hasattr(trt11.Builder, "platform_has_fast_fp16")
    assert not hasattr(trt11.IBuilderConfig, "int8_calibrator")


def test_unknown_names_raise_attribute_error(trt):
    with pytest.raises(AttributeError):
        trt.NoSuchClass  # noqa: B018
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    with pytest.raises(AttributeError):
        builder.no_such_method()
    config = builder.create_builder_config()
    with pytest.raises(AttributeError):
        config.no_such_setting = 1  # pybind11 objects have no __dict__
    has_build_engine = "build_engine" in load_api(trt.__version__)["classes"]["Builder"]["methods"]
    assert hasattr(builder, "build_engine") == has_build_engine


def test_calls_that_fit_no_signature_raise_type_error(trt):
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    config = builder.create_builder_config()
    with pytest.raises(TypeError, match="incompatible function arguments"):
        config.set_flag(0)  # needs a BuilderFlag member, not an int
    with pytest.raises(TypeError):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, "1GB")
    with pytest.raises(TypeError):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE)
    with pytest.raises(TypeError):
        builder.create_network(flags="explicit")
    with pytest.raises(TypeError):
        trt.Builder("not a logger")
    with pytest.raises(TypeError):
        trt.Runtime()
    with pytest.raises(TypeError):
        trt.OnnxParser(builder.create_network(0))
    with pytest.raises(TypeError, match="No constructor"):
        trt.ICudaEngine()
    # Keyword arguments use the recorded names.
    network = builder.create_network(flags=0)
    assert network.num_inputs == 0


def test_values_behave_like_pybind11_types(trt):
    dims = trt.Dims([1, 3, 320, 320])
    assert tuple(dims) == (1, 3, 320, 320) and len(dims) == 4 and dims[-1] == 320 and dims == (1, 3, 320, 320)
    assert trt.volume(dims) == 1 * 3 * 320 * 320
    assert trt.nptype(trt.float16).__name__ == "float16"
    severity = trt.ILogger.Severity
    assert trt.Logger.WARNING == severity.WARNING and int(severity.ERROR) < int(severity.WARNING)
    assert repr(trt.DataType.HALF) == f"<DataType.HALF: {int(trt.DataType.HALF)}>"
    assert trt.DataType.HALF.name == "HALF"
    flag = trt.MemoryPoolType.WORKSPACE
    assert {flag: 1}[trt.MemoryPoolType.WORKSPACE] == 1
