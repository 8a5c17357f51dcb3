"""The report: one self-contained HTML page about one model and one image, for a stakeholder to keep, and its PDF.

:func:`build_report` gathers what the pages show — the prediction, the input as the network sees it, chosen layers'
feature maps, explanations with their trust checks, the model card — computed by the same library calls the pages
make, into one HTML file: images embedded as PNG ``data:`` URIs, CSS inline, no script and nothing to fetch, laid
out for A4. :func:`to_pdf` prints that HTML with headless Chromium.
"""

from __future__ import annotations

import base64
import inspect
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from io import BytesIO
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from cnn_explorer import render
from cnn_explorer.attribution import METHODS, Explanation, explain
from cnn_explorer.layers import LayerInfo, UnknownLayer, capture_activations, list_layers
from cnn_explorer.model import LoadedModel, Prediction, predict
from cnn_explorer.progress import Progress, Status
from cnn_explorer.trust import METRICS, TrustReport, trust_report

__all__ = [
    "CHROMIUM_NAMES",
    "DEFAULT_METHODS",
    "PDF_TIMEOUT_S",
    "Report",
    "ReportError",
    "build_report",
    "default_layers",
    "find_chromium",
    "to_pdf",
]

DEFAULT_METHODS = ("gradcam", "saliency")
#: Executables tried, in order, to print the PDF.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PDF_TIMEOUT_S = 120.0


_TOP_K = 5
_PAGE_PX = 680  # A4's printable width with 15 mm margins, in CSS pixels (96 per inch)
_SHARP = 2  # pictures are drawn at twice the size they print at, so the PDF stays sharp
_PAGE_HEIGHT_PX = 780  # the tallest picture that fits on an A4 page under its heading and caption
_MAP_PX = 120  # the largest a feature map is printed (32 mm): two small layers share a page
_PICTURE_PX = 224  # small network inputs (32×32, 64×64) are enlarged to at least this, pixels kept square
_GIVEN_SIDE = 640  # the image as given is shrunk to at most this side: a 12-megapixel photo would bloat the file
_PNG_LEVEL = 6  # a report is encoded once: smaller files are worth a slower encoder than render's default
_FIGURE_DPI = 150
_CURVES_INCHES = (4.2, 2.8)  # two curves side by side on A4 keep their labels readable
_TRUST_SHARE = 8  # a method with its trust checks costs about this many explanations
_CARDS_PER_ROW = 3


class ReportError(RuntimeError):
    """The PDF cannot be printed here (no Chromium, or Chromium failed); the HTML report is unaffected."""


@dataclass(frozen=True)
class Report:
    """One finished report.

    Attributes:
        title: The report's title (also the HTML ``<title>``).
        html: The whole page: self-contained, safe to save and open offline or to print with :func:`to_pdf`.
        file_stem: A file name without extension for downloads (``cnn-explorer-report-tinyvgg-shapes-circle``).
    """

    title: str
    html: str
    file_stem: str


