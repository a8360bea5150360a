"""GPU decoding on CUDA (skipped without it): nvJPEG against OpenCV within the measured tolerance,
NVDEC frames and counts against the CPU loader, predict with gpu_decode against CPU decoding."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch

from tests.gpu_decode.conftest import requires_cuda
from ultralytics.data.loaders import load_inference_source

pytestmark = requires_cuda

# nvJPEG vs libjpeg-turbo, measured on the H200 (docs/performance.md, "GPU decoding"): not bit-identical
# (a different IDCT and chroma upsampling). Worst image measured: mean 2.24 grey levels (shapes val,
# synthetic sharp colour edges), max 101; 720p photos: mean <= 0.68, max 40. Bounds just above those.
JPEG_MEAN_ABS = 3.0
JPEG_MAX_ABS = 128
# NVDEC + its NV12→RGB vs FFmpeg's decode + swscale (OpenCV): 720p H.264 frames measured mean 2.73,
# worst frame 5.28 grey levels, max 24
VIDEO_MEAN_ABS = 6.0


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


def test_nvjpeg_matches_opencv_within_the_measured_tolerance(val_jpegs, tmp_path):
    pytest.importorskip("torchvision")
    from ultralytics.gpu.decode import decode_jpegs

    photos = sorted((val_jpegs[0].parents[3] / "images").glob("*.png"))
    encoded = [cv2.imencode(".jpg", cv2.imread(str(p)), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for p in photos]
    datas = [p.read_bytes() for p in val_jpegs] + encoded
    frames = decode_jpegs(datas, torch.device("cuda"))
    for data, frame in zip(datas, frames):
        ref = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        got = frame.cpu().numpy()
        assert got.shape == ref.shape and got.dtype == np.uint8
        d = _diff(got, ref)
        assert d.mean() <= JPEG_MEAN_ABS and d.max() <= JPEG_MAX_ABS, (d.mean(), d.max())


def test_nvdec_source_matches_the_cpu_loader(device_video):
    from ultralytics.gpu.decode_source import gpu_decoded
    from ultralytics.gpu.video_decode import nvdec_problem

    if nvdec_problem(torch.device("cuda")):
        pytest.skip(nvdec_problem(torch.device("cuda")))
    for batch, stride in ((4, 2), (32, 1)):
        ours = list(gpu_decoded(load_inference_source(str(device_video), batch=batch, vid_stride=stride), "cuda"))
        ref = list(load_inference_source(str(device_video), batch=batch, vid_stride=stride))
        assert [b[2] for b in ours] == [b[2] for b in ref]  # log lines: frame i/n, same counts
        for (_, images, _), (_, ref_images, _) in zip(ours, ref):
            images.device_frames.ready.synchronize()  # the host copies are done after this event
            device = images.device_frames.frames.cpu().numpy()
            for host, dev, r in zip(images, device, ref_images):
                np.testing.assert_array_equal(host, dev)  # the host copy is the device frame
                assert _diff(host, r).mean() <= VIDEO_MEAN_ABS


def test_without_nvdec_one_warning_and_opencv_frames(device_video, monkeypatch, caplog):
    import ultralytics.gpu.decode_source as decode_source

    monkeypatch.setattr(decode_source, "nvdec_problem", lambda device: "PyNvVideoCodec is not installed")
    logger = logging.getLogger("ultralytics")
    logger.addHandler(caplog.handler)
    source = load_inference_source(str(device_video), batch=8)
    try:
        with caplog.at_level(logging.WARNING, logger="ultralytics"):
            decoded = decode_source.gpu_decoded(source, "cuda")
            ours = list(decoded)
    finally:
        logger.removeHandler(caplog.handler)
    assert sum("gpu_decode=True" in r.getMessage() for r in caplog.records) == 1
    assert decoded is source  # nothing here decodes on the device: the CPU path itself (its video thread)
    ref = list(load_inference_source(str(device_video), batch=8))
    assert len(ours) == len(ref)
    for (_, images, _), (_, ref_images, _) in zip(ours, ref):
        for a, b in zip(images, ref_images):
            np.testing.assert_array_equal(a, b)


def test_predict_with_gpu_decode_finds_the_cpu_boxes(shapes_pt, val_jpegs):
    pytest.importorskip("torchvision")
    from ultralytics import YOLO

    model = YOLO(str(shapes_pt))
    kw = dict(device=0, imgsz=320, batch=4, verbose=False)
    cpu = model.predict([str(p) for p in val_jpegs], **kw)
    gpu = model.predict([str(p) for p in val_jpegs], gpu_decode=True, **kw)
    for a, b in zip(cpu, gpu):  # the same boxes, up to order (confidences move a little; NMS sorts by them)
        da, db = a.boxes.data.numpy(), b.boxes.data.numpy()
        assert da.shape == db.shape
        for box in da:
            same_class = db[db[:, 5] == box[5]]
            nearest = same_class[np.abs(same_class[:, :4] - box[:4]).max(1).argmin()]
            assert (
                np.abs(nearest[:4] - box[:4]).max() <= 2.0
            )  # all 100 val images at 320: matched boxes moved <= 1.84 px
            assert abs(nearest[4] - box[4]) <= 0.15  # held on these 7 on the H200 (0.33 worst over all 100)


def test_fancy_chroma_brings_nvjpeg_closer_to_opencv(val_jpegs, monkeypatch):
    """ULTRALYTICS_GPU_JPEG_CHROMA=fancy: on the CPU stand-in the rebuild cut the mean difference 20x;
    if nvJPEG did not repeat its 4:2:0 chroma (the premise of gpu/jpeg_chroma.py), this fails."""
    pytest.importorskip("torchvision")
    from ultralytics.gpu.decode import decode_jpegs
    from ultralytics.gpu.jpeg_chroma import CHROMA_ENV
    from ultralytics.utils.settings import JPEG_DECODER_ENV

    monkeypatch.setenv(JPEG_DECODER_ENV, "nvjpeg")  # torchvision's nvJPEG, not the hardware decoder
    monkeypatch.setenv(CHROMA_ENV, "nvjpeg")  # nvJPEG's own chroma first (the rebuild is the default)
    datas = [p.read_bytes() for p in val_jpegs]
    refs = [cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR) for d in datas]
    plain = [_diff(f.cpu().numpy(), r).mean() for f, r in zip(decode_jpegs(datas, torch.device("cuda")), refs)]
    monkeypatch.setenv(CHROMA_ENV, "fancy")
    fancy = [_diff(f.cpu().numpy(), r).mean() for f, r in zip(decode_jpegs(datas, torch.device("cuda")), refs)]
    assert np.mean(fancy) < np.mean(plain) / 3, (np.mean(fancy), np.mean(plain))
