"""One table of the figures that matter, gathered from every benchmark script.

A script calls :func:`record` for each headline figure; ``python -m bench`` points ``BENCH_RESULTS`` at a file,
runs every script, and prints the rows as one table (also written to ``bench/results.md``). Run alone, a script
just prints its own detailed output and :func:`record` does nothing.
"""

from __future__ import annotations

import json
import os

__all__ = ["record"]

ENV = "BENCH_RESULTS"


def record(area: str, what: str, figure: str, goal: str = "", met: bool | None = None) -> None:
    """Add one row to the gathered table.

    Args:
        area: Which part of the product (``"explanations"``, ``"training"`` …).
        what: What was measured, with its conditions.
        figure: The measurement, with its unit.
        goal: The goal from the issue, if there is one.
        met: Whether the goal was met (None: no goal).
    """
    path = os.environ.get(ENV)
    if not path:
        return
    row = {"area": area, "what": what, "figure": figure, "goal": goal, "met": met}
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(row, ensure_ascii=False) + "\n")
