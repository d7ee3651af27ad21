"""The Excel side of a report: one sheet per table, header frozen, filters on.

Cells come from mail, so they are made safe for a spreadsheet first: text that looks like a formula
stays text, control characters Excel refuses are dropped, over-long text is cut at Excel's cell
limit, and times with a zone are written as UTC (Excel has no zones).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils import get_column_letter

_MAX_CELL = 32_767  # characters Excel keeps in one cell

_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


def _sheet_name(name: str, taken: set[str]) -> str:
    base = _BAD_SHEET_CHARS.sub("_", name)[:31] or "sheet"
    candidate, n = base, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{base[: 31 - len(str(n)) - 1]}~{n}"
    taken.add(candidate.lower())
    return candidate


def write_workbook(path: str | Path, tables: Mapping[str, pd.DataFrame]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, frame in tables.items():
            sheet = _sheet_name(name, taken)
            frame = _spreadsheet_safe(frame)
            frame.to_excel(writer, sheet_name=sheet, index=False)
            ws = writer.sheets[sheet]
            for row in ws.iter_rows(min_row=2):
                for cell in row:
                    if cell.data_type == "f":  # text from mail that looks like a formula
                        cell.data_type = "s"  # stays text: Excel never evaluates it
            ws.freeze_panes = "A2"
            if len(frame.columns):
                last = get_column_letter(len(frame.columns))
                ws.auto_filter.ref = f"A1:{last}{max(len(frame) + 1, 1)}"
            for index, column in enumerate(frame.columns, start=1):
                width = max([len(str(column))] + [len(str(v)) for v in frame[column].head(200)])
                ws.column_dimensions[get_column_letter(index)].width = min(max(width + 2, 8), 60)
    return path


def _spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in frame.columns:
        series = frame[column]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            frame[column] = series.dt.tz_convert("UTC").dt.tz_localize(None)
        elif series.dtype == object or pd.api.types.is_string_dtype(series):
            frame[column] = series.map(_safe_text)
    return frame


def _safe_text(value):
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value)[:_MAX_CELL]
    if getattr(value, "tzinfo", None) is not None and hasattr(value, "astimezone"):
        from datetime import UTC

        return value.astimezone(UTC).replace(tzinfo=None)
    return value
