"""Every source kind through load_inference_source, and the errors for bad ones."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import IMAGES
from ultralytics.data.loaders import imread, load_inference_source

PHOTOS = sorted(IMAGES.glob("*.png"))


def collect(source, **kw):
    return list(load_inference_source(source, **kw))


def test_directory_batches_and_infos():
    batches = collect(IMAGES, batch=2)
    assert [len(b[1]) for b in batches] == [2, 2, 1]
    paths = [p for b in batches for p in b[0]]
    assert paths == [str(p) for p in PHOTOS]
    infos = [i for b in batches for i in b[2]]
    assert infos[0] == f"image 1/5 {PHOTOS[0]}: "
    for b in batches:
        for im in b[1]:
            assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3


def test_single_file_glob_and_list_match_opencv():
    camera = IMAGES / "camera.png"
    ((paths, images, _),) = collect(str(camera))
    np.testing.assert_array_equal(images[0], cv2.imread(str(camera)))  # gray file → 3 identical channels
    assert collect(str(IMAGES / "c*.png"))[0][0] == [str(IMAGES / "camera.png")]
    assert len(collect(str(IMAGES / "c*.png"), batch=8)[0][1]) == 3  # camera, chelsea, coffee
    listed = collect([IMAGES / "coffee.png", str(IMAGES / "chelsea.png")], batch=4)
    assert listed[0][0] == [str(IMAGES / "coffee.png"), str(IMAGES / "chelsea.png")]


def test_non_ascii_path(tmp_path):
    target = tmp_path / "fotos_ñ_写真" / "gato.png"
    target.parent.mkdir()
    shutil.copy(IMAGES / "chelsea.png", target)
    ((_, images, _),) = collect(target)
    np.testing.assert_array_equal(images[0], cv2.imread(str(IMAGES / "chelsea.png")))


def test_numpy_sources():
    bgr = cv2.imread(str(IMAGES / "chelsea.png"))
    gray = cv2.imread(str(IMAGES / "camera.png"), cv2.IMREAD_GRAYSCALE)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    ((paths, images, infos),) = collect([bgr, gray, bgra], batch=3)
    assert paths == ["image0.jpg", "image1.jpg", "image2.jpg"]
    np.testing.assert_array_equal(images[0], bgr)
    np.testing.assert_array_equal(images[1], np.repeat(gray[..., None], 3, 2))
    np.testing.assert_array_equal(images[2], bgr)
    ((_, single, _),) = collect(bgr)
    np.testing.assert_array_equal(single[0], bgr)


def test_in_memory_frames_skip_the_decode_machinery(monkeypatch):
    """A list of arrays is handed out as it is, in order with its infos, without a future per frame
    (256 of them cost 0.6 ms on the dev machine before a long call's first batch); files still go through the pool."""
    from ultralytics.data import loaders

    def no_futures(entries, ahead=None):
        raise AssertionError("in-memory frames went through the decode futures")

    bgr = cv2.imread(str(IMAGES / "chelsea.png"))
    frames = [bgr, bgr[:, ::-1].copy(), bgr[::2].copy()]
    monkeypatch.setattr(loaders, "_decoded_in_order", no_futures)
    ((paths, images, infos),) = collect(frames)
    assert all(a is b for a, b in zip(images, frames))
    assert infos == [f"image {i}/3 image{i - 1}.jpg: " for i in (1, 2, 3)]
    with pytest.raises(AssertionError, match="decode futures"):
        collect([IMAGES / "coffee.png", bgr])


def test_pil_sources_are_converted_to_bgr():
    pil = Image.open(IMAGES / "coffee.png")
    ((paths, images, _),) = collect([pil, Image.open(IMAGES / "camera.png")], batch=2)
    np.testing.assert_array_equal(images[0], cv2.imread(str(IMAGES / "coffee.png")))
    np.testing.assert_array_equal(images[1], cv2.imread(str(IMAGES / "camera.png")))
    assert paths[0].endswith("coffee.png")


def test_several_pil_images_convert_on_the_decode_pool_in_order(monkeypatch):
    """A list with several PIL images converts them on the decode pool's threads, each to the BGR array
    it gives alone, in the list's order among numpy items and paths, names kept."""
    import threading

    from ultralytics.data import decode, loaders

    monkeypatch.setenv("ULTRALYTICS_DECODE_WORKERS", "3")
    monkeypatch.setattr(decode, "_POOL", decode.DecodePool())
    threads = []
    convert = loaders._pil_to_bgr

    def spy(image):
        threads.append(threading.current_thread().name)
        return convert(image)

    monkeypatch.setattr(loaders, "_pil_to_bgr", spy)
    coffee, camera = Image.open(IMAGES / "coffee.png"), Image.open(IMAGES / "camera.png")
    bgr = cv2.imread(str(IMAGES / "chelsea.png"))
    rgba = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA))
    source = [coffee, bgr, str(IMAGES / "chelsea.png"), camera, rgba]
    ((paths, images, _),) = collect(source, batch=5)
    assert paths[0].endswith("coffee.png") and paths[1] == "image1.jpg" and paths[3].endswith("camera.png")
    assert paths[4] == "image4.jpg"
    want = [cv2.imread(str(IMAGES / n)) for n in ("coffee.png", "chelsea.png", "chelsea.png", "camera.png")] + [bgr]
    for got, expected in zip(images, want):
        np.testing.assert_array_equal(got, expected)
    assert len(threads) == 3 and all(t.startswith("ultralytics-decode") for t in threads)
    threads.clear()
    lazy = Image.open(IMAGES / "coffee.png")  # not loaded yet: one object listed twice is loaded once
    ((_, twice, _),) = collect([lazy, camera, lazy], batch=3)
    assert len(threads) == 2
    np.testing.assert_array_equal(twice[0], twice[2])
    assert twice[0] is not twice[2]  # each item its own array, as before
    np.testing.assert_array_equal(twice[0], cv2.imread(str(IMAGES / "coffee.png")))