def default_layers(layers: Sequence[LayerInfo]) -> list[str]:
    """A few representative layers of a layer table (:func:`~cnn_explorer.layers.list_layers`): the first
    convolution, one in the middle and the last one (each once when there are fewer). Only layers whose maps are
    more than 1×1 count (LeNet-5's last convolution, ``c5``, is 120 single values); a network without convolutions
    gets its other layers with maps."""
    maps = [info for info in layers if len(info.output_shape) == 3 and math.prod(info.output_shape[1:]) > 1]
    convs = [info.name for info in maps if info.kind == "Conv2d"] or [info.name for info in maps]
    picked = [convs[0], convs[len(convs) // 2], convs[-1]] if convs else []
    return list(dict.fromkeys(picked))


def build_report(
    model: LoadedModel,
    image: Image.Image,
    *,
    layers: Sequence[str] | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    trust: bool = True,
    image_label: str = "",
    trust_settings: Mapping[str, Any] | None = None,
    progress: Status | None = None,
) -> Report:
    """Compute everything the report shows for ``model`` on ``image`` and lay it out as one HTML page.

    Every explanation is of the predicted class, at the method's default layer and parameters, drawn in the
    explanations' default look (:func:`~cnn_explorer.render.heat_overlay`). The trust checks are
    :func:`~cnn_explorer.trust.trust_report`'s, with its defaults unless ``trust_settings`` says otherwise (the app's
    trust panel uses the same defaults, so the numbers agree with it).

    Args:
        model: The model; left as found.
        image: The RGB image.
        layers: Layer names (as :func:`~cnn_explorer.layers.list_layers` gives them) whose outputs to show; None
            means :func:`default_layers`.
        methods: Keys of ``METHODS``, in the order to show them. A method that does not apply to the model (a CAM
            without a spatial convolution) gets a note instead of a map.
        trust: Run the trust checks of every method (hundreds of forward passes each: seconds on the built-in
            models, up to a minute per method on ImageNet ones).
        image_label: Where the image came from (a file name), for the title.
        trust_settings: Keyword arguments for ``trust_report`` (``steps``, ``max_steps``, ``infidelity_samples``,
            ``sensitivity_samples``, ``batch``, ``seed``).
        progress: Called with the fraction done and what is being computed.

    Raises:
        UnknownLayer: A layer name that is not in the model's layer table (the message lists them).
        ValueError: An unknown method or trust setting.
    """
    started = time.perf_counter()
    table = list_layers(model)
    chosen = _checked_layers(table, layers)
    methods = _checked_methods(methods)
    settings = _checked_trust_settings(trust_settings) if trust else {}
    ticker = _Ticker(progress, 2 + len(chosen) + len(methods) * (_TRUST_SHARE if trust else 1))

    ticker.step("Running the network")
    x = model.preprocess(image)
    prediction = predict(model, x, k=len(model.class_names))
    picture = render.uint8_image(model.preprocess.geometry(image)).convert("RGB")
    target = prediction.top[0][0]

    ticker.step("Recording the chosen layers")
    outputs = capture_activations(model, x, chosen) if chosen else {}
    by_name = {info.name: info for info in table}
    layer_parts = []
    for name in chosen:
        ticker.step(f"Drawing {name}")
        layer_parts.append(_layer_figure(by_name[name], outputs[name][0], model))

    explanations: dict[str, Explanation] = {}
    reports: dict[str, TrustReport] = {}
    skipped: dict[str, str] = {}  # method → why it does not apply (a CAM without a spatial convolution)
    unchecked: dict[str, str] = {}  # method → why its trust checks cannot run (nothing to randomize)
    for method in methods:
        name = METHODS[method].name
        if trust:
            try:
                inside = ticker.step(f"{name} and its trust checks", _TRUST_SHARE)
                reports[method] = trust_report(model, x, method, target=target, progress=inside, **settings)
                explanations[method] = reports[method].explanation
                continue
            except ValueError as error:
                unchecked[method] = str(error)
        try:
            inside = ticker.step(name, 0.0 if trust else 1.0)  # with trust, its share was counted above
            explanations[method] = explain(model, x, method, target=target, progress=inside)
        except ValueError as error:
            skipped[method] = str(error)
    unchecked = {method: why for method, why in unchecked.items() if method in explanations}

    best_name, best_probability = prediction.top[0][1], prediction.top[0][2]
    title = f"CNN Explorer report: {model.name} on {image_label or 'the image'}"
    body = [
        _header(
            title, model, f"the image “{image_label}”" if image_label else "the image", best_name, best_probability
        ),
        _ood_note(model, x),
        _prediction_section(prediction, picture, model),
        _input_section(model, image, picture, x),
        _layers_section(layer_parts, chosen),
        _explanations_section(methods, explanations, skipped, picture, model.class_names[target]),
    ]
    if trust:
        settings = _effective_trust_settings(settings)
        body.append(_trust_section(reports, unchecked, model.class_names[target], settings))
    body.append(_card_section(model))
    body.append(_footer(time.perf_counter() - started))
    ticker.step("Done", 0.0)
    page = _PAGE.format(title=_text(title), css=_CSS, body="\n".join(body))
    return Report(title=title, html=page, file_stem=_file_stem(f"cnn-explorer-report-{model.name}-{image_label}"))


# ── printing ────────────────────────────────────────────────────────────────────────────────────────────────────


def find_chromium() -> str | None:
    """The path of the first of :data:`CHROMIUM_NAMES` on ``PATH``, or None."""
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


def to_pdf(html: str, *, timeout: float = PDF_TIMEOUT_S, chromium: str | None = None) -> bytes:
    """Print an HTML page (a :attr:`Report.html`) to PDF with headless Chromium: A4, as laid out by the page's CSS.

    Args:
        html: The page. It is written to a temporary file; nothing is fetched while printing.
        timeout: Seconds before Chromium is stopped.
        chromium: The browser executable; None means :func:`find_chromium`.

    Raises:
        ReportError: No Chromium found (the message says how to install it), Chromium failed or ran out of time.
    """
    executable = chromium or find_chromium()
    if executable is None:
        raise ReportError(
            "Printing the PDF needs Chromium or Google Chrome, and none was found "
            f"(looked for {', '.join(CHROMIUM_NAMES)} on PATH). Install it — Debian/Ubuntu: "
            "`sudo apt-get install chromium`; macOS: `brew install --cask chromium`; Windows: install Google Chrome — "
            "or download the HTML report and print it to PDF from any browser."
        )
    with tempfile.TemporaryDirectory(prefix="cnn-explorer-report-") as folder:
        work = Path(folder)
        page, pdf = work / "report.html", work / "report.pdf"
        page.write_text(html, encoding="utf-8")
        command = [
            executable,
            "--headless",
            "--no-sandbox",  # containers and CI run as root, where the sandbox refuses to start
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            f"--user-data-dir={work / 'profile'}",  # a profile of its own: a running browser's is locked
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ]
        log = work / "chromium.log"
        with log.open("wb") as output:
            # A session of its own so that a timeout stops Chromium's helper processes too.
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True
            )
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                raise ReportError(
                    f"Chromium ({executable}) did not finish printing the PDF within {timeout:g} s. Try again, or "
                    "download the HTML report and print it from a browser."
                ) from None
        data = pdf.read_bytes() if pdf.exists() else b""
        if code != 0 or not data.startswith(b"%PDF"):
            tail = log.read_text(errors="replace").strip()[-600:]
            raise ReportError(
                f"Chromium ({executable}) could not print the PDF (exit code {code}). Download the HTML report "
                f"and print it from a browser instead. Chromium said: {tail or 'nothing'}"
            )
        return data


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (AttributeError, ProcessLookupError, PermissionError):  # no process groups (Windows), or already gone
        process.kill()
    process.wait()


# ── checks ──────────────────────────────────────────────────────────────────────────────────────────────────────


def _checked_layers(table: Sequence[LayerInfo], layers: Sequence[str] | None) -> list[str]:
    if layers is None:
        return default_layers(table)
    if isinstance(layers, str):
        raise ValueError(f"layers is a list of layer names; got the string {layers!r}. Use [{layers!r}].")
    names = [info.name for info in table]
    if unknown := [name for name in layers if name not in names]:
        raise UnknownLayer(
            f"Not a layer of this model: {', '.join(map(repr, unknown))}. Its layers: {', '.join(names)}."
        )
    return list(dict.fromkeys(layers))


def _checked_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str):
        raise ValueError(f"methods is a list of method keys; got the string {methods!r}. Use [{methods!r}].")
    if unknown := [method for method in methods if method not in METHODS]:
        raise ValueError(f"Unknown method {', '.join(map(repr, unknown))}. Methods: {', '.join(METHODS)}.")
    return list(dict.fromkeys(methods))


