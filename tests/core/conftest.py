"""Fixtures shared by the core (model and checkpoint) tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread: on the suite's 2 shared cores, extra threads mostly spin and slow everyone."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
