"""Plots for reports: matplotlib figures inlined as PNG data URLs (the report works offline)."""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")  # no display: reports are made in batch runs and kernels alike


def figure_html(figure, *, alt: str) -> str:
    """An ``<img>`` holding *figure* as a PNG; the figure is closed afterwards."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
