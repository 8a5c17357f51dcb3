"""CNN Explorer: see how convolutional neural networks work.

The public facade: re-exports only. The README's Layout map says which module holds what.
"""

from cnn_explorer._compat import ensure_torchvision_importable

ensure_torchvision_importable()  # before anything imports torchvision (captum, torchcam, our zoo)

from cnn_explorer.attribution import METHODS, Explanation, explain  # noqa: E402
from cnn_explorer.images import ImageError, load_image  # noqa: E402
from cnn_explorer.layers import LayerInfo, capture_activations, list_layers  # noqa: E402
from cnn_explorer.zoo import LoadedModel, ModelUnavailable, available_models, load_model  # noqa: E402

__all__ = [
    "METHODS",
    "Explanation",
    "ImageError",
    "LayerInfo",
    "LoadedModel",
    "ModelUnavailable",
    "available_models",
    "capture_activations",
    "explain",
    "list_layers",
    "load_image",
    "load_model",
]
