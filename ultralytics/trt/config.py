"""Builder configuration: workspace, optimization level, timing cache, profiling verbosity.

These calls have the same signatures from 8.6 to 11.4 (`set_memory_pool_limit`,
`builder_optimization_level`, `create_timing_cache` / `set_timing_cache`), so no branches here.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from ultralytics.utils import LOGGER

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

    Timing results are specific to a GPU and TensorRT version; TensorRT rejects a cache from another
    one (`set_timing_cache(..., ignore_mismatch=False)` returns False). We then build with a fresh
    cache and leave the user's file untouched rather than overwrite it.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.timing_cache = None
        self.writable = path is not None

    def attach(self, config) -> None:
        if self.path is None:
            return
        data = self.path.read_bytes() if self.path.is_file() else b""
        timing_cache = config.create_timing_cache(data)
        if config.set_timing_cache(timing_cache, False):
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
            self.path.write_bytes(bytes(memoryview(self.timing_cache.serialize())))
        except OSError as e:  # a cache is an optimisation: never fail the export over it
            LOGGER.warning(f"TensorRT: could not write timing cache {self.path}: {e}")


def timing_cache_path(setting, engine_path: Path) -> Path | None:
    """Resolve the `timing_cache` argument: unset → `<engine stem>.timing.cache` beside the engine,
    False/"" → none, anything else → that file (shared across models is fine: entries are per layer)."""
    if setting is False or (isinstance(setting, str) and setting.strip().lower() in ("", "false", "none", "off")):
        return None
    if setting is None or setting is True:
        return engine_path.with_name(f"{engine_path.stem}.timing.cache")
    return Path(setting)
