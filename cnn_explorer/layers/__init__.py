"""Layers of a loaded model: the layer table, activation capture, one unit's arithmetic, receptive fields.

One module per concern; this ``__init__`` only re-exports them, so ``layers.list_layers`` and friends keep working:

- :mod:`~cnn_explorer.layers.names`: how layers are named (``"layer1.0.relu#2"``) and found; :class:`UnknownLayer`.
- :mod:`~cnn_explorer.layers.descriptions`: what each kind of layer does, in one sentence.
- :mod:`~cnn_explorer.layers.capture`: the outputs and inputs of named layers for one input, in one forward pass.
- :mod:`~cnn_explorer.layers.geometry`: theoretical receptive fields propagated layer by layer.
- :mod:`~cnn_explorer.layers.table`: the layer table (shapes, parameters, MACs, receptive field) and a unit's field.
- :mod:`~cnn_explorer.layers.arithmetic`: the numbers behind one output value of one layer.
- :mod:`~cnn_explorer.layers.effective_field`: the effective receptive field, by the gradient.
- :mod:`~cnn_explorer.layers.statistics`: statistics of one layer's output.

Every function that registers hooks holds ``model.lock`` and registers them through
:class:`~cnn_explorer.hooks.ForwardHooks`: they ignore calls from other threads, so a prediction running beside a
capture is never recorded into it, and are removed on exit, leaving the module as it was found.

Layers are the LEAF modules (modules without children) in the order they run. A module called more than once in
one forward pass (ResNet's ``BasicBlock`` calls its ``relu`` twice) is one layer per call: the first call is named
by its dotted path (``"layer1.0.relu"``), the k-th by the path and ``#k`` (``"layer1.0.relu#2"``).
:func:`list_layers`, :func:`capture_activations`, :func:`capture_inputs`, :func:`capture_layers`,
:func:`explain_unit` and :func:`effective_receptive_field` all use these names; :attr:`LayerInfo.path` is always
the plain dotted path.

Stepping through layers costs no forward pass: capture once per (model, image) with :func:`capture_layers`, then
pass both dicts to :func:`explain_unit`.
"""

from cnn_explorer.layers.arithmetic import SoftmaxArithmetic, UnitArithmetic, explain_unit
from cnn_explorer.layers.capture import capture_activations, capture_inputs, capture_layers
from cnn_explorer.layers.descriptions import LAYER_DESCRIPTIONS, describe
from cnn_explorer.layers.effective_field import effective_receptive_field, inplace_disabled
from cnn_explorer.layers.names import UnknownLayer
from cnn_explorer.layers.statistics import HISTOGRAM_BINS, ActivationStats, activation_stats
from cnn_explorer.layers.table import LayerInfo, list_layers, theoretical_field

__all__ = [
    "HISTOGRAM_BINS",
    "LAYER_DESCRIPTIONS",
    "ActivationStats",
    "LayerInfo",
    "SoftmaxArithmetic",
    "UnitArithmetic",
    "UnknownLayer",
    "activation_stats",
    "capture_activations",
    "capture_inputs",
    "capture_layers",
    "describe",
    "effective_receptive_field",
    "explain_unit",
    "inplace_disabled",
    "list_layers",
    "theoretical_field",
]
