"""The report's sections, each one piece of HTML: the header, the out-of-distribution note, the prediction, the input,
the feature maps, the explanations, the trust checks, the model card and the footer.

:func:`~cnn_explorer.report.build.build_report` computes the values and hands them here; each function only writes
them out, with the pictures drawn by :mod:`cnn_explorer.render` and embedded by :mod:`cnn_explorer.report.markup`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from cnn_explorer import render
from cnn_explorer.attribution import METHODS, Explanation
from cnn_explorer.layers import LayerInfo
from cnn_explorer.model import LoadedModel, Prediction
from cnn_explorer.report.layout import _PAGE_PX, _SHARP, _fitting
from cnn_explorer.report.markup import _figure_img, _img, _markdown, _text
from cnn_explorer.trust import METRICS, TrustReport

_TOP_K = 5
_MAP_PX = 120  # the largest a feature map is printed (32 mm): two small layers share a page
_PICTURE_PX = 224  # small network inputs (32×32, 64×64) are enlarged to at least this, pixels kept square
_GIVEN_SIDE = 640  # the image as given is shrunk to at most this side: a 12-megapixel photo would bloat the file
_CURVES_INCHES = (4.2, 2.8)  # two curves side by side on A4 keep their labels readable
_CARDS_PER_ROW = 3


# The trust table's column widths (fixed layout: the table is as wide as its column, and long cells wrap).
_TRUST_COLUMNS = (
    '<colgroup><col style="width:15%"><col style="width:12%"><col style="width:12%"><col style="width:14.5%">'
    '<col style="width:15%"><col style="width:10.5%"><col style="width:12%"><col style="width:9%"></colgroup>'
)


def _header(title: str, model: LoadedModel, subject: str, best_name: str, best_probability: float) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<header>
<h1>{_text(title)}</h1>
<p class="meta">{_text(model.summary)} · generated {when} with CNN Explorer (PyTorch {_text(torch.__version__)})</p>
<p class="verdict">{_text(model.name)} says {_text(subject)} is <strong>{_text(best_name)}</strong>
with probability <strong>{render.percent(best_probability)}</strong>.</p>
</header>"""


def _ood_note(model: LoadedModel, x: Tensor) -> str:
    """Next to the prediction: that the image is unlike the training data (named), or that no score exists."""
    from cnn_explorer import ood

    verdict = ood.verdict(model, x)
    if verdict.out_of_distribution:
        return f'<p class="verdict" style="background:#fef3c7">⚠ {_text(verdict.message)}</p>'
    return f'<p class="note">{_text(verdict.message)}</p>' if verdict.score is None else ""


def _prediction_section(prediction: Prediction, picture: Image.Image, model: LoadedModel) -> str:
    k = min(_TOP_K, len(prediction.top))
    rows = []
    for rank, (index, name, probability) in enumerate(prediction.top[:k], 1):
        bar = "bar best" if rank == 1 else "bar"
        rows.append(
            f'<tr><td class="num">{rank}</td><td>{_text(name)}</td>'
            f'<td class="num" data-value="{probability!r}">{render.percent(probability)}</td>'
            f'<td class="barcell"><div class="{bar}" style="width:{100 * probability:.1f}%"></div></td>'
            f'<td class="num dim">{float(prediction.logits[index]):.3f}</td></tr>'
        )
    shown = {index for index, _, _ in prediction.top[:k]}
    rest = sum(float(p) for i, p in enumerate(prediction.probabilities) if i not in shown)  # not 1 - Σ: no -0.0 %
    others = len(prediction.top) - k
    tail = f'<p class="caption">The other {others} classes share {render.percent(rest)}.</p>' if others > 0 else ""
    return f"""<section class="keep">
<h2>1 · Prediction</h2>
<div class="row">
<figure class="narrow">{_img(render.for_display(picture, _PICTURE_PX), "the image as the network sees it", pixels=True)}
<figcaption>The network's input ({model.input_size[1]}×{model.input_size[2]} pixels)</figcaption></figure>
<div class="grow">
<table class="topk"><thead><tr><th>#</th><th>class</th><th class="num">probability</th><th></th>
<th class="num">logit</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{tail}
<p class="caption">Probabilities are the softmax of the network's outputs (logits): they sum to 100 % over all
{len(model.class_names)} classes the model knows, so they say how the model ranks these classes, not how sure a
person should be.</p>
</div></div>
</section>"""


