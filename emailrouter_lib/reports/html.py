"""One self-contained HTML page per run: key figures first, then sortable tables.

Reports are opened by admins from a file share or an e-mail attachment, often on machines without
internet access, so the page carries its own CSS and a few lines of JavaScript (click a column
heading to sort, type to filter, click a row for its details) and loads nothing. What went wrong
comes first, in a red banner, because a run that failed must never look like one that did nothing.
Tables show a few columns that fit the page; the rest of a row, and the full text of any value cut
short, is one click away, so nobody scrolls sideways to find the mailbox a row is about. Every
value in it may come from a message (subjects, addresses, reasons quoting headers) and is therefore
escaped, and a Content Security Policy that allows only this page's own script and style is a
second fence: if a value ever slipped through unescaped, the browser would still refuse to run it.
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
_OUTCOME_COLUMNS = frozenset({"outcome", "status", "state", "action", "severity"})
MAIN_COLUMNS = 7  # columns shown in a table's row; the others are in the row's details
SHORT_TEXT = 140  # longer values are cut in the row (the details and the tooltip hold them whole)
SHORT_ID = 34  # the same for identifiers: URLs, item keys, GUIDs, Message-IDs
_TOGGLE = '<button type="button" class="more" aria-expanded="false" aria-label="Details"></button>'
_BAD_WORDS = ("failed", "quarantined", "error", "unreachable")

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
  function mainRows(body) {
    return Array.prototype.filter.call(body.rows, function (r) {
      return !r.classList.contains("detail");
    });
  }
  function detailOf(row) {
    var next = row.nextElementSibling;
    return next && next.classList.contains("detail") ? next : null;
  }
  function sortBy(table, th, col) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var numeric = th.getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = mainRows(body).map(function (r) { return [r, detailOf(r)]; });
    rows.sort(function (a, b) {
      var x = key(a[0].cells[col], numeric), y = key(b[0].cells[col], numeric);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var c = numeric ? x - y : collator.compare(x, y);
      return ascending ? c : -c;
    });
    rows.forEach(function (pair) {
      body.appendChild(pair[0]);
      if (pair[1]) { body.appendChild(pair[1]); }
    });
  }
  function toggle(row) {
    var detail = detailOf(row);
    if (!detail) { return; }
    var open = detail.hidden;
    detail.hidden = !open;
    row.classList.toggle("open", open);
    var button = row.querySelector("button.more");
    if (button) { button.setAttribute("aria-expanded", open ? "true" : "false"); }
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      if (!th.hasAttribute("data-type")) { return; }
      th.addEventListener("click", function () { sortBy(table, th, col); });
    });
    table.tBodies[0].addEventListener("click", function (event) {
      var row = event.target.closest("tr");
      if (!row || row.classList.contains("detail")) { return; }
      if (event.target.closest("a") || window.getSelection().toString()) { return; }
      toggle(row);
    });
  });
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-filter"));
    var counter = document.getElementById(input.getAttribute("data-counter"));
    var total = mainRows(table.tBodies[0]).length;
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase(), shown = 0;
      mainRows(table.tBodies[0]).forEach(function (row) {
        var detail = detailOf(row);
        var text = row.textContent + " " + (detail ? detail.textContent : "");
        var hit = q === "" || text.toLowerCase().indexOf(q) !== -1;
        row.hidden = !hit;
        if (detail && !hit) { detail.hidden = true; row.classList.remove("open"); }
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
    alerts: Sequence[str] = (),
    alert_title: str | None = None,
    main_columns: Mapping[str, Sequence[str]] = {},
) -> str:
    """Return a complete HTML document: *alerts*, *summary* as cards and details, figures, then
    each table.

    *alerts* (one line per failed mailbox, quarantined message...) become a red banner at the top
    headed *alert_title*; an empty list shows none. *main_columns* names, per table, the columns
    a row shows (default: the first seven); the others are in the row's details.

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
        _alert_section(alerts, alert_title),
        _summary_section(summary, notes),
        _links_section(links),
    ]
    if figures:
        body.append('<section class="figures" aria-label="Plots">')
        for caption, image in figures.items():
            body.append(f"<figure>{image}<figcaption>{_e(caption)}</figcaption></figure>")
        body.append("</section>")
    for index, (name, frame) in enumerate(tables.items()):
        shown = main_columns.get(name)
        body.append(_table_section(name, frame, f"t{index}", max_rows, shown))
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


