"""Several decoder sessions per video (gpu/segmented_decode.py), run on the CPU: a stand-in decoder hands
out real OpenCV-decoded frames by index, as views of one buffer it overwrites on the next request (as
PyNvVideoCodec's do), and the frames that come out must be the sequential reader's, pixel for pixel."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import torch

import ultralytics.gpu.segmented_decode as segmented
from tests.gpu_decode.conftest import moving_frames, write_mp4v
from ultralytics.data.gpu_sources import DeviceDecodedSource
from ultralytics.data.loaders import load_inference_source
from ultralytics.gpu.decode_source import FallbackBeforeFirstFrame
from ultralytics.gpu.segmented_decode import SegmentedFrameReader, segment_frames
from ultralytics.gpu.video_decode import OpenCVFrameReader, video_info
from ultralytics.utils import settings as settings_module

FRAMES = 100  # 5 segments of 20 with a tail segment when the segment is 24 or 64
SLICE = 8  # decoder requests of 8 frames here (32 on the GPU), so segments hold several of them


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """(path, its frames as OpenCV decodes them: BHWC BGR uint8) of a 100-frame MPEG-4 video."""
    path = write_mp4v(tmp_path_factory.mktemp("seg") / "pan.mp4", moving_frames(FRAMES, (36, 52)))
    reader = OpenCVFrameReader(path, torch.device("cpu"))
    frames = reader.read(10_000)
    reader.close()
    assert frames is not None and frames.shape[0] == FRAMES == video_info(path)[0]
    return path, frames


@pytest.fixture(autouse=True)
def small_slices(monkeypatch):
    monkeypatch.setattr(segmented, "SLICE_FRAMES", SLICE)


class IndexedStandIn:
    """SimpleDecoder's by-index surface over real frames: `length` may overstate the frames (as container
    metadata can); indices past the real end come back missing; `fail(first_index)` may raise."""

    def __init__(self, bgr: torch.Tensor, length: int | None = None, fail=None, before_request=None):
        self.rgb = bgr.flip(-1).contiguous()
        self.length = FRAMES if length is None else length
        self.fail = fail
        self.before_request = before_request
        self.buffer = torch.empty((0,), dtype=torch.uint8)

    def __len__(self) -> int:
        return self.length

    def get_batch_frames_by_index(self, indices: list[int]) -> list[torch.Tensor]:
        assert indices == sorted(set(indices)) and indices[-1] < self.length
        if self.before_request:
            self.before_request(indices)
        if self.fail and self.fail(indices[0]):
            raise RuntimeError(f"stand-in decode error at {indices[0]}\nsecond line of a native message")
        real = [i for i in indices if i < self.rgb.shape[0]]
        if self.buffer.shape[:1] != (len(indices),):
            self.buffer = torch.empty((len(indices), *self.rgb.shape[1:]), dtype=torch.uint8)
        self.buffer.fill_(0)  # the previous request's frames are gone now
        self.buffer[: len(real)] = self.rgb[real]
        return [self.buffer[j] for j in range(len(real))]


def _reader(clip, sessions: int, segment: int, **stand_in) -> SegmentedFrameReader:
    path, frames = clip
    return SegmentedFrameReader(path, lambda stream: IndexedStandIn(frames, **stand_in), sessions, segment=segment)


def _read_all(reader, n: int) -> torch.Tensor:
    parts = []
    try:
        while (block := reader.read(n)) is not None:
            assert 1 <= block.shape[0] <= n
            parts.append(block.clone())
    finally:
        reader.close()
    return torch.cat(parts)


def _session_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nvdec-session-") and t.is_alive()]


@pytest.mark.parametrize("segment", [24, 64])
@pytest.mark.parametrize("sessions", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 7, 32, 1000])
def test_frames_equal_the_sequential_read(clip, sessions, segment, n):
    reader = _reader(clip, sessions, segment)
    assert reader.segments[-1][1] - reader.segments[-1][0] < segment  # the last segment is a partial one
    got = _read_all(reader, n)
    assert got.shape == clip[1].shape
    assert torch.equal(got, clip[1])
    assert _session_threads() == []


def test_workers_never_hold_more_than_one_segment_ahead(clip):
    sessions, segment = 2, 24
    asked: list[int] = []
    reader = _reader(clip, sessions, segment, before_request=lambda indices: asked.append(len(indices)))
    for _ in range(60_000):  # until the sessions have filled their share (no time is asserted)
        if reader.frames_ahead >= sessions * segment:
            break
        time.sleep(0.001)  # lets the workers run; were they unbounded they would decode all 100 frames
    reader.close()
    assert reader.frames_ahead == 0 and sum(asked) == sessions * segment  # each session: one segment, no more

    def check(indices: list[int]) -> None:  # before each request: decoded but not handed out, plus what it asks for
        assert holder[0].frames_ahead + len(indices) <= sessions * segment

    holder: list[SegmentedFrameReader] = []
    holder.append(_reader(clip, sessions, segment, before_request=lambda indices: holder and check(indices)))
    assert torch.equal(_read_all(holder[0], 1), clip[1])  # a slow consumer


class RecordingStreams(segmented.HostStreams):
    """The stream handling as a log: which stream each copy ran on, when it was waited for, what the
    consumer was made to wait on."""

    def __init__(self):
        self.lock = threading.Lock()
        self.finished: dict[str, int] = {}
        self.handed: list[tuple[str, int]] = []

    def worker_stream(self, worker: int) -> str:
        return f"stream{worker}"

    def begin(self, worker: int) -> str:
        return f"stream{worker}"

    def finish(self, stream: str) -> tuple[str, int]:
        with self.lock:
            self.finished[stream] = self.finished.get(stream, 0) + 1
            return stream, self.finished[stream]

    def hand_over(self, frames: torch.Tensor, ready: tuple[str, int]) -> None:
        with self.lock:
            self.handed.append(ready)


def test_each_copy_is_finished_before_the_next_request_and_handed_over_once(clip):
    path, frames = clip
    streams = RecordingStreams()
    requests: dict[str, int] = {}

    def open_decoder(stream: str) -> IndexedStandIn:
        def before_request(indices: list[int]) -> None:  # every earlier copy out of the buffer is done
            with streams.lock:
                assert streams.finished.get(stream, 0) == requests.get(stream, 0)
                requests[stream] = requests.get(stream, 0) + 1

        return IndexedStandIn(frames, before_request=before_request)

    reader = SegmentedFrameReader(path, open_decoder, 3, segment=20, streams=streams)
    assert torch.equal(_read_all(reader, 13), frames)
    assert set(requests) == {"stream0", "stream1", "stream2"}  # each session decodes on its own stream
    assert sum(requests.values()) == sum(streams.finished.values()) == -(-20 // SLICE) * 5
    assert sorted(streams.handed) == sorted(set(streams.handed)) and len(streams.handed) == sum(requests.values())


@pytest.mark.parametrize("extra", [7, 30])  # within the last segment, and whole segments past the end
def test_metadata_overcount_ends_where_the_frames_end(clip, extra):
    reader = _reader(clip, 4, 20, length=FRAMES + extra)
    assert reader.total == FRAMES + extra
    assert torch.equal(_read_all(reader, 32), clip[1])


def test_decoder_error_in_the_last_segment_is_the_end_of_the_stream(clip):
    reader = _reader(clip, 2, 20, fail=lambda first: first >= 88)  # the last segment: 80..99, asked 8 at a time
    got = _read_all(reader, 5)
    assert got.shape[0] == 88 and torch.equal(got, clip[1][:88])  # the request from frame 88 failed: the end


def test_decoder_error_in_a_middle_segment_is_one_line_naming_the_video(clip):
    reader = _reader(clip, 3, 24, fail=lambda first: 48 <= first < 72)
    handed = []
    with pytest.raises(RuntimeError, match="failed on video .*pan.mp4 .*ULTRALYTICS_NVDEC_SESSIONS=1") as info:
        while (block := reader.read(10)) is not None:
            handed.append(block.clone())
    reader.close()
    assert "\n" not in str(info.value)
    assert torch.equal(torch.cat(handed), clip[1][:40])  # every frame before the failed one, in order
    assert _session_threads() == []


def test_session_that_cannot_open_is_one_line_naming_the_video(clip):
    path, frames = clip
    opened = []

    def open_decoder(stream):
        opened.append(stream)
        if len(opened) == 3:  # the third session (worker 2: frames 40..59)
            raise OSError("no NVDEC session left")
        return IndexedStandIn(frames)

    reader = SegmentedFrameReader(path, open_decoder, 3, segment=20)
    with pytest.raises(RuntimeError, match=r"^NVDEC session \d failed on video .*pan.mp4 .*no NVDEC session left"):
        _read_all(reader, 16)
    assert _session_threads() == []


def test_close_mid_video_joins_every_worker(clip):
    reader = _reader(clip, 4, 20)  # 4 x 20 frames held at most, fewer than the 100: session 0 must wait
    assert reader.read(5) is not None
    assert _session_threads()
    reader.close()
    assert _session_threads() == []
    assert reader.read(5) is None


def test_consumer_stopping_early_closes_the_reader(clip):
    path, frames = clip
    source = DeviceDecodedSource(
        load_inference_source(str(path), batch=4),
        upload=torch.from_numpy,
        to_batch=lambda *batch: batch,
        open_video=lambda p: SegmentedFrameReader(p, lambda s: IndexedStandIn(frames), 4, segment=20),
        video_info=video_info,
    )
    batches = iter(source)
    next(batches)
    assert _session_threads()
    batches.close()  # what predict's break / an exception does to the generator
    assert _session_threads() == []


@pytest.mark.parametrize("vid_stride", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 4, 32])
def test_vid_stride_and_counts_through_the_source_are_unchanged(clip, batch, vid_stride):
    path, frames = clip

    def source(open_video):
        return DeviceDecodedSource(
            load_inference_source(str(path), batch=batch, vid_stride=vid_stride),
            upload=torch.from_numpy,
            to_batch=lambda paths, fs, infos: (paths, [f.numpy() for f in fs], infos),
            open_video=open_video,
            video_info=video_info,
        )

    ours = list(source(lambda p: SegmentedFrameReader(p, lambda s: IndexedStandIn(frames), 3, segment=24)))
    sequential = list(source(lambda p: OpenCVFrameReader(p, torch.device("cpu"))))
    cpu = list(load_inference_source(str(path), batch=batch, vid_stride=vid_stride))
    assert [b[2] for b in ours] == [b[2] for b in sequential] == [b[2] for b in cpu]
    for (_, images, _), (_, ref, _) in zip(ours, cpu):
        for a, b in zip(images, ref):
            np.testing.assert_array_equal(a, b)
    assert sum(len(b[0]) for b in ours) == FRAMES // vid_stride


def test_failure_before_the_first_frame_falls_back_and_after_it_propagates(clip):
    path, frames = clip
    failing = _reader(clip, 2, 24, fail=lambda first: first < 24)  # session 0 fails on its first request
    errors = []

    def fallback(error):
        errors.append(error)
        return OpenCVFrameReader(path, torch.device("cpu"))

    assert torch.equal(_read_all(FallbackBeforeFirstFrame(failing, fallback), 9), clip[1])
    assert len(errors) == 1 and "pan.mp4" in str(errors[0])
    late = FallbackBeforeFirstFrame(_reader(clip, 2, 24, fail=lambda first: first >= 24 and first < 48), fallback)
    with pytest.raises(RuntimeError, match="failed on video"):
        _read_all(late, 9)
    assert len(errors) == 1 and _session_threads() == []


def test_segment_length_rules():
    for total in (1, 23, segmented.MIN_SEGMENT):  # short videos: one segment, i.e. one session
        assert segment_frames(total, 4) >= total
    for total, sessions in ((300, 4), (900, 4), (900, 2), (100_000, 4)):
        length = segment_frames(total, sessions)
        assert length % SLICE == 0 and segmented.MIN_SEGMENT <= length <= segmented.MAX_SEGMENT
        assert -(-total // length) >= min(sessions, -(-total // segmented.MAX_SEGMENT))  # every session has work
    for h, w in ((720, 1280), (1080, 1920), (2160, 3840)):  # frames held ahead stay within the budget
        length = segment_frames(100_000, 4, h * w * 3)
        assert length == segmented.MIN_SEGMENT or 4 * length * h * w * 3 <= segmented.AHEAD_BYTES


def test_sessions_switch(monkeypatch):
    name = settings_module.SESSIONS_ENV
    assert name in settings_module.SWITCHES
    monkeypatch.delenv(name, raising=False)
    assert settings_module.nvdec_sessions() == settings_module.DEFAULT_NVDEC_SESSIONS == 4
    monkeypatch.setenv(name, " 2 ")
    assert settings_module.nvdec_sessions() == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=f"^{name}=.* is not valid: use a whole number of sessions") as info:
            settings_module.nvdec_sessions()
        assert "\n" not in str(info.value)


def test_fixture_frames_are_what_opencv_decodes(clip):
    """The stand-in's frames are an independent decode of the file (not the reader under test)."""
    path, frames = clip
    cap = cv2.VideoCapture(str(path))
    ok, first = cap.read()
    cap.release()
    assert ok and np.array_equal(first, frames[0].numpy())


