"""`settings()` parses the switches once per set of values, yet follows every change of the environment."""

from __future__ import annotations

import os

import pytest

from ultralytics.utils.settings import settings


def test_settings_follow_the_environment_and_reuse_the_parse(monkeypatch):
    monkeypatch.setenv("ULTRALYTICS_GPU_CHUNK", "16")
    first = settings()
    assert first.gpu_chunk == 16 and settings() is first  # same values: the same parsed object
    monkeypatch.setenv("ULTRALYTICS_GPU_CHUNK", "8")
    assert settings().gpu_chunk == 8
    monkeypatch.setenv("ULTRALYTICS_GPU_FUSED", "0")
    assert settings().gpu_fused is False
    monkeypatch.delenv("ULTRALYTICS_GPU_FUSED")
    assert settings().gpu_fused is True


def test_a_bad_value_is_refused_every_time(monkeypatch):
    monkeypatch.setenv("ULTRALYTICS_GPU_CHUNK", "lots")
    for _ in range(2):
        with pytest.raises(ValueError, match="ULTRALYTICS_GPU_CHUNK='lots' is not valid"):
            settings()


def test_an_empty_value_means_the_default(monkeypatch):
    monkeypatch.setenv("ULTRALYTICS_GPU_FUSED", "")
    assert settings().gpu_fused is True


def test_a_bad_switch_stops_predict_in_one_line_before_any_image(monkeypatch, shapes_pt):
    """Read in a decode thread, the bad value used to look like an unreadable image (a warning per file)
    and end in 'generator raised StopIteration'."""
    from tests.conftest import IMAGES
    from ultralytics import YOLO

    monkeypatch.setenv("ULTRALYTICS_GPU_FUSED", "2")
    with pytest.raises(ValueError, match=r"^ULTRALYTICS_GPU_FUSED='2' is not valid: use '1' \(the default\) or '0'$"):
        YOLO(shapes_pt).predict(str(IMAGES), imgsz=64, device="cpu", verbose=False)


def test_the_portable_read_gives_the_same_switches(monkeypatch):
    """Where `os.environ` keeps no encoded `_data` dict (another Python), the switches are read through
    `os.environ.get`, with the same result."""
    from ultralytics.utils import settings as settings_module

    monkeypatch.setenv("ULTRALYTICS_GPU_CHUNK", "4")
    monkeypatch.setenv("ULTRALYTICS_GPU_FUSED", "0")
    fast = [v if v is None else os.fsdecode(v) for v in settings_module._switch_values()]  # bytes on POSIX
    monkeypatch.setattr(settings_module, "_ENCODED_ENV", ())
    assert list(settings_module._switch_values()) == fast
    assert settings().gpu_chunk == 4 and settings().gpu_fused is False
