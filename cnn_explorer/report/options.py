"""The report's options: which layers, which explanation methods, which trust settings — their defaults, and the
checks that refuse a bad one with what is allowed.

:func:`~cnn_explorer.report.build.build_report` checks its arguments here before computing anything; the app offers
:data:`DEFAULT_METHODS` and :func:`default_layers` as its defaults.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from cnn_explorer.attribution import METHODS
from cnn_explorer.layers import LayerInfo, UnknownLayer
from cnn_explorer.trust import trust_report

__all__ = ["DEFAULT_METHODS", "default_layers"]

DEFAULT_METHODS = ("gradcam", "saliency")


def default_layers(layers: Sequence[LayerInfo]) -> list[str]:
    """A few representative layers of a layer table (:func:`~cnn_explorer.layers.list_layers`): the first
    convolution, one in the middle and the last one (each once when there are fewer). Only layers whose maps are
    more than 1×1 count (LeNet-5's last convolution, ``c5``, is 120 single values); a network without convolutions
    gets its other layers with maps."""
    maps = [info for info in layers if len(info.output_shape) == 3 and math.prod(info.output_shape[1:]) > 1]
    convs = [info.name for info in maps if info.kind == "Conv2d"] or [info.name for info in maps]
    picked = [convs[0], convs[len(convs) // 2], convs[-1]] if convs else []
    return list(dict.fromkeys(picked))


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