def test_tensor_source_bypasses_decoding():
    t = torch.rand(3, 3, 64, 96)
    batches = collect(t, batch=2)
    assert [b[1].shape[0] for b in batches] == [3]  # a tensor is one batch whatever `batch` says, as upstream
    assert isinstance(batches[0][1], torch.Tensor)
    torch.testing.assert_close(torch.cat([b[1] for b in batches]), t)
    ((_, chw, _),) = collect(t[0])
    assert chw.shape == (1, 3, 64, 96)


@pytest.mark.parametrize(
    ("tensor", "match"),
    [
        (torch.rand(1, 4, 64, 64), "3 RGB channels"),
        (torch.rand(64, 64), "3 RGB channels"),
        (torch.rand(1, 3, 60, 64), "multiples of the model stride"),
        (torch.rand(1, 3, 64, 64) * 255, "0..1"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "float"),
    ],
)
def test_bad_tensors(tensor, match):
    with pytest.raises(ValueError, match=match):
        load_inference_source(tensor)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    assert writer.isOpened()
    for i in range(12):
        frame = np.full((64, 96, 3), i * 20, np.uint8)
        writer.write(frame)
    writer.release()
    return path


def test_video_frames_and_infos(video):
    batches = collect(video, batch=5)
    frames = [im for b in batches for im in b[1]]
    assert [len(b[1]) for b in batches] == [5, 5, 2]
    assert all(f.shape == (64, 96, 3) for f in frames)
    # MJPG is lossy but flat grey frames survive within a few levels: frame i is grey i*20
    assert [int(round(f.mean() / 20)) for f in frames] == list(range(12))
    infos = [i for b in batches for i in b[2]]
    assert infos[2] == f"video 1/1 (frame 3/12) {video}: "


def test_video_stride(video):
    frames = [im for b in collect(video, vid_stride=3) for im in b[1]]
    assert [int(round(f.mean() / 20)) for f in frames] == [2, 5, 8, 11]
    infos = [i for b in collect(video, vid_stride=3) for i in b[2]]
    assert infos[-1] == f"video 1/1 (frame 4/4) {video}: "


def test_mixed_directory_images_then_video(tmp_path, video):
    shutil.copy(video, tmp_path / "b.avi")
    shutil.copy(IMAGES / "chelsea.png", tmp_path / "a.png")
    infos = [i for b in collect(tmp_path) for i in b[2]]
    assert infos[0].startswith("image 1/2 ") and infos[1].startswith("video 2/2 (frame 1/12)")
    assert len(infos) == 13


