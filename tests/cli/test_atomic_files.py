"""Issue 14 items 2 and 3: every export is written atomically (the previous file survives a failure
byte for byte, nothing half-written is left) and gets the mode a plain open() gives under the umask."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import onnx
import pytest

from ultralytics.engine.model import YOLO
from ultralytics.export.engine_file import sidecar_path, write_engine_file
from ultralytics.utils import ASSETS

IMAGE = ASSETS / "shapes_00000.jpg"
PREVIOUS = b"the user's previous export, which must survive"


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _int8_export(weights, tiny_data):
    return YOLO(weights).export(format="onnx", int8=True, data=str(tiny_data), imgsz=64, simplify=False)


def test_exports_get_open_modes_under_the_umask(weights, tmp_path, umask_022):
    onnx_file = YOLO(weights).export(format="onnx", imgsz=64, simplify=False)
    assert _mode(onnx_file) == 0o644
    engine = write_engine_file(tmp_path / "m.engine", b"plan bytes", {"names": {0: "a"}}, layout="plan")
    assert _mode(engine) == 0o644 and _mode(sidecar_path(engine)) == 0o644
    from ultralytics.utils.atomic_file import atomic_write

    os.umask(0o077)  # the umask is honoured, not a fixed 0644
    assert _mode(atomic_write(tmp_path / "private.bin", b"x")) == 0o600


def test_int8_export_on_a_full_disk_keeps_the_previous_file(weights, tiny_data, monkeypatch):
    """The disk fills up when the finished file is flushed: the old x.onnx is byte-identical."""
    target = weights.with_suffix(".onnx")
    target.write_bytes(PREVIOUS)
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(OSError, match="No space left"):
        _int8_export(weights, tiny_data)
    assert target.read_bytes() == PREVIOUS
    assert sorted(p.name for p in weights.parent.iterdir()) == ["shapes.onnx", "shapes.pt"]  # no temp left


def test_int8_export_failing_part_way_through_a_write_keeps_the_previous_file(weights, tiny_data, monkeypatch):
    """A write that stops half-way (ENOSPC after some bytes) must not truncate the user's file."""
    target = weights.with_suffix(".onnx")
    target.write_bytes(PREVIOUS)
    real_save = onnx.save

    def half_then_full(proto, f, *args, **kwargs):
        if not any(n.op_type == "QuantizeLinear" for n in proto.graph.node):
            return real_save(proto, f, *args, **kwargs)  # the FP32 step fits; the INT8 result does not
        data = proto.SerializeToString()
        if hasattr(f, "write"):
            f.write(data[: len(data) // 2])
        else:
            with open(f, "wb") as out:
                out.write(data[: len(data) // 2])
        _disk_full()

    monkeypatch.setattr(onnx, "save", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        _int8_export(weights, tiny_data)
    monkeypatch.setattr(onnx, "save", real_save)
    assert target.read_bytes() == PREVIOUS
    assert sorted(p.name for p in weights.parent.iterdir()) == ["shapes.onnx", "shapes.pt"]


def test_int8_export_into_a_read_only_folder_fails_before_calibration(weights, tiny_data, monkeypatch):
    target = weights.with_suffix(".onnx")
    target.write_bytes(PREVIOUS)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: str(p) != str(weights.parent) and real_access(p, mode))
    calibrated = []
    monkeypatch.setattr("ultralytics.export.calibration.CalibrationSet.__init__", lambda *a, **k: calibrated.append(1))
    with pytest.raises(PermissionError, match="not writable"):
        _int8_export(weights, tiny_data)
    assert not calibrated and target.read_bytes() == PREVIOUS


def test_fp16_and_engine_writes_keep_the_previous_file_on_a_full_disk(weights, tmp_path, monkeypatch):
    target = weights.with_suffix(".onnx")
    target.write_bytes(PREVIOUS)
    engine = tmp_path / "m.engine"
    engine.write_bytes(PREVIOUS)
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(OSError, match="No space left"):
        YOLO(weights).export(format="onnx", half=True, imgsz=64, simplify=False)
    with pytest.raises(OSError, match="No space left"):
        write_engine_file(engine, b"new plan", {"names": {0: "a"}})
    assert target.read_bytes() == PREVIOUS and engine.read_bytes() == PREVIOUS
    assert sorted(p.name for p in weights.parent.iterdir()) == ["shapes.onnx", "shapes.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "user"]


def test_plan_and_sidecar_are_replaced_together_or_not_at_all(tmp_path, monkeypatch):
    engine = write_engine_file(tmp_path / "m.engine", b"old plan", {"names": {0: "a"}}, layout="plan")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_fsync, calls = os.fsync, []

    def second_file_hits_a_full_disk(fd):
        calls.append(fd)
        if len(calls) == 3:  # plan (file, folder) written; the sidecar's flush fails
            _disk_full()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", second_file_hits_a_full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_engine_file(engine, b"new plan", {"names": {0: "b"}}, layout="plan")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_predict_labels_crops_images_and_checkpoints_keep_the_previous_file_on_a_full_disk(
    weights, tmp_path, monkeypatch
):
    """Every other writer goes through the same atomic writer: label txt (append = old + new, written
    whole), crops, saved images and `YOLO.save()` checkpoints.

    The per-image outputs are not fsync'ed, so their disk fills up in the middle of the write itself: a
    file-size limit (RLIMIT_FSIZE, Python ignores SIGXFSZ) makes the kernel refuse every byte past the
    first 32 of any file, as a full disk would."""
    resource = pytest.importorskip("resource")
    model = YOLO(weights)
    (result,) = model.predict(IMAGE, imgsz=160, conf=0.01, verbose=False)
    assert len(result.boxes)
    label, image, ckpt = tmp_path / "labels.txt", tmp_path / "image.jpg", tmp_path / "saved.pt"
    label.write_text("0 0.5 0.5 0.1 0.1\n")
    image.write_bytes(b"previous image")
    ckpt.write_bytes(b"previous checkpoint")
    crops = tmp_path / "crops"
    failures = []
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    for write in (lambda: result.save_txt(label), lambda: result.save(image), lambda: result.save_crop(crops)):
        resource.setrlimit(resource.RLIMIT_FSIZE, (32, hard))
        try:
            write()
        except OSError as error:  # EFBIG, part-way through the bytes
            failures.append(error)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert len(failures) == 3, failures
    monkeypatch.setattr(os, "fsync", _disk_full)  # a checkpoint is durable: its flush fails
    with pytest.raises(OSError, match="No space left"):
        model.save(ckpt)
    assert label.read_text() == "0 0.5 0.5 0.1 0.1\n"
    assert image.read_bytes() == b"previous image" and ckpt.read_bytes() == b"previous checkpoint"
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith(".tmp")]  # no debris
    assert not [p for p in crops.rglob("*") if p.is_file()]  # no half-written crop
    monkeypatch.undo()
    result.save_txt(label)  # appending still appends
    lines = label.read_text().splitlines()
    assert lines[0] == "0 0.5 0.5 0.1 0.1" and len(lines) == 1 + len(result.boxes)


def _record_fsyncs(monkeypatch) -> list[Path]:
    """Replace os.fsync by one that records which file or folder each call flushed (Linux /proc)."""
    real_fsync, synced = os.fsync, []

    def recording_fsync(fd):
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return synced


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fsync'ed descriptors")
def test_exports_and_checkpoints_are_fsynced_file_and_folder(weights, monkeypatch):
    """What users must not lose reaches the disk before it replaces their file: the file, then the folder
    that holds the rename."""
    synced = _record_fsyncs(monkeypatch)
    onnx_file = Path(YOLO(weights).export(format="onnx", imgsz=64, simplify=False))
    assert [p.name for p in synced if p.parent == onnx_file.parent and p.name.startswith(".shapes.onnx.")]
    assert onnx_file.parent in synced
    synced.clear()
    checkpoint = Path(YOLO(weights).save(weights.parent / "saved.pt"))
    assert [p for p in synced if p.name.startswith(".saved.pt.")] and synced[-1] == checkpoint.parent


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fsync'ed descriptors")
def test_per_image_predict_outputs_skip_fsync_and_the_umask_read(weights, tmp_path, monkeypatch, umask_022):
    """save=True images, crops and label txt: atomic but not flushed (two disk flushes per file spared),
    and created with open()'s mode by the kernel, so the umask is never read per file."""
    import ultralytics.utils.atomic_file as atomic_file

    def no_umask_read(*args):
        raise AssertionError("the umask was read for a per-image output")

    with monkeypatch.context() as patched:  # undone before umask_022 puts the umask back
        synced = _record_fsyncs(patched)
        patched.setattr(atomic_file, "current_umask", no_umask_read)
        patched.setattr(os, "umask", no_umask_read)
        YOLO(weights).predict(
            IMAGE, imgsz=160, conf=0.01, save=True, save_txt=True, save_crop=True, project=str(tmp_path), name="p"
        )
    run = tmp_path / "p"
    written = [p for p in run.rglob("*") if p.is_file()]
    assert {p.relative_to(run).parts[0] for p in written} == {IMAGE.name, "labels", "crops"}, written
    assert synced == []
    assert all(_mode(p) == 0o644 for p in written)
    assert not [p for p in written if p.name.endswith(".tmp")]