def _trust_defaults() -> dict[str, Any]:
    """``trust_report``'s tunable keyword arguments and their defaults."""
    skip = {"model", "x", "method", "target", "layer", "params", "progress", "should_stop"}
    return {
        name: p.default
        for name, p in inspect.signature(trust_report).parameters.items()
        if name not in skip and p.default is not inspect.Parameter.empty
    }


def _checked_trust_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    known = _trust_defaults()
    if unknown := sorted(set(settings or {}) - set(known)):
        raise ValueError(f"Unknown trust setting {', '.join(unknown)}. Settings: {', '.join(known)}.")
    return dict(settings or {})


def _effective_trust_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {**_trust_defaults(), **settings}


class _Ticker:
    """Turns the steps of :func:`build_report` into one fraction for a progress callback."""

    def __init__(self, progress: Status | None, total: float) -> None:
        self._progress, self._total, self._done = progress, max(total, 1.0), 0.0

    def step(self, what: str, share: float = 1.0) -> Progress | None:
        """Report that ``what`` starts and count it as done; returns a progress callback for its inside."""
        offset, self._done = self._done, self._done + share
        if self._progress is None:
            return None
        progress, total = self._progress, self._total
        progress(min(offset / total, 1.0), what)
        return lambda fraction: progress(min((offset + share * fraction) / total, 1.0), what)


