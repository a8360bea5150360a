"""The `.engine` layout: upstream's header (int32 LE length + JSON + plan), plain plans, sidecars, damage."""

from __future__ import annotations

import json
import struct

import pytest

from ultralytics.export.engine_file import read_engine_file, split_header, write_engine_file

PLAN = bytes(range(256)) * 8  # stands for a serialized plan: arbitrary binary
META = {"stride": 32, "names": {"0": "circle", "1": "square"}, "imgsz": [320, 320], "batch": 1}


def test_header_written_by_hand_per_documented_layout_loads(tmp_path):
    """Build the header with struct (not our encoder), exactly as docs/tensorrt.md describes it."""
    text = json.dumps(META).encode()
    path = tmp_path / "hand.engine"
    path.write_bytes(struct.pack("<i", len(text)) + text + PLAN)
    f = read_engine_file(path)
    assert f.layout == "ultralytics" and f.metadata == META and f.plan == PLAN


def test_written_header_is_parsed_by_independent_reader(tmp_path):
    path = write_engine_file(tmp_path / "m.engine", PLAN, META)
    data = path.read_bytes()
    (n,) = struct.unpack("<i", data[:4])
    assert json.loads(data[4 : 4 + n]) == META and data[4 + n :] == PLAN


def test_plain_plan_without_header_loads_with_empty_metadata(tmp_path):
    path = tmp_path / "plain.engine"
    path.write_bytes(PLAN)
    f = read_engine_file(path)
    assert f.layout == "plan" and f.metadata == {} and f.plan == PLAN


def test_plan_layout_writes_bare_plan_and_sidecar(tmp_path):
    path = write_engine_file(tmp_path / "m.engine", PLAN, META, layout="plan")
    assert path.read_bytes() == PLAN  # what trtexec / Triton read
    assert json.loads((tmp_path / "m.json").read_text()) == META
    f = read_engine_file(path)
    assert f.layout == "plan" and f.metadata == META and f.sidecar == tmp_path / "m.json"


@pytest.mark.parametrize(
    "head",
    [
        struct.pack("<I", 10**9),  # length longer than the file: upstream treats it as no header
        struct.pack("<i", 0),  # zero length
        struct.pack("<i", 4) + b"\xff\xfe\x00\x01",  # not UTF-8
        struct.pack("<i", 3) + b"{{{",  # not JSON
        struct.pack("<i", 1) + b"7",  # JSON but not an object
    ],
)
def test_bytes_that_are_not_a_header_mean_plain_plan(head):
    data = head + PLAN
    assert split_header(data) == ({}, 0)


def test_truncated_plan_is_a_clear_error(tmp_path):
    meta = dict(META, plan_size=len(PLAN))
    path = write_engine_file(tmp_path / "m.engine", PLAN, meta)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        read_engine_file(path)


def test_header_without_plan_and_empty_file_are_clear_errors(tmp_path):
    text = json.dumps(META).encode()
    path = tmp_path / "head_only.engine"
    path.write_bytes(struct.pack("<i", len(text)) + text)
    with pytest.raises(ValueError, match="no TensorRT plan"):
        read_engine_file(path)
    empty = tmp_path / "empty.engine"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_engine_file(empty)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_engine_file(tmp_path / "missing.engine")


def test_bad_layout_and_empty_plan_refused_without_touching_existing_file(tmp_path):
    path = tmp_path / "m.engine"
    path.write_bytes(b"user data")
    with pytest.raises(ValueError, match="engine_layout"):
        write_engine_file(path, PLAN, META, layout="onnx")
    with pytest.raises(ValueError, match="empty"):
        write_engine_file(path, b"", META)
    assert path.read_bytes() == b"user data"
