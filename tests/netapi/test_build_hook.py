"""`BuildOptions.populate`: the network comes from a callback instead of the ONNX parser, and what the
callback returns (the weight arrays real TensorRT only points to) is alive while the engine is built."""

from __future__ import annotations

import gc
import weakref

import pytest

from ultralytics.trt.build import BuildOptions, build_plan


class WeightsHolder:
    """Stands for the writer that owns the numpy arrays handed to TensorRT."""


def test_populate_result_lives_until_the_build_returns(install_tensorrt_standin, monkeypatch):
    trt = install_tensorrt_standin("10.16.1.11")
    holders: list[weakref.ref] = []

    def populate(trt, network):
        x = network.add_input("images", trt.float32, (1, 3, 8, 8))
        y = network.add_activation(x, trt.ActivationType.RELU).get_output(0)
        y.name = "output0"
        network.mark_output(y)
        holder = WeightsHolder()
        holders.append(weakref.ref(holder))
        return holder

    alive_during_build = []
    original = trt.Builder.build_serialized_network

    def build_and_check(self, network, config):
        gc.collect()
        alive_during_build.append(holders[0]() is not None)
        return original(self, network, config)

    monkeypatch.setattr(trt.Builder, "build_serialized_network", build_and_check)
    built = build_plan(trt, None, BuildOptions(populate=populate))
    assert alive_during_build == [True]
    assert built.inputs == {"images": "float32"} and built.outputs == {"output0": "float32"} and not built.dynamic
    gc.collect()
    assert holders[0]() is None  # released once the plan exists: nothing keeps the weights longer than needed


def test_exactly_one_network_source(install_tensorrt_standin, tmp_path):
    trt = install_tensorrt_standin("10.16.1.11")
    with pytest.raises(ValueError, match="exactly one network source"):
        build_plan(trt, None, BuildOptions())
    with pytest.raises(ValueError, match="exactly one network source"):
        build_plan(trt, tmp_path / "model.onnx", BuildOptions(populate=lambda trt, network: None))


def test_failed_network_build_names_the_route(install_tensorrt_standin):
    """A network the builder rejects (no output marked) raises with the route and TensorRT's log."""
    trt = install_tensorrt_standin("11.4.0.106")

    def populate(trt, network):
        network.add_input("images", trt.float32, (1, 3, 8, 8))

    with pytest.raises(RuntimeError, match=r"builder='network'.*\n.*TensorRT log"):
        build_plan(trt, None, BuildOptions(populate=populate))
