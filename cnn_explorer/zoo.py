"""The public model factory: every model the app can offer, by name, and loading one.

The models come from the sources registered in :mod:`cnn_explorer.model_registry` (built-in models shipped in
``assets/models``, torchvision ImageNet models, trained runs, and the user's own models: see
:mod:`cnn_explorer.sources`); the zoo names none of them. Every model loads into a
:class:`~cnn_explorer.model.LoadedModel`: an ``nn.Module`` in eval mode with its class names, input size,
preprocessing, capabilities and a lock that every hook-registering computation holds (one loaded model is shared by
every browser session). ``LoadedModel``, ``ModelEntry``, ``ModelUnavailable``, ``Prediction`` and ``predict`` live
in :mod:`cnn_explorer.model` and are re-exported here.
"""

from __future__ import annotations

import cnn_explorer.sources  # noqa: F401  registers every model source
from cnn_explorer import model_registry
from cnn_explorer.model import LoadedModel, ModelEntry, ModelUnavailable, Prediction, predict
from cnn_explorer.progress import ByteProgress

__all__ = [
    "LoadedModel",
    "ModelEntry",
    "ModelUnavailable",
    "Prediction",
    "available_models",
    "load_model",
    "model_entry",
    "predict",
]


def available_models() -> list[str]:
    """Every model name the app can offer: built-in first, then ImageNet (even when they still need a download),
    then finished training runs (``run-<id>``, newest first), then the user's own models (``my-<name>``, newest
    first); the run store and the user's models are read at every call."""
    return list(model_registry.entries())


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``KeyError`` naming the known models otherwise."""
    return model_registry.entry(name)


def load_model(name: str, progress: ByteProgress | None = None) -> LoadedModel:
    """Load a model by registry name.

    Args:
        name: One of :func:`available_models`.
        progress: Called with (bytes done, total) while ImageNet weights download.

    Raises:
        KeyError: Unknown name.
        ModelUnavailable: Weights neither cached nor downloadable, or damaged.
    """
    return model_registry.load(name, progress)
