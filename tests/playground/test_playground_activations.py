"""playground.activations: each activation and its derivative against the ``torch.nn`` modules and autograd,
and the gradient that reaches each layer of a deep stack.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnn_explorer.playground import (
    ACTIVATIONS,
    activation_curve,
    gradient_flow,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


_MODULES = {
    "relu": nn.ReLU(),
    "leaky_relu": nn.LeakyReLU(),
    "sigmoid": nn.Sigmoid(),
    "tanh": nn.Tanh(),
    "gelu": nn.GELU(),
}


@pytest.mark.parametrize("key", list(ACTIVATIONS))
def test_activations_and_their_derivatives(key: str) -> None:
    x = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    x = x[x.abs() > 1e-9]  # ReLU's kink: autograd and the closed form may pick different one-sided slopes
    y, dy = activation_curve(key, x)
    torch.testing.assert_close(y, _MODULES[key](x))
    torch.testing.assert_close(dy, ACTIVATIONS[key].derivative(x))


def test_the_gelu_derivative_by_finite_differences() -> None:
    x = torch.linspace(-4, 4, 81, dtype=torch.float64)
    h = 1e-6
    numeric = (F.gelu(x + h) - F.gelu(x - h)) / (2 * h)
    torch.testing.assert_close(ACTIVATIONS["gelu"].derivative(x), numeric, atol=1e-8, rtol=1e-6)


def test_gradients_vanish_through_sigmoids_but_not_relus() -> None:
    sigmoid, relu = gradient_flow("sigmoid"), gradient_flow("relu")
    assert len(sigmoid.norms) == len(relu.norms) == 20
    assert sigmoid.norms[0] / sigmoid.norms[-1] < 1e-6  # the first layer gets nothing
    assert relu.norms[0] / relu.norms[-1] > 1e-2
    assert gradient_flow("sigmoid") == sigmoid  # seeded
    assert gradient_flow("sigmoid", seed=1) != sigmoid
    with pytest.raises(ValueError, match="Unknown activation 'swish'"):
        gradient_flow("swish")
