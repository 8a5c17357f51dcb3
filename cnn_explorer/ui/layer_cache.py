"""What the Layers page computes and draws once: the capture of every layer, the pictures, the next layer's ahead.

One forward pass records every layer's input and output per (model, image) (:func:`cached_capture`). A step through
the layers draws nothing it drew before: the grid of maps, its chart, the chosen map and its colour
bar are cached per (model, image, layer, scale, channel), the bars of a vector layer and a layer's histogram per layer,
the input picture with a unit's window per box. While the browser draws a layer, a thread draws the next one
(:func:`prepare_next_layer`), so that the click a lecture makes a hundred times finds its pictures ready.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st
from PIL import Image
from torch import Tensor

from cnn_explorer import render
from cnn_explorer.layers import LayerInfo, capture_layers
from cnn_explorer.model import LoadedModel
from cnn_explorer.ui.core import figure_png, shown_image, sized_png

_LOG = logging.getLogger(__name__)
COLOURBAR_WIDTH = MAP_WIDTH = 320  # pixels of the chosen map and its colour bar


@dataclass(frozen=True, eq=False)
class LayerCapture:
    """Every layer's output and input for one (model, image), recorded in one forward pass. Read-only: shared.

    Attributes:
        outputs: Layer name → output ``[1, …]``, in execution order.
        inputs: Layer name → input ``[1, …]``, so :func:`~cnn_explorer.layers.explain_unit` runs no forward pass.
        value_range: ``(min, max)`` over every output: the range of the ``"global"`` colour scope.
        source: ``(model name, image digest)`` it was recorded for: the cache key of the pictures drawn from it.
    """

    outputs: dict[str, Tensor]
    inputs: dict[str, Tensor]
    value_range: tuple[float, float]
    source: tuple[str, str] = ("", "")


@st.cache_resource(max_entries=8, show_spinner="Running the network once and recording every layer …")
def cached_capture(model_name: str, digest: str, _model: LoadedModel, _x: Tensor) -> LayerCapture:
    """Every layer's output and input for (model, image), computed once: stepping through layers reruns nothing.

    A resource, not data: the tensors are shared rather than copied on every rerun (a VGG's are hundreds of MB).
    """
    outputs, inputs = capture_layers(_model, _x)
    return LayerCapture(outputs, inputs, render.network_range(outputs), (model_name, digest))


@dataclass(frozen=True, eq=False)
class MapsPictures:
    """What the Layers page draws of one layer's maps for one colour scale and chosen channel. Read-only: shared.

    Attributes:
        grid: Every map, the chosen one framed.
        grid_png: The grid as PNG, for the chart and its download.
        grid_spec: The clickable chart of the grid (:func:`~cnn_explorer.render.grid_chart_spec`).
        map_png: The chosen map alone, as PNG (offered for download).
        map_shown: The chosen map as ``st.image`` sends it at the width it is shown: ``(bytes, format)``.
    """

    grid: render.FeatureGrid
    grid_png: bytes
    grid_spec: dict
    map_png: bytes
    map_shown: tuple[bytes, str]


@st.cache_resource(max_entries=32, show_spinner=False)
def cached_maps_pictures(
    source: tuple[str, str], layer: str, scope: str, channel: int, cell: int, _output: Tensor, _capture: LayerCapture
) -> MapsPictures:
    """The grid, its chart and the chosen map of a layer, drawn and encoded once per (model, image, layer, scale,
    channel): going back to a layer, a channel or a scale seen before draws nothing again."""
    grid = render.feature_grid(_output, scope, _capture.value_range, highlight=channel, cell=cell, max_width=900)
    grid_png = render.to_png_bytes(grid.image)
    low, high = grid.ranges[channel]
    selected = render.map_image(_output[channel], low, high, grid.cmap)
    spec = render.grid_chart_spec(grid, _output, grid_png)
    return MapsPictures(grid, grid_png, spec, render.to_png_bytes(selected), shown_image(selected, MAP_WIDTH))


@st.cache_data(max_entries=64, show_spinner=False)
def cached_colourbar_png(low: float, high: float, cmap: str, label: str) -> bytes:
    """The colour bar of a map as ``st.pyplot`` would show it, drawn once per range, colour map and label."""
    return sized_png(figure_png(render.colourbar_figure(low, high, cmap, label)), COLOURBAR_WIDTH)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_vector_png(
    source: tuple[str, str], layer: str, unit: int, labels: tuple[str, ...] | None, _output: Tensor
) -> tuple[bytes, int]:
    """A vector output's bars (or profile) as ``st.pyplot`` would show them, and the width to show them at (about
    their natural size), drawn once per (model, image, layer, chosen unit)."""
    figure = render.vector_figure(_output, None if labels is None else list(labels), title=layer, highlight=unit)
    width = round(figure.get_figwidth() * 110)
    return sized_png(figure_png(figure), width), width


@st.cache_data(max_entries=64, show_spinner=False)
def cached_histogram_png(model_name: str, digest: str, layer: str, _output: Tensor) -> bytes:
    """The histogram of a layer's output as ``st.pyplot`` would show it, drawn once per (model, image, layer)."""
    return sized_png(figure_png(render.histogram_figure(_output, title=f"values of {layer}")))


