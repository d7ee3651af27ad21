"""Reports: run artifacts (``summary.json``, CSV tables, a self-contained ``report.html``) and the
HTML snippets Result classes show in Jupyter.

Everything that ends up in a report may come from a message and is escaped; reports load nothing
from the network.
"""

from __future__ import annotations

from emailrouter_lib.reports.artifacts import write_run_artifacts
from emailrouter_lib.reports.display import (
    frame_preview_html,
    is_interactive,
    result_html,
    show,
    want_progress,
)
from emailrouter_lib.reports.html import render_html_report

__all__ = [
    "frame_preview_html",
    "is_interactive",
    "render_html_report",
    "result_html",
    "show",
    "want_progress",
    "write_run_artifacts",
]