def test_source_can_be_iterated_twice():
    source = load_inference_source(IMAGES, batch=5)
    assert len(source) == 5
    assert [b[0] for b in source] == [b[0] for b in source]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="source not found"):
        load_inference_source(tmp_path / "missing.jpg")
    with pytest.raises(FileNotFoundError, match="no images or videos"):
        load_inference_source(tmp_path)
    with pytest.raises(FileNotFoundError, match="match the pattern"):
        load_inference_source(str(tmp_path / "*.jpg"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        load_inference_source(tmp_path / "notes.txt")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 definitely not a jpeg")
    source = load_inference_source(broken)  # resolving is lazy; decoding fails with the path
    with pytest.raises(ValueError, match="could not decode image .*broken.jpg"):
        list(source)
    with pytest.raises(ValueError, match="uint8"):
        load_inference_source(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        load_inference_source(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        load_inference_source([])
    with pytest.raises(ValueError, match="not supported"):
        load_inference_source("https://example.com/a.jpg")
    with pytest.raises(TypeError, match="unsupported source type"):
        load_inference_source(3.5)
    with pytest.raises(ValueError, match="batch"):
        load_inference_source(IMAGES, batch=0)
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.mp4"):
        list(load_inference_source(bad_video))
    with pytest.raises(FileNotFoundError, match="image not found"):
        imread(tmp_path / "gone.png")


def test_directory_listing_matches_the_pathlib_rule(tmp_path):
    """The scandir listing keeps the rule it replaced: media files only (any case of suffix), no
    sub-directories, sorted by path; the order is the one the old per-file Path listing gave."""
    from ultralytics.data.loaders import IMG_FORMATS, VID_FORMATS, _media_in, _media_in_directory

    names = ["b.JPG", "a.png", "c.mp4", "notes.txt", "z.jpeg", "A.webp", ".jpg", "noext", "x.tar.png", "..jpg", "d."]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()  # a directory with an image's name is not a file
    got = [(e.kind, e.path) for e in _media_in_directory(tmp_path)]
    assert got == [(e.kind, e.path) for e in _media_in(list(tmp_path.iterdir()))]
    # both share one suffix rule now: pathlib's own reading of each name is the independent reference
    media = IMG_FORMATS | VID_FORMATS
    by_pathlib = sorted(p for p in tmp_path.iterdir() if p.is_file() and p.suffix[1:].lower() in media)
    assert [p for _, p in got] == [str(p) for p in by_pathlib]
    assert [p.rsplit("/", 1)[-1] for _, p in got] == [
        "..jpg",
        "A.webp",
        "a.png",
        "b.JPG",
        "c.mp4",
        "x.tar.png",
        "z.jpeg",
    ]
    assert dict(got)["video"].endswith("c.mp4")


def test_decoding_runs_a_bounded_batch_ahead(tmp_path, monkeypatch):
    """Files are decoded at most 2 per worker plus min(batch, DECODE_AHEAD_EXTRA_MAX) ahead of the frames
    taken: a batch of 64 waiting to be taken does not hold 64 more decoded frames."""
    import threading
    import time

    from ultralytics.data import decode, loaders

    for i in range(160):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((8, 8, 3), i, np.uint8))
    monkeypatch.setenv("ULTRALYTICS_DECODE_WORKERS", "2")
    monkeypatch.setattr(decode, "_POOL", decode.DecodePool())
    started, lock = [0], threading.Lock()
    read = loaders._read_entry

    def counted(entry):
        with lock:
            started[0] += 1
        return read(entry)

    monkeypatch.setattr(loaders, "_read_entry", counted)
    batches = iter(load_inference_source(str(tmp_path), batch=64))
    paths, images, _ = next(batches)
    time.sleep(0.3)  # every decode the window allows has started by now
    assert len(images) == 64 and paths[0].endswith("000.png")
    assert loaders.decode_window(64) == 2 * 2 + loaders.DECODE_AHEAD_EXTRA_MAX
    assert 64 + 2 * 2 < started[0] <= 64 + loaders.decode_window(64)  # more than 2 per worker, within the cap
    assert loaders.decode_window(1) == 2 * 2 + 1
