"""What each kind of layer does, in one sentence: :data:`LAYER_DESCRIPTIONS` and :func:`describe`.

The layer table (:mod:`cnn_explorer.layers.table`) gives every layer its sentence; the layer page also explains the
block a layer sits in (``BasicBlock``, ``SqueezeExcitation``) from here.
"""

from __future__ import annotations

__all__ = ["LAYER_DESCRIPTIONS", "describe"]


LAYER_DESCRIPTIONS: dict[str, str] = {
    "Conv2d": "Slides small learned filters over its input; each output value is a weighted sum of one window "
    "across the input channels plus a bias, so each map lights up where its pattern appears.",
    "ReLU": "Keeps positive values and sets negative ones to zero (max(0, x)); an in-place ReLU overwrites its "
    "input instead of allocating a new tensor, with the same result.",
    "ReLU6": "Like ReLU but also caps values at 6 (min(max(0, x), 6)), which keeps activations small for "
    "low-precision arithmetic.",
    "LeakyReLU": "Keeps positive values and scales negative ones by a small slope, so negative inputs still pass "
    "a little signal.",
    "Tanh": "Squashes every value into (−1, 1) with the hyperbolic tangent, as in the original LeNet.",
    "Sigmoid": "Squashes every value into (0, 1) with 1 / (1 + e⁻ˣ).",
    "Hardswish": "A cheap piecewise approximation of x · sigmoid(x): zero below −3, x above 3, a smooth ramp between.",
    "Hardsigmoid": "A cheap piecewise-linear sigmoid: 0 below −3, 1 above 3, a straight line between.",
    "SiLU": "Multiplies each value by its own sigmoid (x · σ(x)), a smooth ReLU-like curve that lets small "
    "negative values through.",
    "GELU": "Weights each value by the chance that a standard normal variable is below it (x · Φ(x)), a smooth "
    "ReLU-like curve.",
    "Softmax": "Turns a vector of scores into probabilities: exponentiate each score, then divide by the sum.",
    "MaxPool2d": "Keeps the largest value of each small window, shrinking the maps while keeping the strongest "
    "responses.",
    "AvgPool2d": "Replaces each small window by its average, shrinking the maps smoothly.",
    "AdaptiveAvgPool2d": "Averages each map over a grid of regions sized to give a fixed output size (often one "
    "value per map: global average pooling).",
    "AdaptiveMaxPool2d": "Takes the maximum of each map over a grid of regions sized to give a fixed output size.",
    "BatchNorm2d": "Normalizes each channel with the mean and variance learned during training, then scales and "
    "shifts it by learned factors (at inference a fixed per-channel a·x + b).",
    "Dropout": "Randomly zeroes values during training to prevent co-adaptation; at inference it passes values "
    "through unchanged.",
    "Flatten": "Lays the feature maps out as one long vector so dense layers can read them.",
    "Linear": "A dense layer: each output is a weighted sum of every input value plus a bias.",
    "Identity": "Passes its input through unchanged (a placeholder where a layer was removed or not needed).",
    # Blocks, for the page to explain the container a layer sits in (LayerInfo.block).
    "BasicBlock": "A residual block: two 3×3 convolutions whose result is added to the block's input (the "
    "shortcut, itself a strided 1×1 convolution when the shape changes), so each block learns a correction.",
    "Bottleneck": "A residual block: a 1×1 convolution narrows the channels, a 3×3 works in the narrow space, a "
    "1×1 widens them again, and the result is added to the block's input.",
    "InvertedResidual": "MobileNet's block: a 1×1 convolution widens the channels, a depthwise convolution filters "
    "each channel on its own, a 1×1 narrows them again, with a shortcut when shapes allow.",
    "SqueezeExcitation": "Squeeze-and-excitation: global average pooling summarises each channel, two small 1×1 "
    "convolutions turn the summary into one weight per channel in (0, 1), and the block's input channels are "
    "multiplied by those weights.",
    "Conv2dNormActivation": "A convolution followed by batch normalization and an activation, packaged as one unit.",
}


_GENERIC_DESCRIPTION = "A {kind} layer: it transforms its input; see the PyTorch documentation of {kind} for details."


def describe(kind: str) -> str:
    """One sentence saying what a layer (or block) of class name ``kind`` does; a generic sentence when unknown."""
    return LAYER_DESCRIPTIONS.get(kind, _GENERIC_DESCRIPTION.format(kind=kind))
