"""Fixtures for the first-hour tests: a private copy of the weights, a 2-image dataset, a CLI runner."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import MODELS, SHAPES
from ultralytics.cfg import entrypoint

IMAGE = SHAPES / "val" / "images" / "00000.jpg"


@dataclass
class CliRun:
    code: int
    out: str
    err: str


@pytest.fixture
def weights(tmp_path) -> Path:
    """The shapes model in a folder of its own, so exports land in tmp_path."""
    path = tmp_path / "user" / "shapes.pt"
    path.parent.mkdir()
    shutil.copy(MODELS / "shapes_yolov8n.pt", path)
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_cli")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for src in sorted((SHAPES / "val" / "images").glob("*.jpg"))[:2]:
        shutil.copy(src, root / "images")
        shutil.copy(SHAPES / "val" / "labels" / f"{src.stem}.txt", root / "labels")
    data = root / "tiny.yaml"
    data.write_text(
        yaml.safe_dump({"train": "images", "val": "images", "names": ["circle", "square", "triangle", "star"]})
    )
    return data


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run `yolo ARGS` in-process, in tmp_path, as the console script does: `sys.exit(entrypoint())`."""
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> CliRun:
        capsys.readouterr()
        try:
            result = entrypoint(list(argv))
            code = 0 if result is None else result  # what sys.exit(result) would make of it
        except SystemExit as e:
            code = 0 if e.code is None else e.code
        captured = capsys.readouterr()
        return CliRun(code if isinstance(code, int) else 1, captured.out, captured.err)

    return run
