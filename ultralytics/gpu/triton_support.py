"""Whether an optional Triton kernel can be built here: one answer for every kernel module.

Triton comes with Linux CUDA builds of torch but is optional. Importing it can fail with more than
ImportError (a Triton that does not match the torch build raises RuntimeError or AttributeError while
it loads), and every such failure has to mean "use the torch path", not an error in every forward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def builds(make_kernels: Callable[[], Any]) -> bool:
    """True when `make_kernels()` (which imports Triton and wraps the module's kernels) succeeds."""
    try:
        make_kernels()
    except Exception:  # ImportError, or a broken install failing in other ways
        return False
    return True


class KernelHealth:
    """Why a module's kernels could not run in this process (None while they can): after a failure, with
    one warning, the module's torch path is used. Each kernel module holds one (`HEALTH`)."""

    def __init__(self) -> None:
        self.failure: str | None = None
