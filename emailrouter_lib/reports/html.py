"""One self-contained HTML page per run: key figures first, then sortable tables.

Reports are opened by admins from a file share or an e-mail attachment, often on machines without
internet access, so the page carries its own CSS and a few lines of JavaScript (click a column
heading to sort, type to filter) and loads nothing. Every value in it may come from a message
(subjects, addresses, reasons quoting headers) and is therefore escaped, and a Content Security
Policy that allows only this page's own script and style is a second fence: if a value ever slipped
through unescaped, the browser would still refuse to run it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import pandas as pd

__all__ = ["render_html_report"]

# Outcome-like columns get a data attribute so the stylesheet can colour created / quarantined rows.
_OUTCOME_COLUMNS = frozenset({"outcome", "status"})

_SCRIPT = """
(function () {
  "use strict";
  var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
  function key(cell, numeric) {
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent; }
    if (v === "") { return null; }
    if (numeric) { var n = parseFloat(v); return isNaN(n) ? null : n; }
    return v;
  }
  function sortBy(table, th, col) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var numeric = th.getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var c = numeric ? x - y : collator.compare(x, y);
      return ascending ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.querySelector("button").addEventListener("click", function () { sortBy(table, th, col); });
    });
  });
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-filter"));
    var counter = document.getElementById(input.getAttribute("data-counter"));
    var total = table.tBodies[0].rows.length;
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase(), shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var hit = q === "" || row.textContent.toLowerCase().indexOf(q) !== -1;
        row.hidden = !hit;
        if (hit) { shown++; }
      });
      counter.textContent = q === "" ? total + " rows" : shown + " of " + total + " rows";
    });
  });
  document.documentElement.setAttribute("data-report-ready", "1");
})();
"""


def render_html_report(
    title: str,
    summary: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    *,
    subtitle: str | None = None,
    notes: Sequence[str] = (),
    max_rows: int = 20_000,
    figures: Mapping[str, str] = {},
    links: Mapping[str, str] = {},
) -> str:
    """Return a complete HTML document: *summary* as cards and details, figures, then each table.

    *figures* maps a caption to an ``<img>`` made by
    :func:`emailrouter_lib.reports.figures.figure_html` (a PNG inlined as a data: URL, so the page
    stays self-contained).

    Numbers (and mappings of numbers, such as outcome counts) in *summary* become cards; other
    values are listed under "Details". Tables longer than *max_rows* are cut, and say so; the
    CSV artifacts always hold every row.

    *links* maps a label to a relative path or an http(s)/file URL (a migration plan, the
    workbook) listed under the summary; anything else (``javascript:``…) is shown as text.
    """
    css = resources.files(__package__).joinpath("report.css").read_text(encoding="utf-8")
    body = [
        "<header>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="subtitle">{_e(subtitle)}</p>' if subtitle else "",
        "</header>",
        _summary_section(summary, notes),
        _links_section(links),
    ]
    if figures:
        body.append('<section class="figures" aria-label="Plots">')
        for caption, image in figures.items():
            body.append(f"<figure>{image}<figcaption>{_e(caption)}</figcaption></figure>")
        body.append("</section>")
    for index, (name, frame) in enumerate(tables.items()):
        body.append(_table_section(name, frame, f"t{index}", max_rows))
    from emailrouter_lib import __version__

    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    body.append(f"<footer>Generated by emailrouter {_e(__version__)} at {generated}.</footer>")
    policy = (
        "default-src 'none'; img-src data:; base-uri 'none'; form-action 'none'; "
        f"style-src '{_sha256(css)}'; script-src '{_sha256(_SCRIPT)}'"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_e(policy)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{css}</style>",
            "</head>",
            "<body>",
            "<main>",
            *[part for part in body if part],
            "</main>",
            f"<script>{_SCRIPT}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _summary_section(summary: Mapping[str, Any], notes: Sequence[str]) -> str:
    cards: list[str] = []
    groups: list[str] = []
    details: list[str] = []
    for key, value in summary.items():
        if _is_number(value):
            cards.append(_card(key, value))
        elif isinstance(value, Mapping) and value and all(_is_number(v) for v in value.values()):
            group = "".join(_card(k, v) for k, v in value.items())
            groups.append(f'<h3>{_e(_label(key))}</h3><ul class="cards">{group}</ul>')
        else:
            details.append(f"<dt>{_e(_label(key))}</dt><dd>{_e(_text(value))}</dd>")
    parts = ['<section class="summary">', "<h2>Summary</h2>"]
    if cards:
        parts.append(f'<ul class="cards">{"".join(cards)}</ul>')
    parts.extend(groups)
    if details:
        parts.append(f'<dl class="details">{"".join(details)}</dl>')
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _links_section(links: Mapping[str, str]) -> str:
    if not links:
        return ""
    items = []
    for label, target in links.items():
        if _safe_href(str(target)):
            items.append(f'<li><a href="{_e(target)}">{_e(label)}</a></li>')
        else:
            items.append(f"<li>{_e(label)}: {_e(target)}</li>")
    return f'<nav class="links" aria-label="Related files"><ul>{"".join(items)}</ul></nav>'


def _safe_href(target: str) -> bool:
    """Relative paths and http(s)/file URLs only: never javascript:, data: or the like."""
    scheme, sep, _ = target.partition(":")
    if not sep or "/" in scheme or "\\" in scheme:
        return not target.strip().lower().startswith(("javascript", "data", "vbscript"))
    if len(scheme) == 1 and scheme.isalpha():  # C:\reports\plan.html
        return True
    return scheme.lower() in ("http", "https", "file")


def _card(key: Any, value: Any) -> str:
    zero = " zero" if value == 0 else ""
    return (
        f'<li class="card{zero}"><span class="value">{_e(_number(value))}</span>'
        f'<span class="label">{_e(_label(key))}</span></li>'
    )


def _table_section(name: str, frame: pd.DataFrame, table_id: str, max_rows: int) -> str:
    total = len(frame)
    shown = frame.head(max_rows) if total > max_rows else frame
    columns = [str(c) for c in shown.columns]
    numeric = [
        pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])
        for c in shown.columns
    ]
    outcome_like = [c.lower() in _OUTCOME_COLUMNS for c in columns]
    id_like = [_looks_like_ids(shown[c]) for c in shown.columns]
    head = "".join(_heading(col, is_num) for col, is_num in zip(columns, numeric, strict=True))
    rows = []
    for record in shown.itertuples(index=False, name=None):
        cells = []
        for value, is_num, is_outcome, is_id in zip(
            record, numeric, outcome_like, id_like, strict=True
        ):
            cells.append(_cell(value, is_num, is_outcome, is_id))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    counter_id = f"{table_id}-count"
    count_text = f"{total} row" + ("" if total == 1 else "s")
    parts = [
        f'<section class="table" aria-labelledby="{table_id}-title">',
        f'<h2 id="{table_id}-title">{_e(_label(name))}</h2>',
    ]
    if total == 0:
        parts.append('<p class="empty-table">No rows.</p></section>')
        return "\n".join(parts)
    parts += [
        '<div class="table-tools">',
        f'<span id="{counter_id}">{count_text}</span>',
        f'<input type="search" placeholder="Filter rows" aria-label="Filter {_e(_label(name))}" '
        f'data-filter="{table_id}" data-counter="{counter_id}">',
        "</div>",
        '<div class="table-wrap">',
        f'<table class="sortable" id="{table_id}">',
        f"<thead><tr>{head}</tr></thead>",
        "<tbody>",
        "\n".join(rows),
        "</tbody>",
        "</table>",
        "</div>",
    ]
    if total > len(shown):
        parts.append(
            f'<p class="truncated">Showing the first {len(shown)} of {total} rows; '
            "the CSV file beside this report has them all.</p>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _heading(column: str, is_num: bool) -> str:
    kind = 'class="num" data-type="num"' if is_num else 'data-type="text"'
    return f'<th scope="col" {kind}><button type="button">{_e(column)}</button></th>'


def _cell(value: Any, is_num: bool, is_outcome: bool, is_id: bool = False) -> str:
    if _is_missing(value):
        return '<td class="empty"></td>'
    if is_num and _is_number(value):
        return f'<td class="num" data-sort="{_e(repr(float(value)))}">{_e(_number(value))}</td>'
    text = _text(value)
    if is_outcome:
        kind = text.split(":", 1)[0].strip().lower()
        return f'<td data-outcome="{_e(kind)}">{_e(text)}</td>'
    if is_id:
        return f'<td class="id">{_e(text)}</td>'
    return f"<td>{_e(text)}</td>"


def _looks_like_ids(column: pd.Series) -> bool:
    """Long tokens without spaces (paths, Message-IDs, GUIDs): shown small so prose stays wide."""
    texts = [v for v in column.head(200) if isinstance(v, str) and v]
    if not texts:
        return False
    addresses = sum(1 for v in texts if "@" in v and "://" not in v and " " not in v)
    if addresses >= 0.5 * len(texts):
        return False  # e-mail addresses are what people read a mailbox column for
    spaceless = sum(1 for v in texts if not any(ch.isspace() for ch in v))
    lengths = sorted(len(v) for v in texts)
    return spaceless >= 0.8 * len(texts) and lengths[len(lengths) // 2] >= 16


def _e(value: Any) -> str:
    """Escape for both element content and quoted attribute values."""
    return html.escape(str(value), quote=True)


def _label(key: Any) -> str:
    return str(key).replace("_", " ")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, arrays: not a single missing value
        return False


def _number(value: Any) -> str:
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    number = float(value)
    if math.isnan(number):
        return ""
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.3f}".rstrip("0").rstrip(".")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime | pd.Timestamp):
        return value.isoformat(sep=" ")
    if isinstance(value, list | tuple | set | frozenset):
        return "\n".join(_text(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{_label(k)}: {_inline(v)}" for k, v in value.items())
    return str(value)


def _inline(value: Any) -> str:
    if value is None or isinstance(value, str | numbers.Number):
        return _text(value)
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
