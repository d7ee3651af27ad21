"""The few chart shapes reports use, drawn the same way everywhere.

Each function returns an ``<img>`` (via :func:`figure_html`: a PNG inlined as a data: URL), so a
report stays one self-contained file. Labels come from data and may come from mail; they are drawn
into the picture, never written into the page's markup, and the ``alt`` text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from emailrouter_lib.reports.figures import figure_html

GOOD, WARN, BAD, NEUTRAL, ACCENT = "#1a7f37", "#9a6700", "#cf222e", "#8c959f", "#0b5cad"
_MAX_LABEL = 64


def bar_chart(
    counts: Mapping[str, float],
    *,
    title: str,
    xlabel: str = "",
    colors: Sequence[str] | str = ACCENT,
    limit: int = 15,
) -> str:
    """A horizontal bar chart of *counts*, largest first, at most *limit* bars."""
    import matplotlib.pyplot as plt

    items = sorted(((str(k), float(v)) for k, v in counts.items()), key=lambda kv: -kv[1])[:limit]
    if isinstance(colors, str):
        palette = [colors] * len(items)
    else:
        palette = list(colors)[: len(items)] + [ACCENT] * max(0, len(items) - len(colors))
    height = 0.9 + 0.32 * max(len(items), 1)
    labels = [_short(k) for k, _ in items][::-1]
    # Wide enough for its labels, so long ones ("Skipped: non-delivery report (...)") leave the
    # bars room.
    longest = max((len(label) for label in labels), default=0)
    figure, axes = plt.subplots(figsize=(max(6.4, 3.6 + 0.075 * longest), height))
    values = [v for _, v in items][::-1]
    bars = axes.barh(labels, values, color=palette[::-1])
    axes.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize=8)
    axes.set_title(title, loc="left", fontsize=11)
    axes.set_xlabel(xlabel)
    axes.spines[["top", "right"]].set_visible(False)
    axes.margins(x=0.12)
    if all(float(v).is_integer() for v in values):
        from matplotlib.ticker import MaxNLocator

        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # no 0.5 of a mailbox
    if not items:
        axes.text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    return figure_html(figure, alt=f"{title}: " + ", ".join(f"{k} {v:,.0f}" for k, v in items))


def _short(text: str) -> str:
    text = text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"
    return text.replace("$", r"\$")  # matplotlib would read $…$ as mathematics


__all__ = ["ACCENT", "BAD", "GOOD", "NEUTRAL", "WARN", "bar_chart"]
