"""The plan as files a person reviews: JSON (what apply reads back), CSV, Excel.

CSV and Excel cells that came from the files (profile names, addresses) are written so that a
spreadsheet never evaluates them as formulas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pandas as pd

from emailrouter_lib.errors import ConfigError
from emailrouter_lib.files import write_atomically
from emailrouter_lib.known_secrets import mask_known_secrets
from emailrouter_lib.migration.model import MigrationPlan

Format = Literal["json", "csv", "xlsx"]
FORMATS: tuple[str, ...] = ("json", "csv", "xlsx")


def write_plan(
    plan: MigrationPlan,
    path: str | Path,
    fmt: Format = "json",
    *,
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
) -> list[Path]:
    """Write *plan* to *path*: a ``.json`` file, a folder of ``<table>.csv``, or an ``.xlsx``
    workbook with one sheet per table. Returns the files written."""
    path = Path(path)
    tables = {**plan.tables(), **(extra_tables or {})}
    if fmt == "json":
        return [_atomic(path, plan.to_json())]
    if fmt == "csv":
        from emailrouter_lib.reports.artifacts import csv_text

        path.mkdir(parents=True, exist_ok=True)
        return [_atomic(path / f"{name}.csv", csv_text(frame)) for name, frame in tables.items()]
    if fmt == "xlsx":
        from emailrouter_lib.reports.excel import write_workbook

        return [write_workbook(path, tables)]
    raise ConfigError(f"unknown plan format {fmt!r}; use one of {', '.join(FORMATS)}")


def read_plan(path: str | Path) -> MigrationPlan:
    """A plan written as JSON by :func:`write_plan` (what ``migrate apply`` reads)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the plan ({exc.strerror or exc})", file=str(path)) from None
    except ValueError as exc:
        raise ConfigError(
            f"not a JSON migration plan ({exc}); write one with `emailrouter migrate plan "
            "--format json`",
            file=str(path),
        ) from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(
        "emailrouter.migration-plan/"
    ):
        raise ConfigError(
            "not a migration plan (no emailrouter.migration-plan schema); write one with "
            "`emailrouter migrate plan --format json`",
            file=str(path),
        )
    return MigrationPlan.from_dict(data)


def _atomic(path: Path, text: str) -> Path:
    return write_atomically(path, mask_known_secrets(text))
