"""File sources decode in a pool of threads: same order and bytes as one at a time; a corrupt file is
one warning naming it, and every good image still gets its result."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest

from tests.conftest import SHAPES
from ultralytics import YOLO
from ultralytics.data.decode import DecodePool
from ultralytics.data.loaders import load_inference_source


def val_images(n: int) -> list:
    return sorted((SHAPES / "val" / "images").glob("*.jpg"))[:n]


def test_ordered_map_keeps_order_and_bounds_the_window(monkeypatch):
    monkeypatch.setenv("ULTRALYTICS_DECODE_WORKERS", "4")
    pool = DecodePool()
    in_flight, most, lock = [0], [0], threading.Lock()

    def slow(i: int) -> int:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.002 * ((7 * i) % 5))  # later items often finish first
        with lock:
            in_flight[0] -= 1
        return i * i

    got = [f.result() for f in pool.ordered_map(slow, range(40), ahead=6)]
    assert got == [i * i for i in range(40)]
    assert pool.workers == 4 and 1 < most[0] <= 4


def test_pool_decodes_the_same_frames_as_one_thread(tmp_path, monkeypatch):
    for p in val_images(12):
        shutil.copy(p, tmp_path / p.name)
    monkeypatch.setenv("ULTRALYTICS_DECODE_WORKERS", "1")
    serial = [b for b in load_inference_source(tmp_path, batch=5)]
    monkeypatch.setenv("ULTRALYTICS_DECODE_WORKERS", "3")
    import ultralytics.data.decode as decode

    monkeypatch.setattr(decode, "_POOL", DecodePool())
    pooled = [b for b in load_inference_source(tmp_path, batch=5)]
    assert [b[0] for b in pooled] == [b[0] for b in serial] and [len(b[1]) for b in pooled] == [5, 5, 2]
    for (_, a, _), (_, b, _) in zip(serial, pooled):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("stream", [True, False])
def test_folder_with_a_corrupt_jpeg(tmp_path, shapes_pt, log_lines, stream):
    """Issue 13 / 14 item 10: one bad file among good ones."""
    good = val_images(7)
    for p in good:
        shutil.copy(p, tmp_path / p.name)
    bad = tmp_path / f"{good[3].stem}_broken.jpg"  # sorts among the good ones
    bad.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    results = YOLO(shapes_pt).predict(tmp_path, imgsz=320, batch=3, stream=stream, verbose=False)
    names = [r.path.split("/")[-1] for r in results]
    assert names == [p.name for p in good]
    warnings = [line for line in log_lines if "broken" in line]
    assert len(warnings) == 1 and str(bad) in warnings[0], log_lines


def test_a_source_of_only_corrupt_files_is_an_error(tmp_path, shapes_pt):
    (tmp_path / "a.jpg").write_bytes(b"not an image")
    (tmp_path / "b.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="could not decode image"):
        YOLO(shapes_pt).predict(tmp_path, imgsz=320, verbose=False)
