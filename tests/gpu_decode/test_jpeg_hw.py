"""The hardware JPEG decoder (gpu/jpeg_hw.py, nvImageCodec's HW backend) and how decode_jpegs uses it.

On the CPU a stand-in `nvidia.nvimgcodec` module decodes with OpenCV (RGB, as nvImageCodec returns it), so
what is checked here is the wiring: the hardware decoder goes first and only its backend is asked for;
its frames are not given the nvJPEG chroma rebuild (they are interpolated already); what it returns no
image for goes to torchvision's nvJPEG path; no decoder (not installed, no engines on the GPU) or
`ULTRALYTICS_GPU_JPEG_DECODER=nvjpeg` leaves torchvision's path alone. On CUDA with nvImageCodec
installed, the real decoder is held to OpenCV's pixels within the H200's measured 1 grey level.
"""

from __future__ import annotations

import sys
import types

import cv2
import numpy as np
import pytest
import torch

import ultralytics.gpu.decode as decode
from ultralytics.gpu import jpeg_hw
from ultralytics.gpu.jpeg_hw import forget_decoders, hardware_jpeg_decoder
from ultralytics.utils.settings import JPEG_DECODER_ENV


def _jpegs(val_jpegs, n=3) -> list[bytes]:
    return [p.read_bytes() for p in val_jpegs[:n]]


