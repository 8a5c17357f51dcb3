"""render.figures: vectors, histograms, colour bars, curves and honest percentages."""

from __future__ import annotations

from io import BytesIO

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from cnn_explorer import render


def test_vector_figure_draws_one_bar_per_value_for_short_vectors():
    values = torch.tensor([[0.5, -1.0, 2.0, 0.0]])  # a [1, N] layer output
    fig = render.vector_figure(values, labels=["a", "b", "c", "d"], title="logits", highlight=2)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.patches) == 4
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    assert matplotlib.colors.to_hex(ax.patches[2].get_facecolor()) == "#ff00ff"
    assert [p.get_height() for p in ax.patches] == [0.5, -1.0, 2.0, 0.0]


def test_vector_figure_summarizes_long_vectors_with_top_values():
    values = torch.zeros(1000)
    values[[7, 42, 900]] = torch.tensor([3.0, 2.0, 1.0])
    fig = render.vector_figure(values, labels=[f"class {i}" for i in range(1000)], highlight=500, top_k=3)
    overview, ranked = fig.axes
    assert any(len(line.get_xdata()) == 1000 for line in overview.lines)  # the whole vector, not just its top
    assert len(ranked.patches) == 4  # the top 3 and the highlighted value
    names = [t.get_text() for t in ranked.get_yticklabels()]
    assert names == ["class 500 (#500)", "class 900 (#900)", "class 42 (#42)", "class 7 (#7)"]
    fig.savefig(BytesIO(), format="png")
    with pytest.raises(ValueError, match="labels"):
        render.vector_figure(values, labels=["x"])


def test_histogram_figure_reports_the_share_of_zeros():
    values = torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 4.0])
    fig = render.histogram_figure(values, bins=4, title="relu")
    (ax,) = fig.axes
    assert sum(p.get_height() for p in ax.patches) == 8
    assert any("zeros: 50.0% of 8" in t.get_text() for t in ax.texts)


def test_colourbar_figure_labels_its_range():
    fig = render.colourbar_figure(-2.0, 3.0, "RdBu_r", "activation")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-2", "0", "3"]
    assert ax.get_xlabel() == "activation"
    constant = render.colourbar_figure(1.5, 1.5, "viridis", "")
    constant.savefig(BytesIO(), format="png")
    assert [t.get_text() for t in constant.axes[0].get_xticklabels()] == ["1.5"]


def test_curves_figure_draws_each_curve():
    x = np.linspace(0, 1, 5)
    fig = render.curves_figure(x, {"a": x, "random": 1 - x}, "t", "x", "y", dashed=["random"])
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["a", "random"]
    np.testing.assert_array_equal(lines[1].get_ydata(), 1 - x)
    assert lines[1].get_linestyle() == "--"
    with pytest.raises(ValueError, match="Curve 'b' has 2 values for 5 x values"):
        render.curves_figure(x, {"b": [1, 2]}, "t", "x", "y")


@pytest.mark.parametrize(
    ("share", "shown"),
    [
        (-1e-9, "0.0%"),  # 1 - Σ of the top five, rounded below zero: never "-0.0%"
        (0.0, "0.0%"),
        (3e-6, "< 0.1%"),  # not zero, so not "0.0%"
        (0.0005, "0.1%"),
        (0.123456, "12.3%"),
        (0.9994, "99.9%"),
        (0.99996, "> 99.9%"),  # not certain, so not "100.0%"
        (1.0, "100.0%"),
        (1.0000001, "100.0%"),
    ],
)
def test_percent_rounds_honestly(share, shown):
    assert render.percent(share) == shown