def _input_section(model: LoadedModel, image: Image.Image, picture: Image.Image, x: Tensor) -> str:
    given = image.copy()
    given.thumbnail((_GIVEN_SIDE, _GIVEN_SIDE))
    shrunk = " (shrunk for this report)" if given.size != image.size else ""
    names = ["grey"] if x.shape[1] == 1 else ["red", "green", "blue"]
    channels = []
    for name, coloured in zip(names, render.channel_maps(x), strict=False):
        channels.append(
            f"<figure>{_img(render.for_display(coloured.image, _PICTURE_PX), f'{name} channel', pixels=True)}"
            f"<figcaption><strong>{name}</strong>: {coloured.vmin:+.2f} … {coloured.vmax:+.2f}</figcaption></figure>"
        )
    steps = "".join(f"<li>{_text(step)}</li>" for step in model.preprocess.steps())
    return f"""<section>
<div class="keep">
<h2>2 · The input as the network sees it</h2>
<div class="row">
<figure class="third">{_img(render.for_display(given, _PICTURE_PX), "the image as given", pixels=True)}
<figcaption>The image as given: {image.width}×{image.height} pixels{shrunk}</figcaption></figure>
<figure class="third">{_img(render.for_display(picture, _PICTURE_PX), "the image as the network sees it", pixels=True)}
<figcaption>As the network sees it: {picture.width}×{picture.height} pixels</figcaption></figure>
<div class="grow"><h3 class="first">Preprocessing</h3><ol>{steps}</ol></div>
</div>
</div>
<div class="keep">
<p>The result is the input tensor <code>{_text(str(list(x.shape)))}</code> = [batch, channels, height, width]:
one number per pixel and channel, which is what the first layer actually reads. Each channel, coloured on its own
scale (blue below zero, white zero, red above):</p>
<div class="row channels">{"".join(channels)}</div>
</div>
</section>"""


def _layer_figure(info: LayerInfo, output: Tensor, model: LoadedModel) -> str:
    shape = "×".join(map(str, info.output_shape))
    field = "the whole input" if info.whole_input else f"{info.receptive_field} px of the input"
    heading = f"""<h3>{_text(info.name)} · {_text(info.kind)}</h3>
<p class="caption">input {_text(str(list(info.input_shape)))} → output {_text(str(list(info.output_shape)))} ·
{info.params:,} parameters · each value sees {field}. {_text(info.description)}</p>"""
    if output.dim() == 3:
        count, height, width = output.shape
        grid = render.feature_grid(output, "layer", cell=_MAP_PX * _SHARP, max_width=_PAGE_PX * _SHARP)
        low, high = grid.ranges[0]
        bar = _figure_img(render.colourbar_figure(low, high, grid.cmap), f"colour scale of {info.name}", "scale")
        return f"""<figure class="layer">{heading}
{_img(grid.image, f"the {count} feature maps of {info.name}", density=_fitting(grid.image))}
<div class="scaled"><figcaption>All {count} feature maps ({height}×{width} each), on one colour scale for the
layer: <span data-range="{low!r} {high!r}">{low:.3g} … {high:.3g}</span> ({_text(grid.cmap)}).</figcaption>
{bar}</div></figure>"""
    if output.dim() == 1:
        labels = list(model.class_names) if output.numel() == len(model.class_names) else None
        figure = render.vector_figure(output, labels, title=info.name)
        return f"""<figure class="layer">{heading}
{_figure_img(figure, f"the {output.numel()} values of {info.name}")}
<figcaption>The {output.numel()} values of {_text(info.name)} ({shape}): {float(output.min()):.3g} …
{float(output.max()):.3g}.</figcaption></figure>"""
    return f'<figure class="layer">{heading}<p class="note">An output of shape {shape} is not drawn.</p></figure>'


def _layers_section(parts: Sequence[str], chosen: Sequence[str]) -> str:
    if not chosen:
        return '<section><h2>3 · Feature maps</h2><p class="note">No layer was chosen.</p></section>'
    # The heading, its paragraph and the first layer stay on one page: a heading alone at a page's foot says nothing.
    return f"""<section>
<div class="keep">
<h2>3 · Feature maps</h2>
<p>What {len(chosen)} of the network's layers detect in this image: each small map shows where one filter
responds (bright: strongly). Early layers react to edges and colours, later ones to larger patterns.</p>
{parts[0] if parts else ""}
</div>
{"".join(parts[1:])}
</section>"""


