"""Probabilities as text and as bars the browser draws: honest percentages and the top-k classes as an HTML table.

No matplotlib here: the Predict page's bars are HTML, so the first page imports no figure machinery (about half a
second of the cold start) and a new image redraws them without a PNG.
"""

from __future__ import annotations

from html import escape

from cnn_explorer.model import Prediction

__all__ = ["TOP_K_COLOURS", "percent", "top_k_bars"]

#: The best class's bar, then the others' (here and in :func:`~cnn_explorer.render.top_k_figure`).
TOP_K_COLOURS = ("#2563eb", "#cbd5e1")


def percent(p: float) -> str:
    """A probability or share as a percentage to one decimal, rounded honestly: never signed when zero (a rest
    computed as ``1 - Σ`` may come out at -1e-9), ``"< 0.1%"`` for a share that is not zero but rounds to it, and
    ``"> 99.9%"`` for one that is not 1 but rounds to 100 %."""
    p = min(max(float(p), 0.0), 1.0)
    if 0.0 < p < 0.0005:
        return "< 0.1%"
    if 0.9995 <= p < 1.0:
        return "> 99.9%"
    return f"{p:.1%}"


def top_k_bars(prediction: Prediction, k: int = 5) -> str:
    """The top-k class probabilities as horizontal bars, best on top: an HTML table of class name, a bar as long as
    the probability (the whole cell is 100 %) and the probability written out, under the axis' name."""
    rows = []
    for rank, (_, name, p) in enumerate(prediction.top[:k]):
        colour = TOP_K_COLOURS[0] if rank == 0 else TOP_K_COLOURS[1]
        width, shown = min(max(float(p), 0.0), 1.0) * 100, escape(percent(p))
        rows.append(
            '<tr style="border:none">'
            f'<th scope="row" style="{_NAME}">{escape(name)}</th>'
            f'<td style="{_CELL}"><div style="{_TRACK}"><div title="{escape(name)}: {shown}" '
            f'style="background:{colour};width:{width:.2f}%;min-width:1px;height:100%;border-radius:3px"></div>'
            "</div></td>"
            f'<td style="{_VALUE}">{shown}</td>'
            "</tr>"
        )
    return (
        f'<table aria-label="Top {len(rows)} classes by probability (softmax)" '
        'style="border-collapse:collapse;border:none;width:100%;margin:0;font-size:0.95rem">'
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<div style="text-align:center;color:#64748b;font-size:0.8rem;margin-top:0.25rem">'
        "probability (softmax); a full track is 100 %</div>"
    )


_CELL = "border:none;padding:0.2rem 0.4rem;vertical-align:middle;"
_NAME = _CELL + "text-align:right;font-weight:normal;white-space:nowrap;width:1%"
_TRACK = "background:#f1f5f9;height:1.35rem;border-radius:3px"  # the whole track is 100 %
_VALUE = _CELL + "white-space:nowrap;width:1%;font-variant-numeric:tabular-nums"
