"""A tqdm progress bar for engine builds, fed by TensorRT's `IProgressMonitor` where it exists (10.0+).

TensorRT reports nested build phases (`phase_start(name, parent, steps)`, `step_complete`,
`phase_finish`; NVIDIA API reference "IProgressMonitor"); the bar follows the top-level phases only,
since nested ones come and go too fast to read. 8.6 has no monitor: the build then runs without a bar.
"""

from __future__ import annotations

from types import ModuleType

from tqdm import tqdm


class _NoProgress:
    def close(self) -> None:
        pass


def attach_progress(trt: ModuleType, config, what: str):
    """Show the build's progress while it runs; returns an object whose `close()` ends the bar."""
    if not (hasattr(trt, "IProgressMonitor") and hasattr(trt.IBuilderConfig, "progress_monitor")):
        return _NoProgress()

    class BuildProgress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.bar: tqdm | None = None
            self.top: str | None = None

        def phase_start(self, phase_name: str, parent_phase, num_steps: int) -> None:
            if parent_phase is None and self.top is None:
                self.top = phase_name
                self.bar = tqdm(total=int(num_steps), desc=f"TensorRT build: {phase_name}", unit="step", leave=False)

        def step_complete(self, phase_name: str, step: int) -> bool:
            if phase_name == self.top and self.bar is not None:
                self.bar.update(1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            if phase_name == self.top:
                self.close()

        def close(self) -> None:
            if self.bar is not None:
                self.bar.close()
            self.bar, self.top = None, None

    monitor = BuildProgress()
    config.progress_monitor = monitor  # TensorRT only points to it: the caller keeps `monitor` alive
    return monitor