# ── sections ────────────────────────────────────────────────────────────────────────────────────────────────────


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


# ── HTML helpers ────────────────────────────────────────────────────────────────────────────────────────────────


def _text(value: object) -> str:
    """Any text from a model, a class list or a file name, made inert in HTML (tags, quotes, entities)."""
    return escape(str(value), quote=True)


def _img(image: Image.Image, alt: str, *, pixels: bool = False, css: str = "", density: float = 1) -> str:
    """An ``<img>`` with the image inline as a PNG ``data:`` URI, ``density`` image pixels to a CSS pixel."""
    png = render.to_png_bytes(image.convert("RGB"), compress_level=_PNG_LEVEL)
    classes = " ".join(c for c in ("pixels" if pixels else "", css) if c)
    cls = f' class="{classes}"' if classes else ""
    width, height = round(image.width / density), round(image.height / density)
    return (
        f'<img{cls} alt="{_text(alt)}" width="{width}" height="{height}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
    )


def _fitting(image: Image.Image) -> float:
    """Image pixels per CSS pixel that print ``image`` sharp and within one page's width and height."""
    return max(_SHARP, image.width / _PAGE_PX, image.height / _PAGE_HEIGHT_PX)


def _figure_img(figure: Figure, alt: str, css: str = "") -> str:
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=_FIGURE_DPI)
    with Image.open(BytesIO(buffer.getvalue())) as png:
        return _img(png, alt, css=css)


def _file_stem(text: str) -> str:
    """A safe file name: the image's extension dropped, anything but letters, digits, ``-`` and ``_`` made ``-``."""
    text = re.sub(r"\.(png|jpe?g|webp|bmp|gif|tiff?)$", "", text, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")[:120] or "report"


_INLINE = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)"), r'<a href="\2">\1</a>'),
)
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+\.\s+(.*)$")


def _inline(text: str) -> str:
    """One line of Markdown → HTML: escaped first, so only the markup added here is markup."""
    out = _text(text)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    return out


def _markdown(text: str) -> str:
    """The Markdown of model cards (headings, lists, paragraphs, bold, italics, code, links) → HTML."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    kind = ""

    def flush() -> None:
        nonlocal kind
        if paragraph:
            blocks.append(f"<p>{' '.join(paragraph)}</p>")
            paragraph.clear()
        if items:
            blocks.append(f"<{kind}>{''.join(f'<li>{item}</li>' for item in items)}</{kind}>")
            items.clear()
        kind = ""

    for line in text.splitlines():
        if heading := _HEADING.match(line):
            flush()
            level = min(len(heading.group(1)) + 1, 6)  # the report's own h1/h2 stay above the card's headings
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif (bullet := _BULLET.match(line)) or (numbered := _NUMBERED.match(line)):
            wanted = "ul" if bullet else "ol"
            if kind != wanted:
                flush()
                kind = wanted
            items.append(_inline((bullet or numbered).group(1)))
        elif not line.strip():
            flush()
        else:
            if items:
                flush()
            paragraph.append(_inline(line.strip()))
    flush()
    return "\n".join(blocks)


# The trust table's column widths (fixed layout: the table is as wide as its column, and long cells wrap).
_TRUST_COLUMNS = (
    '<colgroup><col style="width:15%"><col style="width:12%"><col style="width:12%"><col style="width:14.5%">'
    '<col style="width:15%"><col style="width:10.5%"><col style="width:12%"><col style="width:9%"></colgroup>'
)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
</body>
</html>
"""

