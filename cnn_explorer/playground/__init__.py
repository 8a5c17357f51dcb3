"""The playground's building blocks on their own: convolution, pooling, activations, weight sharing.

Everything here is small enough to compute by hand, and the page shows the hand computation next to the result.
One module per building block; this ``__init__`` only re-exports them:

- :mod:`~cnn_explorer.playground.kernels`: the classic image-processing kernels of :data:`KERNELS`.
- :mod:`~cnn_explorer.playground.convolution`: :func:`convolve` as sliding windows with stride, padding and
  dilation; :func:`conv_step`, one position of the slide; :func:`size_formula`, the output size filled in.
- :mod:`~cnn_explorer.playground.pooling`: :func:`pool`, and :func:`translation_effect`, how much a layer's maps and
  their pooled version change when the image moves by a few pixels.
- :mod:`~cnn_explorer.playground.activations`: :data:`ACTIVATIONS` with their closed-form derivatives;
  :func:`activation_curve` gets the derivative from autograd; :func:`gradient_flow` shows why deep sigmoid stacks
  stopped learning.
- :mod:`~cnn_explorer.playground.weight_sharing`: each conv layer's parameter count beside a dense layer's.

Convolution and pooling are written as sliding windows (``Tensor.unfold``), not as calls of ``F.conv2d`` or
``F.max_pool2d``: the tests compare them with those.
"""

from cnn_explorer.playground.activations import (
    ACTIVATIONS,
    ActivationSpec,
    GradientFlow,
    activation_curve,
    gradient_flow,
)
from cnn_explorer.playground.convolution import (
    PADDING_MODES,
    ConvSettings,
    ConvStep,
    SizeFormula,
    conv_step,
    convolve,
    follow_position,
    image_tensor,
    output_size,
    pad,
    size_formula,
)
from cnn_explorer.playground.kernels import KERNEL_SIZES, KERNELS, KernelPreset
from cnn_explorer.playground.pooling import (
    POOLS,
    TranslationEffect,
    default_translation_layer,
    pool,
    relative_change,
    spatial_layers,
    translation_effect,
)
from cnn_explorer.playground.weight_sharing import SharingRow, weight_sharing

__all__ = [
    "ACTIVATIONS",
    "KERNELS",
    "KERNEL_SIZES",
    "PADDING_MODES",
    "POOLS",
    "ActivationSpec",
    "ConvSettings",
    "ConvStep",
    "GradientFlow",
    "KernelPreset",
    "SharingRow",
    "SizeFormula",
    "TranslationEffect",
    "activation_curve",
    "conv_step",
    "convolve",
    "default_translation_layer",
    "follow_position",
    "gradient_flow",
    "image_tensor",
    "output_size",
    "pad",
    "pool",
    "relative_change",
    "size_formula",
    "spatial_layers",
    "translation_effect",
    "weight_sharing",
]
