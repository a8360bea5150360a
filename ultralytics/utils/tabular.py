"""Rows of dicts (a `summary()`) as CSV, compact JSON or a DataFrame, in upstream's text formats.

Upstream writes these through polars; the CSV and JSON here are written with the standard library in
the same layout (header row, minimal quoting, nested dicts as their Python repr in CSV; compact JSON),
so `to_csv()` and `to_json()` need no extra package. `to_df()` returns a polars DataFrame as upstream
does, and polars is imported only then.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np


def _plain(value: Any) -> Any:
    """numpy scalars → Python numbers, so both writers see ints as ints and floats as floats."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """Header + one line per row; '\\n' alone for no rows (as upstream's empty frame writes)."""
    if not rows:
        return "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(rows[0]))
    for row in rows:
        writer.writerow([repr(v) if isinstance(v, dict) else v for v in (_plain(x) for x in row.values())])
    return buffer.getvalue()


def rows_to_json(rows: list[dict[str, Any]]) -> str:
    """A compact JSON array of the rows ('[]' for none)."""
    return json.dumps([_plain(r) for r in rows], separators=(",", ":"))


def rows_to_df(rows: list[dict[str, Any]]):
    """A polars DataFrame of the rows (what upstream's to_df returns)."""
    try:
        import polars as pl
    except ImportError:
        raise ImportError("to_df() returns a polars DataFrame, as upstream's does: pip install polars") from None
    return pl.DataFrame([_plain(r) for r in rows])


class SummaryExports:
    """`to_json`, `to_csv` and `to_df` for any class with upstream's `summary(normalize, decimals)`
    (Results and DetMetrics): the same three exports, written once."""

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def to_json(self, normalize: bool = False, decimals: int = 5) -> str:
        """summary() as a compact JSON array, upstream's format ('[]' when empty)."""
        return rows_to_json(self.summary(normalize=normalize, decimals=decimals))

    def to_csv(self, normalize: bool = False, decimals: int = 5) -> str:
        """summary() as CSV text in upstream's columns and layout (nested dicts quoted)."""
        return rows_to_csv(self.summary(normalize=normalize, decimals=decimals))

    def to_df(self, normalize: bool = False, decimals: int = 5):
        """summary() as a polars DataFrame, as upstream returns (needs `pip install polars`)."""
        return rows_to_df(self.summary(normalize=normalize, decimals=decimals))
