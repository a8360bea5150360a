"""Every `tensorrt` attribute our code uses exists in each recorded version whose code path uses it."""

from __future__ import annotations

import pytest

from tests.conftest import SHARED, TRT_VERSIONS
from tests.trt.trt_surface import load_surfaces, missing_uses, scan_package, scan_source

INDEX = SHARED / "trt_api" / "trt_api_members_index.json"


@pytest.fixture(scope="module")
def surfaces():
    return load_surfaces(INDEX)


@pytest.fixture(scope="module")
def uses():
    return scan_package()


def test_scan_covers_the_build_and_inference_calls(uses):
    """Guard against a scanner that silently finds nothing: these calls are the heart of the engine path."""
    paths = {u.path for u in uses}
    for expected in (
        "Builder.build_serialized_network",
        "OnnxParser.parse_from_file",
        "IBuilderConfig.set_memory_pool_limit",
        "IOptimizationProfile.set_shape",
        "Runtime.deserialize_cuda_engine",
        "ICudaEngine.get_tensor_profile_shape",
        "IExecutionContext.set_input_shape",
        "IExecutionContext.set_tensor_address",
        "IExecutionContext.execute_async_v3",
        "IExecutionContext.execute_async_v2",
        "BuilderFlag.FP16",
        "NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
    ):
        assert expected in paths, f"the surface scan no longer sees {expected}"


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_every_reached_attribute_exists(version, uses, surfaces):
    missing = missing_uses(uses, surfaces[version])
    assert not missing, "\n".join(missing)


def test_capability_guards_are_seen(uses, surfaces):
    """The branches for removed APIs are reached only where those APIs exist."""
    fp16 = [u for u in uses if u.path == "BuilderFlag.FP16"]
    explicit = [u for u in uses if u.path == "NetworkDefinitionCreationFlag.EXPLICIT_BATCH"]
    bindings = [u for u in uses if u.path == "IExecutionContext.execute_async_v2"]
    assert fp16 and all(("BuilderFlag.FP16", True) in u.guards for u in fp16)
    assert explicit and not any(surfaces["11.4.0.106"].reaches(u) for u in explicit + fp16 + bindings)
    assert all(surfaces["8.6.1"].reaches(u) for u in explicit + fp16 + bindings)


REMOVED_API = """
def build(trt, builder, config, calibrator):
    config.set_flag(trt.BuilderFlag.FP16)
    config.int8_calibrator = calibrator
    return builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
"""

GUARDED_API = """
def build(trt, builder, config, calibrator):
    if hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
    if not hasattr(trt.IBuilderConfig, "int8_calibrator"):
        return None
    config.int8_calibrator = calibrator
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if hasattr(trt.Builder, "max_batch_size") else 0
    return builder.create_network(flags)


class Old:
    REQUIRES = "ICudaEngine.num_bindings"

    def run(self, engine, context):
        return context.execute_async_v2([0] * engine.num_bindings, 0)
"""


def test_unguarded_removed_api_fails_where_removed(surfaces):
    """What CI does when someone references an API that TensorRT 11 removed."""
    uses = scan_source(REMOVED_API, "example.py")
    assert not missing_uses(uses, surfaces["10.16.1.11"])
    missing = "\n".join(missing_uses(uses, surfaces["11.4.0.106"]))
    for path in ("BuilderFlag.FP16", "IBuilderConfig.int8_calibrator", "NetworkDefinitionCreationFlag.EXPLICIT_BATCH"):
        assert path in missing


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_guarded_removed_api_passes_everywhere(version, surfaces):
    assert not missing_uses(scan_source(GUARDED_API, "example.py"), surfaces[version])


def test_binding_api_outside_its_class_fails_on_10():
    source = "def run(engine):\n    return engine.num_bindings\n"
    surfaces = load_surfaces(INDEX)
    assert missing_uses(scan_source(source), surfaces["10.0.1"])
    assert not missing_uses(scan_source(source), surfaces["8.6.1"])


def test_module_level_requirement_limits_the_check():
    """A module that only runs where calibration exists (<= 10.x) declares it once at the top."""
    source = 'REQUIRES = "IInt8Calibrator"\n\ndef algo(trt):\n    return trt.CalibrationAlgoType.MINMAX_CALIBRATION\n'
    surfaces = load_surfaces(INDEX)
    assert not missing_uses(scan_source(source), surfaces["11.4.0.106"])
    assert not missing_uses(scan_source(source), surfaces["10.16.1.11"])
    unguarded = source.replace('REQUIRES = "IInt8Calibrator"', "")
    assert missing_uses(scan_source(unguarded), surfaces["11.4.0.106"])