def test_open_nvdec_reader_keeps_one_session_when_asked_threaded_or_short(clip, monkeypatch):
    import ultralytics.gpu.video_decode as video_decode

    path, frames = clip
    length = [FRAMES]
    segmented_readers: list[SegmentedFrameReader] = []

    class OneSession:  # stands in for NvdecFrameReader, today's sequential reader
        def __init__(self, *args):
            pass

    def segmented_reader(path, device, stream, sessions):  # the contract: None when one session would do
        reader = SegmentedFrameReader(path, lambda s: IndexedStandIn(frames, length=length[0]), sessions)
        segmented_readers.append(reader)
        if reader.sessions <= 1:
            reader.close()
            return None
        return reader

    monkeypatch.setattr(video_decode, "NvdecFrameReader", OneSession)
    monkeypatch.setattr(video_decode, "segmented_nvdec_reader", segmented_reader)
    monkeypatch.delenv(settings_module.READER_ENV, raising=False)
    cpu = torch.device("cpu")
    reader = video_decode.open_nvdec_reader(path, cpu, None, 4)
    assert isinstance(reader, SegmentedFrameReader) and reader.sessions > 1
    assert torch.equal(_read_all(reader, 32), frames)
    assert isinstance(video_decode.open_nvdec_reader(path, cpu, None, 1), OneSession)
    assert len(segmented_readers) == 1  # one session asked: no segmented reader was even opened
    length[0] = segmented.MIN_SEGMENT  # a short video: one segment, so today's reader
    assert isinstance(video_decode.open_nvdec_reader(path, cpu, None, 4), OneSession)
    assert segmented_readers[-1].sessions == 1
    monkeypatch.setenv(settings_module.READER_ENV, "threaded")  # PyNvVideoCodec's own decode-ahead thread
    length[0] = FRAMES
    assert isinstance(video_decode.open_nvdec_reader(path, cpu, None, 4), OneSession)
    assert len(segmented_readers) == 2 and _session_threads() == []


