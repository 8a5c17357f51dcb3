"""The built-in architectures: CNN Explainer's TinyVGG and LeCun's LeNet-5.

Layers are named submodules (``conv_1_1``, ``relu_1_1`` …) so every view can address them by dotted path, and no
module is reused or in-place: what a layer outputs is exactly what the next one reads.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

__all__ = ["ARCHITECTURES", "LeNet5", "TinyVGG"]


class TinyVGG(nn.Sequential):
    """TinyVGG as in CNN Explainer (Wang et al. 2020, https://arxiv.org/abs/2004.15004).

    Two blocks of conv3×3 – ReLU – conv3×3 – ReLU – max-pool 2, unpadded, then flatten and one linear layer.
    A 64×64 input shrinks 64 → 62 → 60 → 30 → 28 → 26 → 13.

    Args:
        num_classes: Output classes.
        in_channels: Input channels (3 for RGB).
        channels: Feature maps per conv layer.
        input_size: Side of the square input, which fixes the linear layer's width.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, channels: int = 10, input_size: int = 64):
        side = ((input_size - 4) // 2 - 4) // 2
        super().__init__(
            OrderedDict(
                [
                    ("conv_1_1", nn.Conv2d(in_channels, channels, 3)),
                    ("relu_1_1", nn.ReLU()),
                    ("conv_1_2", nn.Conv2d(channels, channels, 3)),
                    ("relu_1_2", nn.ReLU()),
                    ("max_pool_1", nn.MaxPool2d(2)),
                    ("conv_2_1", nn.Conv2d(channels, channels, 3)),
                    ("relu_2_1", nn.ReLU()),
                    ("conv_2_2", nn.Conv2d(channels, channels, 3)),
                    ("relu_2_2", nn.ReLU()),
                    ("max_pool_2", nn.MaxPool2d(2)),
                    ("flatten", nn.Flatten()),
                    ("output", nn.Linear(channels * side * side, num_classes)),
                ]
            )
        )


class LeNet5(nn.Sequential):
    """LeNet-5 (LeCun et al. 1998, http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf) on 32×32 grey input.

    C1 conv5×5(6) – tanh – S2 avg-pool 2 – C3 conv5×5(16) – tanh – S4 avg-pool 2 – C5 conv5×5(120) – tanh –
    F6 linear(84) – tanh – output linear. As in the paper, C5 is a convolution whose output is 1×1. Every C3
    filter sees all S2 maps (the paper's sparse connection table was a hardware economy of its time).

    Args:
        num_classes: Output classes.
        in_channels: Input channels (1 for grey).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__(
            OrderedDict(
                [
                    ("c1", nn.Conv2d(in_channels, 6, 5)),
                    ("tanh1", nn.Tanh()),
                    ("s2", nn.AvgPool2d(2)),
                    ("c3", nn.Conv2d(6, 16, 5)),
                    ("tanh3", nn.Tanh()),
                    ("s4", nn.AvgPool2d(2)),
                    ("c5", nn.Conv2d(16, 120, 5)),
                    ("tanh5", nn.Tanh()),
                    ("flatten", nn.Flatten()),
                    ("f6", nn.Linear(120, 84)),
                    ("tanh6", nn.Tanh()),
                    ("output", nn.Linear(84, num_classes)),
                ]
            )
        )


# name → constructor taking (num_classes, in_channels); the model cards refer to these names.
ARCHITECTURES: dict[str, type[nn.Module]] = {"TinyVGG": TinyVGG, "LeNet5": LeNet5}