def _explanations_section(
    methods: Sequence[str],
    explanations: Mapping[str, Explanation],
    skipped: Mapping[str, str],
    picture: Image.Image,
    class_name: str,
) -> str:
    if not methods:
        return '<section><h2>4 · Explanations</h2><p class="note">No explanation method was chosen.</p></section>'
    cards = []
    for method in methods:
        spec = METHODS[method]
        cite = f'<a href="{_text(spec.url)}">{_text(spec.paper)}</a>'
        if method in skipped:
            cards.append(
                f'<figure class="card"><h3>{_text(spec.name)}</h3><p class="note">Not computed: '
                f"{_text(skipped[method])}</p><figcaption>{cite}</figcaption></figure>"
            )
            continue
        result = explanations[method]
        at = f" at <code>{_text(result.layer)}</code>" if result.layer else ""
        if result.is_constant:  # an overlay of nothing would be the bare image: the reason is written on it
            note = result.blank_note()
            blank = render.blank_map(picture, note, _PICTURE_PX)
            cards.append(
                f"""<figure class="card blank" data-constant="true"><h3>{_text(spec.name)}</h3>
{_img(blank, f"{spec.name}: {note}")}
<figcaption>For <strong>{_text(result.target_name)}</strong>{at} · no colour scale: {_text(note)} ·
<span class="nowrap">{result.seconds:.2f} s</span><br>{_text(spec.summary)} {cite}</figcaption></figure>"""
            )
            continue
        shown = render.heat_overlay(picture, result.heatmap)  # the explanations' default look
        cards.append(
            f"""<figure class="card"><h3>{_text(spec.name)}</h3>
{_img(render.for_display(shown.image, _PICTURE_PX), f"{spec.name} over the image", pixels=True)}
<figcaption>For <strong>{_text(result.target_name)}</strong>{at} · scale {shown.vmin:.3g} … {shown.vmax:.3g} of
the largest ({_text(shown.cmap)}) · <span class="nowrap">{result.seconds:.2f} s</span><br>
{_text(spec.summary)} {cite}</figcaption></figure>"""
        )
    rows = ["".join(cards[i : i + _CARDS_PER_ROW]) for i in range(0, len(cards), _CARDS_PER_ROW)]
    rest = "".join(f'<div class="cards">{row}</div>' for row in rows[1:])
    return f"""<section>
<div class="keep">
<h2>4 · Explanations</h2>
<p>Which parts of the image made the score of <strong>{_text(class_name)}</strong> high — each method answers in its
own way. Colour shows evidence for the class (only the positive part, scaled to the largest value); where the picture
shows through, the method found none.</p>
<div class="cards">{rows[0]}</div>
</div>
{rest}
</section>"""


