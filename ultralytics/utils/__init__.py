"""Small shared helpers: logging, paths, the default config and the config namespace.

`IterableSimpleNamespace` must live here: upstream checkpoints pickle it by this path.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from ultralytics.utils.settings import yolo_verbose

ROOT = Path(__file__).resolve().parents[1]  # the `ultralytics` package folder
ASSETS = ROOT / "assets"
DEFAULT_CFG_PATH = ROOT / "cfg" / "default.yaml"
VERBOSE = yolo_verbose()


def _make_logger() -> logging.Logger:
    logger = logging.getLogger("ultralytics")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if VERBOSE else logging.WARNING)
    return logger


LOGGER = _make_logger()


class IterableSimpleNamespace(SimpleNamespace):
    """A SimpleNamespace that iterates like a dict and answers None for unknown keys."""

    def __iter__(self):
        return iter(vars(self).items())

    def __str__(self) -> str:
        return "\n".join(f"{k}={v}" for k, v in vars(self).items())

    def __getattr__(self, attr: str) -> Any:
        # Only called for missing attributes; pickled namespaces from other releases may lack keys.
        if attr.startswith("__"):
            raise AttributeError(attr)
        return None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default) if key in vars(self) else default


def yaml_load(path: str | Path) -> dict:
    """Read a YAML file into a dict (an empty file gives {})."""
    with open(path, encoding="utf-8", errors="ignore") as f:
        return yaml.safe_load(f) or {}


def yaml_save(path: str | Path, data: dict) -> None:
    """Write `data` as YAML, atomically (see utils/atomic_file.py)."""
    from ultralytics.utils.atomic_file import atomic_write

    atomic_write(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


DEFAULT_CFG_DICT: dict = yaml_load(DEFAULT_CFG_PATH)
DEFAULT_CFG = IterableSimpleNamespace(**DEFAULT_CFG_DICT)
DEFAULT_CFG_KEYS = frozenset(DEFAULT_CFG_DICT)


def colorstr(*parts: str) -> str:
    """Return the last part in bold blue for terminals (plain text when not a TTY)."""
    text = parts[-1]
    if not sys.stdout.isatty():
        return text
    return f"\033[34m\033[1m{text}\033[0m"