def test_overcount_failing_before_the_last_segment_still_ends_cleanly(clip):
    """Metadata one frame long puts a 1-frame segment last; the real end then fails a request of the
    segment before it. The one-session reader ends there cleanly; so must the segmented one."""
    reader = _reader(clip, 4, 20, length=FRAMES + 1, fail=lambda first: first >= 96)
    assert reader.segments[-1] == (FRAMES, FRAMES + 1)
    got = _read_all(reader, 32)
    assert torch.equal(got, clip[1][:96])


class FailsOn(IndexedStandIn):
    """A stand-in whose request fails whenever it includes frame `bad`."""

    def __init__(self, bgr, bad: int, **kw):
        super().__init__(bgr, **kw)
        self.bad = bad

    def get_batch_frames_by_index(self, indices):
        if self.bad in indices:
            raise RuntimeError(f"cannot decode frame {self.bad}")
        return super().get_batch_frames_by_index(indices)


def test_frames_before_a_failing_one_in_the_same_request_are_kept(clip):
    path, frames = clip
    reader = SegmentedFrameReader(path, lambda s: FailsOn(frames, 97), 3, segment=24)
    got = _read_all(reader, 10)
    assert torch.equal(got, frames[:97])  # 96 (its request's first frame) is kept: only 97 on is lost