@st.cache_data(max_entries=256, show_spinner=False)
def boxed_picture(picture: Image.Image, box: tuple[int, int, int, int], width: int) -> tuple[bytes, str]:
    """The network's input picture with ``box`` (top, left, bottom, right) framed, enlarged to at least ``width``
    pixels, as ``st.image(…, width=width)`` sends it: ``(bytes, format)``, encoded once per (picture, box, width)
    rather than on every step through the layers."""
    return shown_image(render.for_display(render.overlay(picture, box=box), width), width)


def grid_cell(channels: int) -> int:
    """Pixels per map: the grid fills its column with at most 16 maps a row, each 48 to 200 pixels wide."""
    return min(200, max(48, 620 // math.ceil(math.sqrt(channels))))


def prepare_next_layer(layers: Sequence[LayerInfo], name: str, capture: LayerCapture, channel: int) -> None:
    """Draw the next layer's grid, chosen map and colour bar into the cache, as the page would show them, in a
    thread of its own once this run has ended.

    Called last on the page: the browser is drawing this layer meanwhile, and a click on Next (the click a lecture
    makes a hundred times) then finds its pictures drawn. Drawn in the script's own run, the next layer's pictures
    held back the end of this run by as long as they took (about 60 ms for TinyVGG), and with it the moment the page
    was idle. A click that comes before the drawing is done waits for it (the cache computes a key once). A channel
    the person chose stays on the next layer, as :func:`layer_output_view` keeps it.
    """
    names = [info.name for info in layers]
    following = names[names.index(name) + 1 :]
    if not following or following[0] not in capture.outputs or capture.outputs[following[0]].dim() != 4:
        return
    output = capture.outputs[following[0]][0]
    channel = min(channel, output.shape[0] - 1)
    scope = st.session_state.get("layer_scope") or "layer"
    with _PREPARING_LOCK:
        _PREPARING[:] = [job for job in _PREPARING if not job.done()]
        _PREPARING.append(_PREPARER.submit(_draw_layer, capture, following[0], scope, channel, output))


def maps_pictures(
    capture: LayerCapture, name: str, scope: str, channel: int, output: Tensor
) -> tuple[MapsPictures, bytes]:
    """The pictures the Layers page shows of the maps ``output`` ``[C, H, W]`` of layer ``name``: the grid, its chart
    and the chosen map, and the chosen map's colour bar (PNG), each from its cache. The page and the thread that
    draws the next layer ahead both ask here, so that what is drawn ahead is what the page then asks for."""
    pictures = cached_maps_pictures(capture.source, name, scope, channel, grid_cell(output.shape[0]), output, capture)
    low, high = pictures.grid.ranges[channel]
    return pictures, cached_colourbar_png(low, high, pictures.grid.cmap, f"{render.SCALES[scope].label} range")


def _draw_layer(capture: LayerCapture, name: str, scope: str, channel: int, output: Tensor) -> None:
    """:func:`maps_pictures` of ``name``, drawn into their caches (in :data:`_PREPARER`'s thread)."""
    time.sleep(_PREPARE_AFTER_S)  # let this run's last messages leave first: drawing holds the GIL at times
    try:
        maps_pictures(capture, name, scope, channel, output)
    except Exception:  # a head start, not a result: the page draws the layer itself when it is shown
        _LOG.warning("Drawing layer %s in advance failed", name, exc_info=True)


def wait_for_prepared_layers(timeout: float = 30) -> None:
    """Wait until every layer :func:`prepare_next_layer` asked for is drawn (tests and benches count the draws)."""
    with _PREPARING_LOCK:
        pending = list(_PREPARING)
        _PREPARING.clear()
    concurrent.futures.wait(pending, timeout=timeout)


_PREPARER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-next-layer")
_PREPARING: list[concurrent.futures.Future] = []
_PREPARING_LOCK = threading.Lock()
_PREPARE_AFTER_S = 0.03
