"""Layer names: an unknown layer or position says which are valid, whichever function was asked."""

import pytest
from layer_models import assert_no_hooks, random_input  # tests/layers/layer_models.py

from cnn_explorer.layers import (
    UnknownLayer,
    capture_activations,
    capture_inputs,
    effective_receptive_field,
    explain_unit,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_unknown_layers_name_the_valid_ones(tinyvgg):
    x = random_input(tinyvgg)
    with pytest.raises(KeyError, match=r"Unknown layer 'conv_9'.*conv_1_1.*output"):
        capture_activations(tinyvgg, x, ["conv_9"])
    with pytest.raises(UnknownLayer, match=r"'relu_1_1#2'.*did not run"):
        capture_activations(tinyvgg, x, ["relu_1_1#2"])
    with pytest.raises(UnknownLayer, match="call number"):
        capture_inputs(tinyvgg, x, ["relu_1_1#x"])
    activations = capture_activations(tinyvgg, x, ["conv_1_1"])
    with pytest.raises(KeyError, match="capture it first"):
        explain_unit(tinyvgg, activations, x, "conv_1_2", (0, 0, 0))
    with pytest.raises(ValueError, match="not a position"):
        explain_unit(tinyvgg, activations, x, "conv_1_1", (10, 0, 0))
    with pytest.raises(KeyError, match="conv_1_1"):
        effective_receptive_field(tinyvgg, x, "nope", (0, 0, 0))
    assert_no_hooks(tinyvgg.module)
