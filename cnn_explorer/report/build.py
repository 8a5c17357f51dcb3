"""Building the report: :func:`build_report` computes what the pages show and lays it out as one :class:`Report`.

The steps, in order: check the options (:mod:`cnn_explorer.report.options`), run the network, capture the chosen
layers, explain and check each method, then write each section (:mod:`cnn_explorer.report.sections`) into the A4 page
(:mod:`cnn_explorer.report.layout`). Progress is one fraction over all steps (:class:`_Ticker`). Printing the page to
PDF is :mod:`cnn_explorer.report.pdf`'s.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from cnn_explorer import render
from cnn_explorer.attribution import METHODS, Explanation, explain
from cnn_explorer.layers import capture_activations, list_layers
from cnn_explorer.model import LoadedModel, predict
from cnn_explorer.progress import Progress, Status
from cnn_explorer.report.layout import _CSS, _PAGE
from cnn_explorer.report.markup import _text
from cnn_explorer.report.options import (
    DEFAULT_METHODS,
    _checked_layers,
    _checked_methods,
    _checked_trust_settings,
    _effective_trust_settings,
)
from cnn_explorer.report.sections import (
    _card_section,
    _explanations_section,
    _footer,
    _header,
    _input_section,
    _layer_figure,
    _layers_section,
    _ood_note,
    _prediction_section,
    _trust_section,
)
from cnn_explorer.trust import TrustReport, trust_report

__all__ = ["Report", "build_report"]

_TRUST_SHARE = 8  # a method with its trust checks costs about this many explanations


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


def _file_stem(text: str) -> str:
    """A safe file name: the image's extension dropped, anything but letters, digits, ``-`` and ``_`` made ``-``."""
    text = re.sub(r"\.(png|jpe?g|webp|bmp|gif|tiff?)$", "", text, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")[:120] or "report"
