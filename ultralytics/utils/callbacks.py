"""Upstream's callback events: a dict of event name → list of functions, each called with the
predictor, validator or export run of the event (training events are accepted and never fire: nothing
is trained here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EVENTS = (
    "on_pretrain_routine_start", "on_pretrain_routine_end", "on_train_start", "on_train_epoch_start",
    "on_train_batch_start", "optimizer_step", "on_before_zero_grad", "on_train_batch_end", "on_train_epoch_end",
    "on_fit_epoch_end", "on_model_save", "on_train_end", "on_params_update", "teardown",
    "on_val_start", "on_val_batch_start", "on_val_batch_end", "on_val_end",
    "on_predict_start", "on_predict_batch_start", "on_predict_postprocess_end", "on_predict_batch_end",
    "on_predict_end", "on_export_start", "on_export_end",
)  # fmt: skip


def default_callbacks() -> dict[str, list[Callable]]:
    """A fresh registry with every upstream event and no functions."""
    return {event: [] for event in EVENTS}


def check_event(event: str) -> None:
    if event not in EVENTS:
        import difflib

        close = difflib.get_close_matches(event, EVENTS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else f" Events: {', '.join(EVENTS)}"
        raise ValueError(f"'{event}' is not a callback event.{hint}")


def run_callbacks(callbacks: dict[str, list[Callable]] | None, event: str, owner: Any) -> None:
    """Call every function registered for `event` with `owner` (the predictor or validator)."""
    for fn in (callbacks or {}).get(event, []):
        fn(owner)
