"""NVDEC decoders kept between videos (gpu/nvdec_pool.py): a reader's sessions that end cleanly are kept per
stream and reconfigured for the next video, a failed one is not, and `ULTRALYTICS_NVDEC_REUSE=0` keeps none.
Run on the CPU through SegmentedFrameReader with a stand-in decoder that hands out real frames by index."""

from __future__ import annotations

import pytest
import torch

import ultralytics.gpu.segmented_decode as segmented
from tests.gpu_decode.conftest import moving_frames, write_mp4v
from tests.gpu_decode.test_segmented import FRAMES, SLICE, IndexedStandIn, _read_all
from ultralytics.gpu import nvdec_pool
from ultralytics.gpu.capture_gate import CaptureGate
from ultralytics.gpu.segmented_decode import HostStreams, SegmentedFrameReader
from ultralytics.gpu.video_decode import OpenCVFrameReader
from ultralytics.utils.settings import REUSE_ENV, SWITCHES


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two different 100-frame videos and their frames as OpenCV decodes them."""
    out = {}
    for name, count in (("a", FRAMES), ("b", FRAMES - 10)):  # different lengths: a stale length shows
        frames_np = moving_frames(count, (36, 52))
        path = write_mp4v(tmp_path_factory.mktemp("pool") / f"{name}.mp4", frames_np)
        reader = OpenCVFrameReader(path, torch.device("cpu"))
        out[name] = (path, reader.read(10_000))
        reader.close()
    assert not torch.equal(out["a"][1], out["b"][1])
    return out


@pytest.fixture(autouse=True)
def empty_pool(monkeypatch):
    monkeypatch.setattr(segmented, "SLICE_FRAMES", SLICE)
    monkeypatch.delenv(REUSE_ENV, raising=False)
    nvdec_pool.release_all()
    yield
    nvdec_pool.release_all()


class Reconfigurable(IndexedStandIn):
    """The stand-in plus `reconfigure_decoder(path)`, which switches it to that video's frames."""

    made = 0

    gate = None  # set by a test: must be held (by some thread) whenever a decoder is reconfigured

    def __init__(self, clips, path, **kw):
        frames = clips_by_path(clips)[str(path)]
        super().__init__(frames, length=frames.shape[0], **kw)
        Reconfigurable.made += 1
        self.clips = clips
        self.reconfigured: list[str] = []

    def reconfigure_decoder(self, path: str) -> None:
        if "broken" in path:
            raise RuntimeError(f"cannot open {path}")
        assert Reconfigurable.gate is None or Reconfigurable.gate.decoding_now > 0, "reconfigured outside the gate"
        frames = clips_by_path(self.clips)[path]
        self.rgb, self.length = frames.flip(-1).contiguous(), frames.shape[0]
        self.reconfigured.append(path)


def clips_by_path(clips) -> dict:
    return {str(path): frames for path, frames in clips.values()}


def _pooled_reader(clips, name: str, sessions: int = 3, fail=None, gate=None) -> SegmentedFrameReader:
    path = clips[name][0]

    def open_decoder(worker: int):  # NumberedStreams: a session's "stream" is its number
        return nvdec_pool.take(("stand-in", worker), path, lambda: Reconfigurable(clips, path, fail=fail))

    return SegmentedFrameReader(
        path,
        open_decoder,
        sessions,
        segment=24,
        streams=NumberedStreams(gate),
        keep_decoder=lambda worker, decoder: keep(worker, decoder, gate),
    )


def keep(worker, decoder, gate) -> None:
    assert gate is None or gate.decoding_now > 0, "given back outside the gate"
    nvdec_pool.give_back(("stand-in", worker), decoder)


class NumberedStreams(HostStreams):
    """Host streams whose session "streams" are the session numbers (the pool's keys)."""

    def worker_stream(self, worker: int) -> int:
        return worker

    def begin(self, worker: int) -> int:
        return worker


def test_next_video_reuses_the_sessions_and_its_frames_are_its_own(clips, monkeypatch):
    gate = CaptureGate()
    monkeypatch.setattr(Reconfigurable, "gate", gate)
    Reconfigurable.made = 0
    first = _read_all(_pooled_reader(clips, "a", gate=gate), 10)
    assert torch.equal(first, clips["a"][1]) and Reconfigurable.made == 3 and nvdec_pool.idle_count() == 3
    second = _read_all(_pooled_reader(clips, "b", gate=gate), 10)
    assert torch.equal(second, clips["b"][1])  # its own 90 frames, not the first video's 100
    assert Reconfigurable.made == 3  # no new decoder: the three kept ones were reconfigured


def test_reuse_off_opens_fresh_decoders_and_keeps_none(clips, monkeypatch):
    monkeypatch.setenv(REUSE_ENV, "0")
    Reconfigurable.made = 0
    for name in ("a", "b"):
        assert torch.equal(_read_all(_pooled_reader(clips, name), 10), clips[name][1])
    assert Reconfigurable.made == 6 and nvdec_pool.idle_count() == 0


def test_a_session_that_failed_is_not_kept(clips):
    with pytest.raises(RuntimeError, match="NVDEC session"):
        _read_all(_pooled_reader(clips, "a", fail=lambda first: first == 24), 10)
    assert nvdec_pool.idle_count() == 2  # the other two sessions ended cleanly


def test_a_decoder_that_raised_near_the_end_is_not_kept(clips):
    """Near the end a failing request is taken as the container overstating its frames (the video ends
    there), but the decoder still raised: it is not handed to the next video."""
    frames = _read_all(_pooled_reader(clips, "a", fail=lambda first: 88 <= first < 96), 10)
    assert torch.equal(frames, clips["a"][1][:88])
    assert nvdec_pool.idle_count() == 2  # the session of frames 72-95 (requests from 88 fail) is not kept


def test_a_reconfigure_that_raises_opens_a_fresh_decoder():
    made = []
    kept = Reconfigurable.__new__(Reconfigurable)
    kept.clips, kept.reconfigured = {}, []
    nvdec_pool.give_back("k", kept)
    fresh = nvdec_pool.take("k", "/videos/broken.mp4", lambda: made.append(1) or "fresh")
    assert fresh == "fresh" and made == [1] and nvdec_pool.idle_count() == 0


def test_one_decoder_kept_per_stream():
    nvdec_pool.give_back("k", "first")
    nvdec_pool.give_back("k", "second")
    nvdec_pool.give_back(None, None)
    assert nvdec_pool.idle_count() == 1


def test_bad_reuse_value_is_one_line(monkeypatch):
    assert REUSE_ENV in SWITCHES  # listed by `yolo settings`
    monkeypatch.setenv(REUSE_ENV, "maybe")
    with pytest.raises(ValueError, match="ULTRALYTICS_NVDEC_REUSE='maybe' is not valid"):
        nvdec_pool.take("k", "x.mp4", lambda: None)
