"""DeviceDecodedSource (data/gpu_sources.py) against the CPU loader: same paths, log lines, frames,
batch splits, vid_stride and frame counts, run on the CPU with OpenCV behind the decoder interfaces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.gpu_decode.conftest import VIDEO_FRAMES
from ultralytics.data.gpu_sources import DeviceDecodedSource
from ultralytics.data.loaders import load_inference_source
from ultralytics.gpu.video_decode import OpenCVFrameReader, video_info


def _cpu_source(source, batch: int, vid_stride: int = 1, jpeg_calls: list | None = None) -> DeviceDecodedSource:
    def decode_jpegs(datas):  # OpenCV behind the batched interface, recording each call's size
        jpeg_calls.append(len(datas))
        return [torch.from_numpy(cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR)) for d in datas]

    return DeviceDecodedSource(
        load_inference_source(source, batch=batch, vid_stride=vid_stride),
        upload=lambda image: torch.from_numpy(image),
        to_batch=lambda paths, frames, infos: (paths, [f.numpy() for f in frames], infos),
        decode_jpegs=decode_jpegs if jpeg_calls is not None else None,
        open_video=lambda path: OpenCVFrameReader(path, torch.device("cpu")),
        video_info=video_info,
    )


def _assert_same_batches(ours, reference) -> int:
    ours, reference = list(ours), list(reference)
    assert [len(b[0]) for b in ours] == [len(b[0]) for b in reference]
    for (paths, images, infos), (ref_paths, ref_images, ref_infos) in zip(ours, reference):
        assert paths == ref_paths
        assert infos == ref_infos
        for a, b in zip(images, ref_images):
            np.testing.assert_array_equal(a, b)
    return sum(len(b[0]) for b in ours)


@pytest.mark.parametrize("vid_stride", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 4, 32])
def test_video_batches_stride_and_counts_match_the_cpu_loader(video, batch, vid_stride):
    ours = _cpu_source(str(video), batch, vid_stride)
    n = _assert_same_batches(ours, load_inference_source(str(video), batch=batch, vid_stride=vid_stride))
    # independent count: the frames written, and (with PyAV) what FFmpeg decodes from the file itself;
    # the CPU rule keeps every vid_stride-th frame
    assert n == VIDEO_FRAMES // vid_stride
    try:
        import av
    except ImportError:
        return
    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == VIDEO_FRAMES


def test_mixed_sources_keep_order_and_jpeg_runs_fill_the_batch(h264_video, val_jpegs, photo_png):
    array = cv2.imread(str(photo_png))
    source = [*map(str, val_jpegs[:3]), str(h264_video), str(photo_png), *map(str, val_jpegs[3:]), array]
    calls: list[int] = []
    n = _assert_same_batches(
        _cpu_source(source, 4, 2, jpeg_calls=calls), load_inference_source(source, batch=4, vid_stride=2)
    )
    assert n == 3 + VIDEO_FRAMES // 2 + 1 + (len(val_jpegs) - 3) + 1
    # the PNG is read by OpenCV, not the JPEG decoder; JPEG runs never overflow the batch they start in
    assert sum(calls) == len(val_jpegs)
    assert calls[0] == 3 and max(calls) <= 4


def test_jpeg_runs_are_decoded_a_batch_at_a_time(val_jpegs):
    calls: list[int] = []
    paths = [str(p) for p in val_jpegs]
    _assert_same_batches(_cpu_source(paths, 3, jpeg_calls=calls), load_inference_source(paths, batch=3))
    # one decoder call per batch of the CPU loader (a list is one batch, as upstream runs it)
    assert calls == [len(images) for _, images, _ in load_inference_source(paths, batch=3)]
    assert sum(calls) == len(paths)


def test_missing_and_corrupt_files_fail_like_the_cpu_loader(tmp_path, val_jpegs):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\0" * 64)  # a JPEG header and nothing decodable after it

    def rejecting(datas):  # a device decoder that rejects what it cannot decode
        return [None for _ in datas]

    source = DeviceDecodedSource(
        load_inference_source([str(val_jpegs[0]), str(bad)]),
        upload=torch.from_numpy,
        to_batch=lambda *batch: batch,
        decode_jpegs=rejecting,
    )
    with pytest.raises(ValueError, match="could not decode image"):
        list(source)
    gone = tmp_path / "gone.jpg"
    gone.write_bytes(val_jpegs[0].read_bytes())
    source = DeviceDecodedSource(
        load_inference_source(str(gone)), upload=torch.from_numpy, to_batch=lambda *b: b, decode_jpegs=rejecting
    )
    gone.unlink()
    with pytest.raises(FileNotFoundError, match="image not found"):
        list(source)


def test_files_the_device_decoder_does_not_take_are_read_once_and_decoded_as_imread(
    tmp_path, val_jpegs, photo_png, monkeypatch
):
    """A PNG, a JPEG the device decoder rejects and an EXIF-rotated JPEG: each file's bytes are read once
    (the fallback decodes the bytes already read) and every frame equals what the CPU loader's imread gives."""
    from PIL import Image

    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": OpenCV's imread applies it
    Image.open(photo_png).convert("RGB").save(rotated, quality=90, exif=exif)
    paths = [str(photo_png), str(val_jpegs[0]), str(rotated)]

    reads: list[str] = []
    read_bytes, fromfile = Path.read_bytes, np.fromfile

    def counted_read_bytes(self):
        reads.append(str(self))
        return read_bytes(self)

    def counted_fromfile(file, *args, **kw):
        reads.append(str(file))
        return fromfile(file, *args, **kw)

    expected = [load_inference_source(p) for p in paths]  # resolved (and decoded below) before counting
    expected = [images[0] for e in expected for _, images, _ in e]
    monkeypatch.setattr(Path, "read_bytes", counted_read_bytes)
    monkeypatch.setattr(np, "fromfile", counted_fromfile)
    source = DeviceDecodedSource(
        load_inference_source(paths, batch=3),
        upload=torch.from_numpy,
        to_batch=lambda paths, frames, infos: frames,
        decode_jpegs=lambda datas: [None for _ in datas],  # rejects every JPEG it is given
    )
    frames = [f for batch in source for f in batch]
    assert sorted(reads) == sorted(paths)
    assert expected[2].shape[:2] == expected[0].shape[1::-1]  # the orientation was applied
    for frame, image in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(frame.numpy(), image)
