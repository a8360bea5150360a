"""Builder configuration: workspace, optimization level, timing cache, profiling verbosity.

These calls have the same signatures from 8.6 to 11.4 (`set_memory_pool_limit`,
`builder_optimization_level`, `create_timing_cache` / `set_timing_cache`), so no branches here.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from ultralytics.utils import LOGGER
from ultralytics.utils.atomic_file import atomic_write

GIB = 1 << 30


def set_workspace(trt: ModuleType, config, workspace_gib: float | None) -> None:
    """Cap the builder's scratch memory; None leaves TensorRT's default (the device's memory)."""
    gib = check_workspace(workspace_gib)
    if gib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(gib * GIB))


def check_workspace(workspace_gib) -> float | None:
    """The workspace in GiB as a float (None stays None), or a clear error."""
    if workspace_gib is None:
        return None
    try:
        gib = float(workspace_gib)
    except (TypeError, ValueError):
        raise ValueError(f"workspace={workspace_gib!r} must be a number of GiB (e.g. 4) or None") from None
    if gib <= 0:
        raise ValueError(f"workspace={workspace_gib!r} must be > 0 GiB; leave it unset for TensorRT's default")
    return gib


def set_optimization_level(config, opt_level: int | None) -> None:
    """Builder optimization level 0-5 (TensorRT's default is 3); higher searches longer for faster kernels."""
    if check_opt_level(opt_level) is not None:
        config.builder_optimization_level = opt_level


def check_opt_level(opt_level) -> int | None:
    if opt_level is None:
        return None
    if isinstance(opt_level, bool) or not isinstance(opt_level, int) or not 0 <= opt_level <= 5:
        raise ValueError(f"opt_level={opt_level!r} must be an integer from 0 to 5 (TensorRT's default is 3)")
    return opt_level


def set_verbosity(trt: ModuleType, config, verbose: bool) -> None:
    """Keep per-layer details in the engine when verbose, so inspectors can show them."""
    if verbose:
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED


class TimingCacheFile:
    """A timing cache read from a file before the build and written back after it.

    Timing results are specific to a GPU and TensorRT version. A cache from another version is not
    refused by `set_timing_cache`: TensorRT logs an error and builds as if it were empty (developer guide,
    "Timing Cache": "If the cache is incompatible ... the builder ignores it"). So we decide from the
    log of the attach: a cache TensorRT complained about, or one whose `serialize()` after attaching is
    not the bytes we gave, is foreign; we then neither claim to reuse it nor write over the user's file.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.timing_cache = None
        self.writable = path is not None

    def attach(self, config, log=None) -> None:
        """Attach the file's cache (or a new one); `log` is the build's logger operation."""
        if self.path is None:
            return
        data = self.path.read_bytes() if self.path.is_file() else b""
        seen = len(log.lines) if log is not None else 0
        timing_cache = config.create_timing_cache(data)
        accepted = timing_cache is not None and bool(config.set_timing_cache(timing_cache, False))
        complaints = [line for line in list(log.lines)[seen:] if "ERROR" in line] if log is not None else []
        foreign = bool(data) and (not accepted or bool(complaints) or not _holds(timing_cache, data))
        if not foreign:
            self.timing_cache = timing_cache
            if data:
                LOGGER.info(f"TensorRT: reusing timing cache {self.path} ({len(data)} bytes)")
            return
        LOGGER.warning(
            f"TensorRT timing cache {self.path} was made for another GPU or TensorRT version; building without "
            "it and leaving the file unchanged (delete it or pass another timing_cache= to start a new one)"
        )
        self.writable = False
        timing_cache = config.create_timing_cache(b"")
        config.set_timing_cache(timing_cache, False)
        self.timing_cache = timing_cache

    def save(self) -> None:
        if not (self.writable and self.timing_cache is not None):
            return
        try:
            atomic_write(self.path, bytes(memoryview(self.timing_cache.serialize())))
        except OSError as e:  # a cache is an optimisation: never fail the export over it
            LOGGER.warning(f"TensorRT: could not write timing cache {self.path}: {e}")


def _holds(timing_cache, data: bytes) -> bool:
    """Whether a freshly made cache kept what it was made from (an ignored cache serializes empty)."""
    try:
        kept = bytes(memoryview(timing_cache.serialize()))
    except Exception:  # noqa: BLE001 - a cache that cannot even serialize is not one we can reuse
        return False
    return len(kept) >= len(data) // 2


def timing_cache_path(setting, engine_path: Path) -> Path | None:
    """Resolve the `timing_cache` argument: unset → `<engine stem>.timing.cache` beside the engine,
    False/"" → none, anything else → that file (shared across models is fine: entries are per layer)."""
    if setting is False or (isinstance(setting, str) and setting.strip().lower() in ("", "false", "none", "off")):
        return None
    if setting is None or setting is True:
        return engine_path.with_name(f"{engine_path.stem}.timing.cache")
    return Path(setting)
