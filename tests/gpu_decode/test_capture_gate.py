"""Decoder work and CUDA graph captures exclude each other (gpu/capture_gate.py).

On the H200 the first `predict(video, gpu_decode=True)` failed its graph capture ("operation failed due
to a previous error during capture") while 4 NVDEC sessions were opening and decoding in their threads;
the runner then ran eagerly for good. Here the gate itself, and that the multi-session reader calls its
decoders only through it, run on the CPU with a stand-in decoder; the capture side is checked on CUDA.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch

import ultralytics.gpu.segmented_decode as segmented
from tests.gpu_decode.test_segmented import FRAMES, IndexedStandIn, _read_all, clip  # noqa: F401 - clip: fixture
from ultralytics.gpu.capture_gate import CaptureGate, capture_gate
from ultralytics.gpu.segmented_decode import HostStreams, SegmentedFrameReader


def _started(target) -> threading.Thread:
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


def test_capture_waits_for_decoder_calls_in_flight_and_then_excludes_new_ones():
    gate = CaptureGate()
    events: list[str] = []
    inside, release = threading.Event(), threading.Event()

    def decoder():
        with gate.decoding():
            events.append("decode start")
            inside.set()
            release.wait(5)
            events.append("decode end")

    def capture():
        with gate.capturing():
            events.append("capture start")
            time.sleep(0.05)
            events.append("capture end")

    d = _started(decoder)
    assert inside.wait(5)
    c = _started(capture)
    time.sleep(0.1)
    assert events == ["decode start"]  # the capture waits for the call in flight

    def late_decoder():
        with gate.decoding():
            events.append("late decode")

    late = _started(late_decoder)
    time.sleep(0.1)
    assert "late decode" not in events  # a queued capture goes before new decoder calls
    release.set()
    for t in (d, c, late):
        t.join(5)
    assert events == ["decode start", "decode end", "capture start", "capture end", "late decode"]


def test_decoding_is_shared_and_reentrant_while_a_capture_waits():
    gate = CaptureGate()
    entered, release, captured = threading.Event(), threading.Event(), threading.Event()

    def other_decoder():
        with gate.decoding():
            entered.set()
            release.wait(5)

    def capture():
        with gate.capturing():
            captured.set()

    with gate.decoding():
        other = _started(other_decoder)
        assert entered.wait(5) and gate.decoding_now == 2  # two threads decode at once
        waiting = _started(capture)
        time.sleep(0.05)
        assert not captured.is_set()
        with gate.decoding():  # nested in the same thread: no deadlock behind the waiting capture
            pass
        release.set()
        other.join(5)
        assert not captured.is_set()  # this thread still decodes
    waiting.join(5)
    assert captured.is_set() and gate.decoding_now == 0


def test_decoders_parked_behind_an_interrupted_capture_go_on():
    """A capture whose wait is interrupted (Ctrl-C in a notebook) must not leave decoders parked behind it."""
    gate = CaptureGate()
    holding, release, parked, entered = threading.Event(), threading.Event(), threading.Event(), threading.Event()
    real_wait = gate._cond.wait

    def wait(timeout=None):
        if threading.current_thread().name == "capture":
            while not parked.is_set():  # a real wait (the lock released), until the test interrupts it
                real_wait(0.01)
            raise KeyboardInterrupt
        return real_wait(timeout)

    gate._cond.wait = wait

    def first_decoder():
        with gate.decoding():
            holding.set()
            release.wait(5)

    def capture():
        try:
            with gate.capturing():
                pass
        except KeyboardInterrupt:
            pass

    def second_decoder():
        with gate.decoding():
            entered.set()

    a = _started(first_decoder)
    assert holding.wait(5)
    c = threading.Thread(target=capture, name="capture", daemon=True)
    c.start()
    time.sleep(0.05)
    b = _started(second_decoder)
    time.sleep(0.1)  # b is parked behind the waiting capture
    parked.set()
    assert entered.wait(2), "the second decoder stayed parked after the capture gave up"
    release.set()
    for t in (a, b, c):
        t.join(5)


def test_a_capturing_thread_may_decode_but_not_capture_inside_decoding():
    gate = CaptureGate()
    with gate.capturing():
        with gate.decoding():
            assert gate.capturing_now
    with gate.decoding(), pytest.raises(RuntimeError, match="inside decoder work"):
        with gate.capturing():
            pass


def test_capture_gate_is_one_per_device():
    assert capture_gate("cpu") is capture_gate(torch.device("cpu"))


def test_multi_session_reader_calls_no_decoder_while_a_capture_holds_the_gate(clip, monkeypatch):  # noqa: F811
    """Opening and requests happen only inside the gate: none while it is held for a capture, and the
    frames still come out in order afterwards."""
    path, frames = clip
    monkeypatch.setattr(segmented, "SLICE_FRAMES", 8)
    gate = CaptureGate()
    calls: list[tuple[str, bool]] = []

    def open_decoder(stream):
        calls.append(("open", gate.capturing_now))
        return IndexedStandIn(frames, before_request=lambda idx: calls.append(("request", gate.capturing_now)))

    holding, done = threading.Event(), threading.Event()

    def capture():
        with gate.capturing():
            holding.set()
            done.wait(5)

    t = _started(capture)
    assert holding.wait(5)
    first = IndexedStandIn(frames, before_request=lambda idx: calls.append(("request", gate.capturing_now)))
    reader = SegmentedFrameReader(path, open_decoder, 3, segment=24, streams=HostStreams(gate), first_decoder=first)
    time.sleep(0.2)
    assert calls == []  # every session waits for the capture to end
    done.set()
    t.join(5)
    out = _read_all(reader, 10)
    assert torch.equal(out, frames)
    assert calls and not any(during for _, during in calls)
    assert ("open", False) in calls


@pytest.mark.skipif(not torch.cuda.is_available(), reason="captures CUDA graphs")
def test_cuda_graph_capture_waits_for_decoder_work():
    from ultralytics.gpu.graphs import CudaGraphRunner

    device = torch.device("cuda", torch.cuda.current_device())
    gate = capture_gate(device)
    runner = CudaGraphRunner(lambda x: x * 2 + 1, device)
    x = torch.ones(4, device=device)
    inside, release = threading.Event(), threading.Event()

    def decoder():
        with gate.decoding():
            inside.set()
            release.wait(5)

    d = _started(decoder)
    assert inside.wait(5)
    c = _started(lambda: runner.prepare(x))
    time.sleep(0.2)
    assert c.is_alive() and not runner.has(x)  # the capture waits for the decoder call
    release.set()
    d.join(5)
    c.join(10)
    assert runner.has(x) and runner.disabled_reason is None
    assert torch.equal(runner(x), x * 2 + 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="decodes on CUDA")
def test_cuda_gpu_decode_source_waits_for_a_capture(val_jpegs, monkeypatch):
    """decode_source's JPEG decodes and batch assembly hold the gate: none runs while a capture holds it."""
    import ultralytics.gpu.decode_source as decode_source
    from ultralytics.data.loaders import load_inference_source

    device = torch.device("cuda", torch.cuda.current_device())
    gate = capture_gate(device)
    calls: list[bool] = []
    real = decode_source.decode_jpegs
    monkeypatch.setattr(
        decode_source, "decode_jpegs", lambda datas, dev: calls.append(gate.capturing_now) or real(datas, dev)
    )
    holding, release = threading.Event(), threading.Event()

    def capture():
        with gate.capturing():
            holding.set()
            release.wait(5)

    t = _started(capture)
    assert holding.wait(5)
    source = decode_source.gpu_decoded(load_inference_source([str(p) for p in val_jpegs[:4]], batch=2), device)
    batches: list = []
    reader = _started(lambda: batches.extend(source))
    time.sleep(0.3)
    assert calls == [] and not batches  # waiting for the capture
    release.set()
    t.join(5)
    reader.join(10)
    # a list of images is one batch (as upstream runs it), whatever `batch` says
    assert sum(len(b[0]) for b in batches) == 4 and calls and not any(calls)
