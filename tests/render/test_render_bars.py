"""render.bars: the top-k probabilities as HTML bars, read back from the HTML against torch's softmax."""

import re

import torch

from cnn_explorer import render
from cnn_explorer.model import Prediction


def _prediction(logits: list[float], names: list[str]) -> Prediction:
    logits_t = torch.tensor(logits)
    probabilities = torch.softmax(logits_t, dim=0)
    values, indices = probabilities.sort(descending=True)
    top = [(int(i), names[int(i)], float(v)) for v, i in zip(values, indices, strict=True)]
    return Prediction(probabilities=probabilities, logits=logits_t, top=top)


def _rows(html: str) -> list[tuple[str, float, str, str]]:
    """(name, bar width in %, bar colour, written probability) of each row, top to bottom."""
    pattern = (
        r'<th scope="row"[^>]*>(.*?)</th>.*?background:(#[0-9a-f]{6});width:([0-9.]+)%.*?'
        r"<td[^>]*>([^<]*)</td></tr>"
    )
    return [(name, float(width), colour, value) for name, colour, width, value in re.findall(pattern, html)]


def test_bars_are_the_softmax_best_first() -> None:
    names = ["circle", "square", "star", "triangle", "heart", "arrow"]
    prediction = _prediction([2.0, 0.5, 3.0, -1.0, 0.0, 1.0], names)
    html = render.top_k_bars(prediction, k=5)

    rows = _rows(html)
    probabilities = torch.softmax(torch.tensor([2.0, 0.5, 3.0, -1.0, 0.0, 1.0]), dim=0)
    order = probabilities.argsort(descending=True)[:5]
    assert [name for name, *_ in rows] == [names[int(i)] for i in order]
    for (_, width, _, written), i in zip(rows, order, strict=True):
        assert abs(width - 100 * float(probabilities[i])) < 0.006  # written to two decimals
        assert written == render.percent(float(probabilities[i]))
    assert [colour for _, _, colour, _ in rows] == [render.TOP_K_COLOURS[0]] + [render.TOP_K_COLOURS[1]] * 4
    assert 'aria-label="Top 5 classes by probability (softmax)"' in html


def test_fewer_classes_than_k_and_names_escaped() -> None:
    prediction = _prediction([0.0, 9.0], ["<b>bold</b>", "a & b"])
    rows = _rows(render.top_k_bars(prediction, k=5))
    assert [name for name, *_ in rows] == ["a &amp; b", "&lt;b&gt;bold&lt;/b&gt;"]
    assert [written for *_, written in rows] == ["&gt; 99.9%", "&lt; 0.1%"]  # honest, never 100.0 % and 0.0 %


def test_the_figures_stay_reachable_though_imported_on_first_use() -> None:
    # The figure functions stay reachable through render, imported when first used.
    assert callable(render.top_k_figure) and callable(render.colourbar_figure)
    assert "top_k_figure" in dir(render)