def _trust_section(
    reports: Mapping[str, TrustReport], unchecked: Mapping[str, str], class_name: str, settings: Mapping[str, Any]
) -> str:
    notes = "".join(
        f'<p class="note">{_text(METHODS[method].name)}: the checks cannot run — {_text(why)}</p>'
        for method, why in unchecked.items()
    )
    if not reports:
        notes = notes or '<p class="note">No map to check.</p>'
        return f"<section><h2>5 · Can these maps be trusted?</h2>{notes}</section>"
    rows, warnings = [], [notes]
    for method, report in reports.items():
        curves, check = report.faithfulness, report.randomization
        values = report.values
        warnings.extend(
            f'<p class="note">{_text(METHODS[method].name)}: {_text(sentence)}</p>' for sentence in report.warnings()
        )
        if curves is None or check is None:  # a constant map: marked, not scored
            cells = "".join(
                f'<td class="num" data-metric="{key}" data-value="{values[key]!r}">—</td>'
                for key in ("deletion", "insertion", "randomization")
            )
            rows.append(
                f'<tr data-method="{_text(method)}" data-constant="true"><td class="method">'
                f"{_text(METHODS[method].name)}</td>{cells}"
                '<td class="verdict-cell">constant map: not scored</td>'
                + "".join(
                    f'<td class="num" data-metric="{key}" data-value="{values[key]!r}">—</td>'
                    for key in ("infidelity", "sensitivity")
                )
                + f'<td class="num">{report.seconds:.1f}</td></tr>'
            )
            continue
        worse_deletion = '<br><span class="worse">✗ worse than random</span>' if curves.worse_on_deletion else ""
        worse_insertion = '<br><span class="worse">✗ worse than random</span>' if curves.worse_on_insertion else ""
        rows.append(
            f'<tr data-method="{_text(method)}"><td class="method">{_text(METHODS[method].name)}</td>'
            f'<td class="num" data-metric="deletion" data-value="{values["deletion"]!r}">{curves.deletion.auc:.3f}'
            f'<br><span class="dim">random {curves.random_deletion.auc:.3f}</span>{worse_deletion}</td>'
            f'<td class="num" data-metric="insertion" data-value="{values["insertion"]!r}">{curves.insertion.auc:.3f}'
            f'<br><span class="dim">random {curves.random_insertion.auc:.3f}</span>{worse_insertion}</td>'
            f'<td class="num" data-metric="randomization" data-value="{values["randomization"]!r}">'
            f"{check.correlation:.2f}</td>"
            f'<td class="verdict-cell">{_text(check.outcome)}</td>'
            f'<td class="num" data-metric="infidelity" data-value="{values["infidelity"]!r}">'
            f"{report.infidelity:.3g}</td>"
            f'<td class="num" data-metric="sensitivity" data-value="{values["sensitivity"]!r}">'
            f"{report.sensitivity:.3g}</td>"
            f'<td class="num">{report.seconds:.1f}</td></tr>'
        )
    table = f"""<table class="trust">{_TRUST_COLUMNS}<thead><tr><th>method</th><th class="num">deletion AUC ↓</th>
<th class="num">insertion AUC ↑</th><th class="num">ρ after random&shy;ization ↓</th><th>sanity check</th>
<th class="num">infidelity ↓</th><th class="num">max sensitivity ↓</th><th class="num">seconds</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>"""
    intro = """<p>A map can look convincing and still not describe the model. These published checks test each map on
this image: does removing what it highlights hurt the prediction, does it change when the model's weights are
destroyed, does it predict the effect of small changes, and is it stable.</p>"""
    reports = {method: report for method, report in reports.items() if not report.constant}  # no curves to draw
    if not reports:
        return f"""<section>
<div class="keep"><h2>5 · Can these maps be trusted?</h2>{intro}{table}</div>
{"".join(warnings)}
</section>"""
    first = next(iter(reports.values()))
    names = {method: METHODS[method].name for method in reports}
    deletion = {names[m]: r.faithfulness.deletion.probabilities for m, r in reports.items()}
    deletion["random order"] = first.faithfulness.random_deletion.probabilities
    insertion = {names[m]: r.faithfulness.insertion.probabilities for m, r in reports.items()}
    insertion["random order"] = first.faithfulness.random_insertion.probabilities
    steps = [0] + [step.randomized for step in first.randomization.steps]
    randomization = {names[m]: [1.0] + [step.correlation for step in r.randomization.steps] for m, r in reports.items()}
    ylabel = f"p({class_name})"
    figures = [
        _curves(
            render.curves_figure(
                first.faithfulness.deletion.fractions,
                deletion,
                "Deletion",
                "share of pixels removed",
                ylabel,
                dashed=["random order"],
            ),
            "deletion curves",
        ),
        _curves(
            render.curves_figure(
                first.faithfulness.insertion.fractions,
                insertion,
                "Insertion",
                "share of pixels revealed",
                ylabel,
                dashed=["random order"],
            ),
            "insertion curves",
        ),
        _curves(
            render.curves_figure(
                steps,
                randomization,
                "Randomizing weights from the top",
                "layers randomized",
                "Spearman ρ with the original",
            ),
            "randomization cascade",
        ),
    ]
    readings = "".join(
        f"<dt>{_text(metric.name)} <span class='dim'>({metric.better} is better)</span></dt>"
        f'<dd>{_text(metric.reading)} <a href="{_text(metric.url)}">{_text(metric.paper)}</a></dd>'
        for metric in METRICS.values()
    )
    used = ", ".join(f"{name}={value}" for name, value in settings.items())
    return f"""<section>
<div class="keep">
<h2>5 · Can these maps be trusted?</h2>
{intro}
{table}
</div>
{"".join(warnings)}
<div class="pair">{figures[0]}{figures[1]}</div>
<div class="pair">{figures[2]}<div class="keep"><h3>How to read the numbers</h3><dl>{readings}</dl></div></div>
<p class="caption">Computed by <code>trust_report</code> with {_text(used)}.</p>
</section>"""


def _curves(figure: Figure, alt: str) -> str:
    figure.set_size_inches(*_CURVES_INCHES)
    for ax in figure.axes:  # smaller than on the page: a legend may cover a curve, so let it show through
        if ax.get_legend() is not None:
            ax.legend(fontsize=8, frameon=True, framealpha=0.85, edgecolor="none")
    return f"<figure>{_figure_img(figure, alt)}</figure>"


def _card_section(model: LoadedModel) -> str:
    return f"""<section class="card-section">
<h2>6 · Model card</h2>
<div class="modelcard">{_markdown(model.card)}</div>
</section>"""


def _footer(seconds: float) -> str:
    return f"""<footer>Every number in this report was computed by CNN Explorer's library — the same functions its
pages call: <code>zoo.predict</code>, <code>layers.capture_activations</code>, <code>attribution.explain</code>,
<code>trust.trust_report</code> — in {seconds:.1f} s. The explanations are of the predicted class, with each method's
default settings.</footer>"""
