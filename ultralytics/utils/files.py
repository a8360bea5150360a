"""Run-folder naming: runs/detect/predict, predict-2, predict-3, ... as upstream 8.4 names them.

Also the early check that a run folder can be written, so `project=` pointing at a read-only place
fails with one line before any image is processed.
"""

from __future__ import annotations

from pathlib import Path

from ultralytics.utils.atomic_file import check_writable_folder

RUN_SEPARATOR = "-"  # upstream 8.4: predict, predict-2, ... (8.0-8.3 wrote predict2)


def increment_path(path: str | Path, exist_ok: bool = False, sep: str = RUN_SEPARATOR) -> Path:
    """Return `path`, or the first free `path-2`, `path-3`, ... when it exists (and exist_ok is False).

    For an existing file the number goes before the suffix (`results-2.txt`), as upstream does.
    """
    path = Path(path)
    if exist_ok or not path.exists():
        return path
    stem, suffix = (path.with_suffix(""), path.suffix) if path.is_file() else (path, "")
    n = 2
    while (candidate := Path(f"{stem}{sep}{n}{suffix}")).exists():
        n += 1
    return candidate


def run_dir(project: str | Path | None, name: str | None, mode: str, exist_ok: bool = False) -> Path:
    """The folder a run writes into; created lazily by whoever saves the first file, checked writable now."""
    base = Path(project) if project else Path("runs") / "detect"
    folder = increment_path(base / (name or mode), exist_ok=exist_ok)
    check_writable_folder(folder, "the run's results")
    return folder
