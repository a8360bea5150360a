"""Atomic file writes: the one way the package writes a file the user keeps.

Why: an export that dies part-way (full disk, Ctrl-C, a read-only folder) must leave whatever the
user had under that name byte-identical, and a server running as another user must be able to read
what we wrote. So every writer goes through `atomic_write`: the bytes go to a hidden temporary file
in the target folder (same filesystem, so the rename is atomic), created the way a plain
`open(path, "w")` creates a file (mode 0o666, the kernel takes the umask away: 0644 under umask 022;
`mkstemp` would leave 0600), and only when every byte is written is it renamed over the target.

Two durability levels, both atomic (never a half-written file under the final name):
- durable (the default): the file is fsync'ed before the rename and its folder after it, so the new
  file survives a power cut. For what users must not lose: exports, checkpoints, calibration and
  timing caches, benchmark tables, configs.
- `durable=False`: no fsync (two disk flushes per file saved). For per-image predict outputs (saved
  images, crops, label txt), thousands per run and remade by predicting again: a power cut may lose
  the latest ones, a failed write still leaves the previous file as it was.

`check_writable_folder` is the early check: call it before calibration or an engine build, so a
read-only destination fails in a second with one line instead of after minutes of work.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

DEFAULT_FILE_MODE = 0o666  # what open() asks for; the umask takes bits away


class OutputNotWritableError(PermissionError):
    """The destination of a write cannot be written (missing, read-only, or not a folder)."""


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # portable fallback: read by setting, then put it back at once
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode a new file made with open() gets: 0o666 minus the umask (0o644 under umask 022)."""
    return DEFAULT_FILE_MODE & ~current_umask()


def check_writable_folder(folder: str | Path, purpose: str = "the output") -> Path:
    """Raise OutputNotWritableError (one line, with what to do) unless files can be created in `folder`.

    A folder that does not exist yet is fine when its nearest existing parent is writable (it will be
    created); anything else fails here, before any slow work starts.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputNotWritableError(f"cannot write {purpose} into '{folder}': '{probe}' is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputNotWritableError(
            f"cannot write {purpose} into '{folder}': the folder '{probe}' is not writable; "
            "choose a writable folder (or copy the input there) and run again"
        )
    return folder


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", encoding: str | None = None, *, durable: bool = True
) -> Iterator[IO]:
    """Open a new temporary file beside `path`; on a clean exit it is renamed to `path` (fsync'ed first,
    and the folder after, unless `durable=False`: see the module docstring for which files may skip it).

    On any error (or KeyboardInterrupt) the temporary file is removed and `path` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files; mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise IsADirectoryError(f"cannot write '{path}': it is a folder")
    folder.mkdir(parents=True, exist_ok=True)
    f, tmp = _create_temporary(path, mode, encoding if "b" not in mode else None)
    try:
        with f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(folder)


def atomic_write(
    path: str | Path, data: bytes | bytearray | memoryview | str, encoding: str = "utf-8", *, durable: bool = True
) -> Path:
    """Write `data` (bytes, or str encoded with `encoding`) to `path` atomically; return the path.

    `durable=False` skips the fsyncs (per-image predict outputs only, see the module docstring)."""
    payload = data.encode(encoding) if isinstance(data, str) else data
    with atomic_open(path, "wb", durable=durable) as f:
        f.write(payload)
    return Path(path)


def atomic_write_group(files: dict[str | Path, bytes | str], encoding: str = "utf-8") -> list[Path]:
    """Write files that belong together (an engine and its sidecar): every one is written and fsync'ed
    to a temporary file first, and only when all succeeded are they renamed into place, so a failure
    leaves the whole previous set as it was, never a new file beside an old one."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            tmp = path.with_name(f".{path.name}.group.tmp")
            atomic_write(tmp, data, encoding)  # fsync'ed, mode set; still under a hidden name
            staged.append((tmp, path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return [path for _, path in staged]


def atomic_copy(src: str | Path, dst: str | Path, chunk_bytes: int = 1 << 22) -> Path:
    """Copy `src` to `dst` atomically (streamed, so large models need no extra memory); return `dst`."""
    with open(src, "rb") as fin, atomic_open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, chunk_bytes)
    return Path(dst)


def _create_temporary(path: Path, mode: str, encoding: str | None) -> tuple[IO, Path]:
    """A new hidden file beside `path`, opened by name (onnx.save needs a file object with a path name).

    Created with mode 0o666 as open() does, so the kernel applies the umask (and any default ACL) at
    creation: the file gets a plain open()'s permissions with no umask read and no chmod per file.
    """

    def exclusive(name: str, flags: int) -> int:
        return os.open(name, flags | os.O_EXCL, DEFAULT_FILE_MODE)  # never opens a file that already exists

    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return open(tmp, mode, encoding=encoding, opener=exclusive), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside '{path}': every name tried exists")


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
