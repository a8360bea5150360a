"""Every environment switch is read in utils/settings.py: one table of them, one place that checks values."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ultralytics
from ultralytics.gpu.jpeg_chroma import chroma_mode
from ultralytics.gpu.video_decode import reader_kind
from ultralytics.trt.device import host_memory_enabled
from ultralytics.utils import settings as settings_module

ROOT = Path(ultralytics.__file__).parent
HOME = ROOT / "utils" / "settings.py"


def _environment_reads(path: Path) -> list[int]:
    """Lines reading the environment: `os.environ`, `os.getenv`, or `environ`/`getenv` imported from os."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            lines += [node.lineno for a in node.names if a.name in ("environ", "getenv")]
    return lines


def test_only_settings_reads_the_environment():
    offenders = {
        str(p.relative_to(ROOT)): lines
        for p in sorted(ROOT.rglob("*.py"))
        if p != HOME and (lines := _environment_reads(p))
    }
    assert offenders == {}, f"read the switch through ultralytics/utils/settings.py instead: {offenders}"
    assert _environment_reads(HOME)  # the walker does see a read


@pytest.mark.parametrize(
    ("name", "read", "value", "expected"),
    [
        (settings_module.CHROMA_ENV, chroma_mode, "NVJPEG", "nvjpeg"),
        (settings_module.READER_ENV, reader_kind, " threaded ", "threaded"),
        (settings_module.HOST_MEMORY_ENV, host_memory_enabled, "yes", True),
    ],
)
def test_switches_keep_their_meaning(monkeypatch, name, read, value, expected):
    monkeypatch.setenv(name, value)
    assert read() == expected
    monkeypatch.delenv(name)
    assert read() == {"nvjpeg": "fancy", "threaded": "simple", True: False}[expected]


@pytest.mark.parametrize("read", [chroma_mode, reader_kind])
def test_bad_switch_value_is_one_line(monkeypatch, read):
    name = settings_module.CHROMA_ENV if read is chroma_mode else settings_module.READER_ENV
    monkeypatch.setenv(name, "bogus")
    with pytest.raises(ValueError, match=f"^{name}='bogus' is not valid: use ") as info:
        read()
    assert "\n" not in str(info.value)
