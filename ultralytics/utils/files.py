"""Run-directory naming: runs/detect/predict, predict2, predict3, ... like upstream."""

from __future__ import annotations

from pathlib import Path


def increment_path(path: str | Path, exist_ok: bool = False) -> Path:
    """Return `path`, or the first free `path2`, `path3`, ... when it exists (and exist_ok is False)."""
    path = Path(path)
    if exist_ok or not path.exists():
        return path
    n = 2
    while (candidate := path.with_name(f"{path.name}{n}")).exists():
        n += 1
    return candidate


def run_dir(project: str | Path | None, name: str | None, mode: str, exist_ok: bool = False) -> Path:
    """The folder a run writes into; created lazily by whoever saves the first file."""
    base = Path(project) if project else Path("runs") / "detect"
    return increment_path(base / (name or mode), exist_ok=exist_ok)
