"""Display helpers for Result classes: short previews in Jupyter, quiet in batch runs.

A Result shows a summary and the first rows of each table ("showing 5 of N"); the whole tables
go to the run's artifacts, because a notebook holding thousands of rows becomes too big to open
or review. Chatter (progress bars, "connecting to …") is for people watching a kernel; in a batch
run (the runner sets ``EMAILROUTER_BATCH=1``), under pytest, or in a cron job it stays quiet.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = [
    "BATCH_ENV",
    "frame_preview_html",
    "is_interactive",
    "result_html",
    "show",
    "table",
    "want_progress",
]

BATCH_ENV = "EMAILROUTER_BATCH"


def is_interactive() -> bool:
    """True in an IPython shell or Jupyter kernel that a person is watching."""
    if os.environ.get(BATCH_ENV, "").strip() not in ("", "0"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def want_progress(progress: bool | None) -> bool:
    """Resolve a ``progress`` parameter: an explicit choice wins; ``None`` means interactive."""
    return is_interactive() if progress is None else bool(progress)


def show(obj: Any) -> None:
    """Display *obj* for a person watching; say nothing in batch runs and plain scripts."""
    if not is_interactive():
        return
    from IPython.display import display

    display(obj)


def frame_preview_html(df: pd.DataFrame, n: int = 5) -> str:
    """The first *n* rows of *df* as an HTML table, with "showing n of N rows" under it."""
    total = len(df)
    if total == 0:
        return "<p><em>no rows</em></p>"
    # pandas escapes cell values and column names (escape=True is its default, stated for clarity).
    table = _tidy(df.head(n)).to_html(index=False, escape=True, border=0, na_rep="")
    shown = min(n, total)
    caption = f"showing {shown} of {total} row{'' if total == 1 else 's'}"
    return f'{table}<p style="color:#59636e;margin:2px 0 0"><em>{caption}</em></p>'


class Table:
    """A whole table for a notebook: every row and column, blanks for missing values, whole
    numbers without ``.0``. pandas' own display cuts wide tables with "..." and shows ``NaN``,
    ``<NA>`` and ``995.0``, which the notebook's HTML export then keeps for people to puzzle over.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def _repr_html_(self) -> str:
        if len(self.frame) == 0:
            return "<p><em>no rows</em></p>"
        html_table = _tidy(self.frame).to_html(index=False, escape=True, border=0, na_rep="")
        return f'<div style="overflow-x:auto">{html_table}</div>'  # scrolls, never cut off

    def __repr__(self) -> str:
        return _tidy(self.frame).to_string(index=False, na_rep="")


def table(frame: pd.DataFrame) -> Table:
    """*frame* shown whole and tidy in Jupyter (see :class:`Table`)."""
    return Table(frame)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """For display: float columns that hold only whole numbers (ports, counts with a gap) as
    integers, and every missing value blank."""
    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_float_dtype(values):
            present = values.dropna()
            if (present == present.round()).all():
                values = values.astype("Int64")
        # Blank, not "<NA>": pandas' na_rep does not cover the nullable integer columns.
        frame[column] = values.astype(object).where(values.notna(), "")
    return frame


def result_html(
    title: str,
    summary: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    *,
    n: int = 5,
) -> str:
    """A compact HTML fragment for ``_repr_html_``: the summary as a two-column table, then
    a preview of each table."""
    rows = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{_e(str(key).replace("_", " "))}</th>'
        f'<td style="text-align:left">{_e(_brief(value))}</td></tr>'
        for key, value in summary.items()
    )
    parts = [f"<div><h4>{_e(title)}</h4>", f"<table>{rows}</table>"]
    for name, frame in tables.items():
        parts.append(f"<h5>{_e(name)}</h5>{frame_preview_html(frame, n)}")
    parts.append("</div>")
    return "".join(parts)


def _brief(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, str | int | float | bool) or value is None:
        return "" if value is None else str(value)
    return json.dumps(value, default=str)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