def _opencv(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


class StandInDecoder:
    """nvImageCodec's Decoder surface: decode(list of bytes, cuda_stream=) → RGB images or None."""

    instances: list = []

    def __init__(self, device_id: int = -1, backends=None, refuse: set[int] | None = None):
        self.device_id, self.backends, self.calls = device_id, backends, []
        self.refuse = refuse or set()
        StandInDecoder.instances.append(self)

    def decode(self, datas, cuda_stream: int = 0):
        self.calls.append(len(datas))
        return [None if i in self.refuse else _opencv(d)[..., ::-1].copy() for i, d in enumerate(datas)]


def _stand_in_module(decoder_factory) -> types.ModuleType:
    module = types.ModuleType("nvidia.nvimgcodec")
    module.BackendKind = types.SimpleNamespace(HW_GPU_ONLY="HW_GPU_ONLY", GPU_ONLY="GPU_ONLY")
    module.Backend = lambda kind: ("backend", kind)
    module.Decoder = decoder_factory
    return module


@pytest.fixture
def stand_in(monkeypatch):
    """Install a stand-in nvidia.nvimgcodec; yields a dict whose 'refuse' set makes it return None there."""
    options: dict = {"refuse": set()}
    module = _stand_in_module(lambda **kw: StandInDecoder(**kw, refuse=options["refuse"]))
    package = types.ModuleType("nvidia")
    package.nvimgcodec = module
    monkeypatch.setitem(sys.modules, "nvidia", package)
    monkeypatch.setitem(sys.modules, "nvidia.nvimgcodec", module)
    monkeypatch.delenv(JPEG_DECODER_ENV, raising=False)
    StandInDecoder.instances.clear()
    forget_decoders()
    yield options
    forget_decoders()


def _opencv_nvjpeg(calls: list[int]):
    """A stand-in for torchvision's path (CI has no torchvision): OpenCV's frames, recording the batch sizes."""
    return lambda datas, device: calls.append(len(datas)) or [torch.from_numpy(_opencv(d)) for d in datas]


def test_hardware_frames_come_first_and_skip_the_chroma_rebuild(stand_in, val_jpegs, monkeypatch):
    nvjpeg_calls: list[int] = []
    monkeypatch.setattr(decode, "_nvjpeg", _opencv_nvjpeg(nvjpeg_calls))
    datas = _jpegs(val_jpegs)
    frames = decode.decode_jpegs(datas, torch.device("cpu"))
    (decoder,) = StandInDecoder.instances
    assert decoder.backends == [("backend", "HW_GPU_ONLY")]  # only the hardware backend is asked for
    # a one-image check when it is made, then one batched call, nothing left over
    assert decoder.calls == [1, len(datas)] and nvjpeg_calls == []
    for frame, data in zip(frames, datas):
        # exactly the decoder's pixels as BGR: a rebuild (meant for nvJPEG's repeated chroma) would move them
        np.testing.assert_array_equal(frame.numpy(), _opencv(data))


def test_what_the_hardware_decoder_refuses_goes_to_nvjpeg(stand_in, val_jpegs, monkeypatch):
    datas = _jpegs(val_jpegs)
    stand_in["refuse"].add(1)
    seen: list[int] = []
    monkeypatch.setattr(decode, "_nvjpeg", _opencv_nvjpeg(seen))
    frames = decode.decode_jpegs(datas, torch.device("cpu"))
    assert seen == [1] and all(f is not None for f in frames)
    np.testing.assert_array_equal(frames[0].numpy(), _opencv(datas[0]))
    np.testing.assert_array_equal(frames[2].numpy(), _opencv(datas[2]))


def test_switch_keeps_torchvision_only(stand_in, val_jpegs, monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(decode, "_nvjpeg", _opencv_nvjpeg(seen))
    monkeypatch.setenv(JPEG_DECODER_ENV, "nvjpeg")
    frames = decode.decode_jpegs(_jpegs(val_jpegs, 2), torch.device("cpu"))
    assert not StandInDecoder.instances and seen == [2] and all(f is not None for f in frames)


def test_no_decoder_is_asked_once_and_leaves_nvjpeg(monkeypatch, val_jpegs):
    seen: list[int] = []
    monkeypatch.setattr(decode, "_nvjpeg", _opencv_nvjpeg(seen))
    attempts = []

    def refuse(**kw):
        attempts.append(kw)
        raise RuntimeError("Internal error - Could not create decoder. Code: 7")

    module = _stand_in_module(refuse)
    package = types.ModuleType("nvidia")
    package.nvimgcodec = module
    monkeypatch.setitem(sys.modules, "nvidia", package)
    monkeypatch.setitem(sys.modules, "nvidia.nvimgcodec", module)
    forget_decoders()
    try:
        for _ in range(2):
            frames = decode.decode_jpegs(_jpegs(val_jpegs, 2), torch.device("cpu"))
            assert all(f is not None for f in frames)
        assert len(attempts) == 1 and seen == [2, 2]  # decided once per device; nvJPEG's path decodes
        assert hardware_jpeg_decoder("cpu") is None
    finally:
        forget_decoders()


@pytest.mark.parametrize(
    ("failure", "error"),
    [(lambda datas: 1 / 0, "ZeroDivisionError"), (lambda datas: [object() for _ in datas], "Could not infer dtype")],
    ids=["decode raises", "an image torch cannot take"],
)
def test_a_failing_hardware_decode_warns_once_and_leaves_nvjpeg(stand_in, val_jpegs, monkeypatch, failure, error):
    seen: list[int] = []
    monkeypatch.setattr(decode, "_nvjpeg", _opencv_nvjpeg(seen))
    real = StandInDecoder.decode  # the one-image check at creation passes; batches then fail
    monkeypatch.setattr(
        StandInDecoder,
        "decode",
        lambda self, datas, cuda_stream=0: real(self, datas) if len(datas) == 1 else failure(datas),
    )
    warnings = []
    monkeypatch.setattr(jpeg_hw.LOGGER, "warning", warnings.append)
    for _ in range(2):
        frames = decode.decode_jpegs(_jpegs(val_jpegs, 2), torch.device("cpu"))
        assert all(f is not None for f in frames)
    assert seen == [2, 2] and len(warnings) == 1 and error in warnings[0]


def test_a_decoder_that_returns_nothing_when_made_is_not_used(stand_in, val_jpegs, monkeypatch):
    """A GPU without JPEG engines may create the decoder and then give no image for anything."""
    seen: list[int] = []
    monkeypatch.setattr(decode, "_nvjpeg", _opencv_nvjpeg(seen))
    monkeypatch.setattr(StandInDecoder, "decode", lambda self, datas, cuda_stream=0: [None for _ in datas])
    infos = []
    monkeypatch.setattr(jpeg_hw.LOGGER, "info", infos.append)
    for _ in range(2):
        assert all(f is not None for f in decode.decode_jpegs(_jpegs(val_jpegs, 2), torch.device("cpu")))
    assert seen == [2, 2] and len(StandInDecoder.instances) == 1  # checked once, then left alone
    assert len(infos) == 1 and "no hardware JPEG decoder" in infos[0]


def test_bad_switch_value_is_one_line(monkeypatch):
    monkeypatch.setenv(JPEG_DECODER_ENV, "gpu")
    with pytest.raises(ValueError, match=f"^{JPEG_DECODER_ENV}='gpu' is not valid"):
        decode.decode_jpegs([b"\xff\xd8\xff"], torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_hardware_decoder_is_within_a_grey_level_of_opencv(val_jpegs):
    forget_decoders()
    decoder = hardware_jpeg_decoder("cuda")
    if decoder is None:
        pytest.skip("no nvImageCodec, or no hardware JPEG decoder on this GPU")
    datas = _jpegs(val_jpegs, 8)
    frames = decoder.decode(datas)
    assert jpeg_hw.HardwareJpegDecoder is type(decoder)
    for frame, data in zip(frames, datas):
        assert frame is not None
        diff = np.abs(frame.cpu().numpy().astype(int) - _opencv(data))
        assert diff.max() <= 1, f"max {diff.max()}"  # the H200's measurement (session 6)