def _alert_section(alerts: Sequence[str], title: str | None) -> str:
    if not alerts:
        return ""
    heading = title or f"{len(alerts)} problem" + ("" if len(alerts) == 1 else "s")
    items = "".join(f"<li>{_e(a)}</li>" for a in alerts)
    return (
        f'<section class="alert" role="alert" aria-label="Problems"><h2>{_e(heading)}</h2>'
        f"<ul>{items}</ul></section>"
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
    if value and any(word in _label(key).lower() for word in _BAD_WORDS):
        zero = " bad"
    return (
        f'<li class="card{zero}"><span class="value">{_e(_number(value))}</span>'
        f'<span class="label">{_e(_label(key))}</span></li>'
    )


def _table_section(
    name: str,
    frame: pd.DataFrame,
    table_id: str,
    max_rows: int,
    main: Sequence[str] | None = None,
) -> str:
    total = len(frame)
    shown = frame.head(max_rows) if total > max_rows else frame
    if main is not None:  # the row's columns in the order given, then the details' columns
        first = [c for c in main if c in shown.columns]
        shown = shown[first + [c for c in shown.columns if c not in first]]
    columns = [str(c) for c in shown.columns]
    wanted = [str(c) for c in main] if main is not None else columns[:MAIN_COLUMNS]
    in_row = [c in wanted for c in columns]
    numeric = [
        pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])
        for c in shown.columns
    ]
    outcome_like = [c.lower() in _OUTCOME_COLUMNS for c in columns]
    id_like = [_looks_like_ids(shown[c]) for c in shown.columns]
    has_details = not all(in_row)
    rows = []
    for record in shown.itertuples(index=False, name=None):
        cells, details, cut = [], [], False
        for column, value, keep, is_num, is_outcome, is_id in zip(
            columns, record, in_row, numeric, outcome_like, id_like, strict=True
        ):
            if keep:
                cell, was_cut = _cell(value, is_num, is_outcome, is_id)
                cells.append(cell)
                cut = cut or was_cut
            if (not keep or _long(value, is_id)) and not _is_missing(value):
                details.append(f"<dt>{_e(_label(column))}</dt><dd>{_e(_text(value))}</dd>")
        if has_details or cut:
            # The toggle sits in the first cell, so columns keep their places for scripts.
            first = cells[0].index(">") + 1
            cells[0] = cells[0][:first] + _TOGGLE + cells[0][first:]
            rows.append(f'<tr class="has-detail">{"".join(cells)}</tr>')
            rows.append(
                f'<tr class="detail" hidden><td colspan="{len(cells)}">'
                f'<dl class="row-details">{"".join(details)}</dl></td></tr>'
            )
        else:
            rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(
        _heading(col, is_num)
        for col, is_num, keep in zip(columns, numeric, in_row, strict=True)
        if keep
    )
    counter_id = f"{table_id}-count"
    count_text = f"{total} row" + ("" if total == 1 else "s")
    parts = [
        f'<section class="table" aria-labelledby="{table_id}-title">',
        f'<h2 id="{table_id}-title">{_e(_label(name))}</h2>',
    ]
    if total == 0:
        parts.append('<p class="empty-table">No rows.</p></section>')
        return "\n".join(parts)
    hint = " · click a row for its details" if any("has-detail" in r for r in rows) else ""
    parts += [
        '<div class="table-tools">',
        f'<span id="{counter_id}">{count_text}</span>',
        f'<input type="search" placeholder="Filter rows" aria-label="Filter {_e(_label(name))}" '
        f'data-filter="{table_id}" data-counter="{counter_id}">',
        f'<span class="hint">{hint.strip(" ·")}</span>' if hint else "",
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
    return "\n".join(part for part in parts if part)


def _heading(column: str, is_num: bool) -> str:
    kind = 'class="num" data-type="num"' if is_num else 'data-type="text"'
    return f'<th scope="col" {kind}><button type="button">{_e(_label(column))}</button></th>'


def _cell(value: Any, is_num: bool, is_outcome: bool, is_id: bool = False) -> tuple[str, bool]:
    """The ``<td>`` for *value*, and whether its text was cut short (the details hold it)."""
    if _is_missing(value):
        return '<td class="empty"></td>', False
    if is_num and _is_number(value):
        sort = _e(repr(float(value)))
        return f'<td class="num" data-sort="{sort}">{_e(_number(value))}</td>', False
    text = _text(value)
    short = _shorten(text, SHORT_ID if is_id else SHORT_TEXT, middle=is_id)
    title = f' title="{_e(text)}"' if short != text else ""
    sort = f' data-sort="{_e(text)}"' if short != text else ""
    if is_outcome:
        kind = text.split(":", 1)[0].strip().lower()
        return f'<td data-outcome="{_e(kind)}"{title}{sort}>{_e(short)}</td>', short != text
    if is_id:
        return f'<td class="id"{title}{sort}>{_e(short)}</td>', short != text
    return f"<td{title}{sort}>{_e(short)}</td>", short != text


def _long(value: Any, is_id: bool) -> bool:
    if _is_missing(value) or _is_number(value):
        return False
    return len(_text(value)) > (SHORT_ID if is_id else SHORT_TEXT)


def _shorten(text: str, limit: int, *, middle: bool = False) -> str:
    """*text* cut to *limit* characters; identifiers keep their start and their end (a mailbox
    URL's scheme and folder, an item key's file name), prose keeps its start."""
    if len(text) <= limit:
        return text
    if middle:
        head = (limit - 1) * 2 // 5
        return text[:head] + "…" + text[-(limit - 1 - head) :]
    return text[: limit - 1].rstrip() + "…"


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
