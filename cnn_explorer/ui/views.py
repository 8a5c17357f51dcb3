"""The app's views and what each needs from a model: the page side of :class:`~cnn_explorer.model.Capabilities`.

A model declares what it allows (hooks or not, its task, its input); each view here declares what it needs, with
its title as the pages show it. Renaming a page or a view touches this table only, never the library.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnn_explorer.model import LoadedModel

__all__ = ["VIEWS", "View", "missing"]


@dataclass(frozen=True)
class View:
    """One view of the app and what it needs.

    Attributes:
        key: ``"predict"``, ``"layers"``, a method key of ``attribution.METHODS`` or a view's key.
        title: What the user knows the view as.
        needs_hooks: True when it records, changes, replaces or re-initializes a layer.
        why: One or two sentences: what the view needs from the network.
        cites_model: The model's own reason (``Capabilities.why_not_hooks``) comes first in the explanation.
    """

    key: str
    title: str
    needs_hooks: bool
    why: str
    cites_model: bool = False


VIEWS: tuple[View, ...] = (
    View("predict", "Predict", False, "It needs only the network's output for the preprocessed image."),
    View(
        "pixel_explanations",
        "Explain: saliency, integrated gradients, SmoothGrad, occlusion",
        False,
        "They need only the gradient of a class score with respect to the input, or forward passes of changed "
        "images; autograd goes through compiled code.",
    ),
    View(
        "attacks",
        "Fool the model: FGSM and PGD",
        False,
        "They need only the gradient of the loss with respect to the input.",
    ),
    View(
        "image_playground",
        "Playground: convolution and pooling of the image, activation curves",
        False,
        "They work on the image alone.",
    ),
    View("layers", "Layers", True, "Feature maps and each value's arithmetic need them.", cites_model=True),
    View(
        "cam",
        "Explain: the CAM family (Grad-CAM, Grad-CAM++, Score-CAM, LayerCAM, guided Grad-CAM)",
        True,
        "A CAM weighs one convolutional layer's activations by their gradients.",
        cites_model=True,
    ),
    View(
        "guided_backprop",
        "Explain: guided backpropagation",
        True,
        "It replaces the backward pass of every ReLU module through hooks; inside compiled code there are none to "
        "change, and the map would silently be the plain gradient.",
    ),
    View(
        "trust",
        "Explain: the trust checks",
        True,
        "The randomization check re-initializes the network's layers one by one, which compiled code does not allow.",
    ),
    View(
        "feature_maps",
        "Feature maps in the Playground (pooling one, the translation demo, activations on one), weight sharing, "
        "what a filter wants to see; Grad-CAM in Fool the model",
        True,
        "These views read a layer's output or its weights.",
        cites_model=True,
    ),
    View(
        "transfer",
        "Train: transfer learning from it",
        True,
        "Transfer replaces the classifier layer; a compiled network's layers cannot be replaced.",
    ),
)
"""Every view and what it needs (a TorchScript model's card and the pages' notes come from here)."""

_BY_KEY = {view.key: view for view in VIEWS}


def missing(model: LoadedModel, *keys: str) -> dict[str, str]:
    """The views among ``keys`` (all of them when none are given) that ``model`` cannot show, by key, each with the
    reason and what to do instead; empty when the model allows them all."""
    capabilities = model.capabilities
    if capabilities.hooks:
        return {}
    reasons = {}
    for view in (_BY_KEY[key] for key in keys) if keys else VIEWS:
        if view.needs_hooks:
            cited = f"{capabilities.why_not_hooks} " if view.cites_model else ""
            reasons[view.key] = f"{cited}{view.why} {capabilities.instead}"
    return reasons
