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
from ultralytics.gpu.segmented_decode import HostStreams, SegmentedFrameReader
from ultralytics.gpu.video_decode import OpenCVFrameReader
from ultralytics.utils.settings import REUSE_ENV, SWITCHES


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two different 100-frame videos and their frames as OpenCV decodes them."""
    out = {}
    for name, shift in (("a", 0), ("b", 7)):
        frames_np = moving_frames(FRAMES + shift, (36, 52))[shift:]
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

    def __init__(self, clips, path, **kw):
        super().__init__(clips_by_path(clips)[str(path)], **kw)
        Reconfigurable.made += 1
        self.clips = clips
        self.reconfigured: list[str] = []

    def reconfigure_decoder(self, path: str) -> None:
        if "broken" in path:
            raise RuntimeError(f"cannot open {path}")
        self.rgb = clips_by_path(self.clips)[path].flip(-1).contiguous()
        self.reconfigured.append(path)


def clips_by_path(clips) -> dict:
    return {str(path): frames for path, frames in clips.values()}


def _pooled_reader(clips, name: str, sessions: int = 3, fail=None) -> SegmentedFrameReader:
    path = clips[name][0]

    def open_decoder(worker: int):  # NumberedStreams: a session's "stream" is its number
        return nvdec_pool.take(("stand-in", worker), path, lambda: Reconfigurable(clips, path, fail=fail))

    return SegmentedFrameReader(
        path,
        open_decoder,
        sessions,
        segment=24,
        streams=NumberedStreams(),
        keep_decoder=lambda worker, decoder: nvdec_pool.give_back(("stand-in", worker), decoder),
    )


class NumberedStreams(HostStreams):
    def worker_stream(self, worker: int) -> int:
        return worker

    def begin(self, worker: int) -> int:
        return worker


def test_next_video_reuses_the_sessions_and_its_frames_are_its_own(clips):
    Reconfigurable.made = 0
    first = _read_all(_pooled_reader(clips, "a"), 10)
    assert torch.equal(first, clips["a"][1]) and Reconfigurable.made == 3 and nvdec_pool.idle_count() == 3
    second = _read_all(_pooled_reader(clips, "b"), 10)
    assert torch.equal(second, clips["b"][1])
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
