"""Device selection and small torch helpers shared by every mode."""

from __future__ import annotations

import torch


def select_device(device: str | int | torch.device | None = None) -> torch.device:
    """Turn upstream's device spellings ("", None, "cpu", 0, "0", "cuda:0", "mps") into a torch.device.

    An unset device means the first GPU when CUDA is available, else the CPU, as upstream does.
    Asking for CUDA on a machine without it is an error rather than a silent CPU fallback, so a
    benchmark never reports CPU numbers under a GPU label.
    """
    if isinstance(device, torch.device):
        spec = str(device)
    elif device is None:
        spec = ""
    else:
        spec = str(device).strip().lower().replace("cuda:", "").replace(" ", "")
    if spec in ("", "none"):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        return torch.device("mps")
    if spec.startswith("cuda"):  # a torch.device("cuda") or "cuda:N" passed through str()
        spec = spec.removeprefix("cuda").lstrip(":") or "0"
    first = spec.split(",")[0]
    if not first.isdigit():
        raise ValueError(f"invalid device {device!r}: use 'cpu', a GPU index such as 0, or 'cuda:0'")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} asks for CUDA, but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}). Use device='cpu', or install a CUDA build of torch."
        )
    index = int(first)
    if index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return torch.device(f"cuda:{index}")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so host timers measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