_CSS = """
@page { size: A4; margin: 15mm 15mm 16mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "Helvetica Neue", Arial, "Liberation Sans", "DejaVu Sans", sans-serif; font-size: 10pt;
  line-height: 1.45; color: #1f2937; max-width: 190mm; margin: 0 auto; padding: 10mm 0 16mm; background: #fff; }
@media print { body { max-width: none; padding: 0; } }
h1 { font-size: 19pt; line-height: 1.2; margin: 0 0 1.5mm; color: #111827; }
h2 { font-size: 14pt; color: #1e3a8a; border-bottom: 1.5px solid #2563eb; padding-bottom: 1mm;
  margin: 8mm 0 3mm; break-after: avoid; }
h3 { font-size: 11pt; margin: 4mm 0 1mm; break-after: avoid; }
h4, h5, h6 { font-size: 10.5pt; margin: 3mm 0 1mm; break-after: avoid; }
p, li, dd { orphans: 3; widows: 3; }
p { margin: 1.5mm 0; }
a { color: #1d4ed8; text-decoration: none; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.88em; background: #f3f4f6;
  padding: 0 0.25em; border-radius: 2px; }
.meta, .caption, figcaption { color: #4b5563; font-size: 8.5pt; }
.dim { color: #6b7280; }
.nowrap { white-space: nowrap; }
.verdict { font-size: 13pt; margin: 4mm 0 2mm; padding: 3mm 4mm; background: #eff6ff;
  border-left: 4px solid #2563eb; }
.note { background: #fffbeb; border-left: 4px solid #f59e0b; padding: 2mm 3mm; }
figure { margin: 0 0 3mm; break-inside: avoid; }
figcaption { margin-top: 1mm; }
img { display: block; max-width: 100%; height: auto; }
img.pixels { image-rendering: pixelated; }
img.scale { width: 60mm; flex: 0 0 60mm; }
.scaled { display: flex; gap: 6mm; align-items: center; }
.keep { break-inside: avoid; }
.row { display: flex; gap: 5mm; align-items: flex-start; }
.row > figure { flex: 1 1 0; min-width: 0; margin: 0; }
.row > .narrow { flex: 0 0 44mm; }
.row > .third { flex: 0 0 52mm; }
h3.first { margin-top: 0; }
.row > .grow { flex: 1 1 0; min-width: 0; }
.channels > figure { flex: 0 1 45mm; }
figure.layer { margin: 0 0 5mm; }
.cards { display: grid; grid-template-columns: repeat(3, 1fr); gap: 4mm; margin-bottom: 3mm; }
.cards img { width: 100%; }
.cards h3 { margin-top: 0; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 5mm; align-items: start; margin-top: 3mm; }
.pair img { width: 100%; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; break-inside: avoid; margin: 1mm 0 2mm; }
th, td { text-align: left; padding: 1.2mm 1.8mm; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { font-weight: 600; color: #374151; border-bottom: 1.5px solid #9ca3af; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.topk td { vertical-align: middle; }
.trust { table-layout: fixed; }
.trust th, .trust td { white-space: normal; overflow-wrap: break-word; }
.trust .worse { color: #b91c1c; }
.blank img { border: 1px solid #f59e0b; }
.barcell { width: 32%; }
.bar { height: 3.2mm; background: #cbd5e1; border-radius: 1px; }
.bar.best { background: #2563eb; }
dl { margin: 0; font-size: 8.5pt; }
dt { font-weight: 600; margin-top: 1.5mm; }
dd { margin: 0.3mm 0 0; color: #374151; }
.modelcard { font-size: 9.5pt; }
.modelcard ul, .modelcard ol { padding-left: 6mm; }
.card-section { break-inside: avoid; }
footer { margin-top: 8mm; padding-top: 2mm; border-top: 1px solid #e5e7eb; color: #6b7280; font-size: 8pt; }
"""
