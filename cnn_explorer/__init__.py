"""CNN Explorer: see how convolutional neural networks work.

The public facade: re-exports only. See DESIGN.md for the data flow.
"""

from cnn_explorer._compat import ensure_torchvision_importable

ensure_torchvision_importable()  # before anything imports torchvision (captum, torchcam, our zoo)

__all__: list[str] = []