def test_a_later_session_that_cannot_open_is_an_error_before_the_first_frame(clip):
    """Every session is open before a frame goes out, so the caller can still fall back to one session."""
    path, frames = clip
    opened = []

    def open_decoder(stream):
        opened.append(stream)
        if len(opened) == 2:  # session 1 (frames 20..39 and 80..99)
            raise OSError("no NVDEC session left")
        return IndexedStandIn(frames)

    fallbacks = []

    def fallback(error):
        fallbacks.append(error)
        return OpenCVFrameReader(path, torch.device("cpu"))

    reader = FallbackBeforeFirstFrame(SegmentedFrameReader(path, open_decoder, 2, segment=20), fallback)
    assert torch.equal(_read_all(reader, 16), frames)
    assert len(fallbacks) == 1 and "no NVDEC session left" in str(fallbacks[0])
    assert _session_threads() == []


def test_very_large_frames_use_fewer_sessions(clip):
    path, frames = clip
    huge = segmented.AHEAD_BYTES // (2 * 24)  # two sessions of 24-frame segments fill the budget
    reader = SegmentedFrameReader(path, lambda s: IndexedStandIn(frames), 4, segment=24, frame_bytes=huge)
    try:
        assert reader.sessions == 2
    finally:
        reader.close()


def test_sessions_for_decides_before_any_thread_starts():
    """`segmented_nvdec_reader` asks this before it builds a reader: a short video or huge frames get one
    sequential session (no threads started), a long 720p video the sessions asked for."""
    assert segmented.sessions_for(64, 4, segment_frames(64, 4)) == 1
    assert segmented.sessions_for(900, 4, 256, 720 * 1280 * 3) == 4
    assert segmented.sessions_for(900, 4, 256) == 4 and segmented.sessions_for(300, 8, 64) == 5
    assert segmented.sessions_for(100_000, 4, 32, segmented.AHEAD_BYTES // 64) == 2


class SequencedStreams(RecordingStreams):
    """RecordingStreams whose events carry a global sequence number, and which notes when a salvaged
    slice was stacked: the consumer must wait on an event recorded after that stack (on CUDA the stack is
    a kernel on the session's stream, and an earlier event lets the letterbox read it unwritten)."""

    def __init__(self):
        super().__init__()
        self.seq = 0
        self.stacked: dict[int, int] = {}  # id of a stacked tensor -> sequence number of the stack
        self.violations: list[tuple[int, int]] = []

    def tick(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    def finish(self, stream: str) -> tuple[str, int]:
        return stream, self.tick()

    def hand_over(self, frames: torch.Tensor, ready: tuple[str, int]) -> None:
        stacked_at = self.stacked.get(id(frames))
        if stacked_at is not None and ready[1] < stacked_at:
            self.violations.append((stacked_at, ready[1]))
        super().hand_over(frames, ready)


def test_salvaged_frames_are_ready_after_their_stack(clip, monkeypatch):
    path, frames = clip
    streams = SequencedStreams()
    real_stack = torch.stack

    def stack(tensors, *args, **kwargs):
        out = real_stack(tensors, *args, **kwargs)
        streams.stacked[id(out)] = streams.tick()
        return out

    class FailsPast91(IndexedStandIn):
        def get_batch_frames_by_index(self, indices):
            if indices[-1] >= 92:  # the container says 100 frames; the file breaks at 92
                raise RuntimeError("stand-in decode error")
            return super().get_batch_frames_by_index(indices)

    monkeypatch.setattr(torch, "stack", stack)
    reader = SegmentedFrameReader(path, lambda stream: FailsPast91(frames), 2, segment=20, streams=streams)
    got = _read_all(reader, 16)
    assert got.shape[0] == 92 and torch.equal(got, frames[:92])  # 88..91 salvaged one by one
    assert streams.violations == []
