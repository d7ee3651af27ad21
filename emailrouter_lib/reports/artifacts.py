"""The files a run leaves behind: ``summary.json``, one CSV per table, and ``report.html``.

These files, not printed cell output, are what tests, cron wrappers and people read after a run
(papermill may silently trim output; a file is either there or not). Each is written to a temporary
name and renamed into place, so a crash never leaves a half-written report that looks complete.

CSV cells that start with ``=``, ``+``, ``-``, ``@``, a tab or a CR come from mail (subjects,
addresses) and would run as formulas when an admin opens the file in Excel; they are written with a
leading apostrophe, which spreadsheets show as text and hide. The check looks at each value, not at
the column's dtype: pandas 3 keeps text in a ``str`` dtype, not ``object``.

As the last line of defence every text written here has the secrets this process resolved masked
(:mod:`emailrouter_lib.known_secrets`), whatever a server echoed into a reason or an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from emailrouter_lib.files import replacing, write_atomically
from emailrouter_lib.known_secrets import has_known_secrets, mask_known_secrets
from emailrouter_lib.reports.html import render_html_report

__all__ = ["csv_text", "defuse_formulas", "write_run_artifacts"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_run_artifacts(
    run_dir: Path,
    *,
    summary: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    title: str,
    subtitle: str | None = None,
    notes: Sequence[str] = (),
    figures: Mapping[str, str] = {},
    links: Mapping[str, str] = {},
    report_summary: Mapping[str, Any] | None = None,
    max_rows: int = 20_000,
    workbook: str | None = None,
    alerts: Sequence[str] = (),
    alert_title: str | None = None,
    report_tables: Mapping[str, pd.DataFrame] | None = None,
    main_columns: Mapping[str, Sequence[str]] = {},
) -> dict[str, Path]:
    """Write the run's artifacts into *run_dir* and return them by file name.

    Each table goes to ``<name>.csv`` (so the main table, named ``results``, is ``results.csv``);
    the keys of the returned dict are the file names: ``summary.json``, ``results.csv``, …,
    ``report.html``. *workbook* (e.g. ``"report.xlsx"``) adds an Excel file with one sheet per
    table, linked from the page. *report_summary*, when given, is what the page shows in place of
    *summary* (``summary.json`` keeps the machine-readable one); *report_tables*, likewise, is
    what the page shows in place of *tables* (words for people; the CSV files keep the words
    scripts filter on). *figures*, *links*, *alerts*, *alert_title*, *main_columns* and
    *max_rows* are passed to :func:`render_html_report`.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if has_known_secrets():
        tables = {name: _text_map(frame, mask_known_secrets) for name, frame in tables.items()}

    summary_text = json.dumps(summary, indent=2, ensure_ascii=False, default=_json_default)
    written["summary.json"] = _write(run_dir / "summary.json", summary_text + "\n")

    for name, frame in tables.items():
        file_name = _unique(f"{_slug(name)}.csv", written)
        written[file_name] = _write(run_dir / file_name, csv_text(frame))

    links = dict(links)
    if workbook:
        from emailrouter_lib.reports.excel import write_workbook

        with replacing(run_dir / workbook) as temporary:
            write_workbook(temporary, tables)
        written[workbook] = run_dir / workbook
        links.setdefault("Every row, in Excel", workbook)
    page = render_html_report(
        title,
        summary if report_summary is None else report_summary,
        tables if report_tables is None else report_tables,
        subtitle=subtitle,
        notes=notes,
        figures=figures,
        links=links,
        max_rows=max_rows,
        alerts=alerts,
        alert_title=alert_title,
        main_columns=main_columns,
    )
    written["report.html"] = _write(run_dir / "report.html", page)
    return written


def _write(path: Path, text: str) -> Path:
    return write_atomically(path, mask_known_secrets(text))


def _unique(file_name: str, taken: Mapping[str, Path]) -> str:
    stem, suffix = file_name.rsplit(".", 1)
    number = 2
    while file_name in taken:
        file_name = f"{stem}_{number}.{suffix}"
        number += 1
    return file_name


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name).strip()).strip("._").lower()
    return slug or "table"


def csv_text(frame: pd.DataFrame) -> str:
    """*frame* as CSV a spreadsheet opens safely: formulas defused, and RFC 4180 line ends, so
    that Python's csv writer quotes a cell holding a CR or LF instead of letting it start a row
    (a bare CR would otherwise split the row, and a formula after it would run)."""
    return defuse_formulas(frame).to_csv(index=False, lineterminator="\r\n")


def defuse_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy in which text cells cannot be mistaken for spreadsheet formulas (for CSV files)."""
    return _text_map(frame, _defuse)


def _text_map(frame: pd.DataFrame, change: Any) -> pd.DataFrame:
    """*frame* with *change* applied to every text value, whatever the column's dtype (object,
    pandas 3's ``str``, ``string``, category); numbers, booleans and times are left alone."""
    types = pd.api.types
    columns = [
        c
        for c in frame.columns
        if not (
            types.is_numeric_dtype(frame[c])
            or types.is_bool_dtype(frame[c])
            or types.is_datetime64_any_dtype(frame[c])
            or isinstance(frame[c].dtype, pd.PeriodDtype | pd.IntervalDtype)
        )
    ]
    if not columns:
        return frame
    frame = frame.copy()
    for column in columns:
        frame[column] = frame[column].map(lambda v: change(v) if isinstance(v, str) else v)
    return frame


def _defuse(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)
