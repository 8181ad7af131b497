"""Small self-contained HTML pieces for notebooks (``_repr_html_``): bars, tables, a timeline.

Inline styles only: a notebook output cell has no stylesheet of ours, and nothing is
fetched from the network. Every piece of text is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

# tab10, so a label has the same colour as in sonotype's matplotlib figures.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")

TABLE = "border-collapse:collapse;font-size:0.9em;margin:0.3em 0"
CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left"


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def bar(fraction: float, *, width_px: int = 160, color: str = "#1f77b4") -> str:
    """A horizontal bar filled to ``fraction`` (clipped to [0, 1])."""
    f = min(max(float(fraction), 0.0), 1.0)
    return (f"<div style='display:inline-block;width:{width_px}px;height:0.8em;background:#eee;vertical-align:middle'>"
            f"<div style='width:{f * 100:.1f}%;height:100%;background:{color}'></div></div>")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str = "") -> str:
    """A table of cells already escaped or formatted."""
    cap = f"<caption style='text-align:left;font-weight:bold'>{esc(caption)}</caption>" if caption else ""
    head = "".join(f"<th style='{CELL}'>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='{CELL}'>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table style='{TABLE}'>{cap}<tr>{head}</tr>{body}</table>"


def timeline(spans: Sequence[tuple[float, float, str]], labels: Sequence[str], total: float,
             *, width_px: int = 480) -> str:
    """Coloured strip of ``(start, end, label)`` spans over ``[0, total]`` seconds, with a legend."""
    total = max(float(total), 1e-9)
    index = {lab: i for i, lab in enumerate(labels)}
    parts = []
    for start, end, lab in spans:
        left = 100 * max(start, 0.0) / total
        width = 100 * max(min(end, total) - max(start, 0.0), 0.0) / total
        parts.append(f"<div title='{esc(lab)} {start:.2f}-{end:.2f} s' style='position:absolute;left:{left:.2f}%;"
                     f"width:{width:.2f}%;height:100%;background:{colour(index.get(lab, 0))}'></div>")
    strip = (f"<div style='position:relative;width:{width_px}px;height:1.2em;background:#eee'>{''.join(parts)}</div>"
             f"<div style='width:{width_px}px;display:flex;justify-content:space-between;font-size:0.8em'>"
             f"<span>0 s</span><span>{total:.2f} s</span></div>")
    used = [lab for lab in labels if any(s[2] == lab for s in spans)]
    legend = " ".join(f"<span style='white-space:nowrap'><span style='display:inline-block;width:0.8em;height:0.8em;"
                      f"background:{colour(index[lab])}'></span> {esc(lab)}</span>" for lab in used)
    return strip + f"<div style='font-size:0.85em'>{legend}</div>"
