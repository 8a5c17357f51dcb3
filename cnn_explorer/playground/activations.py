"""Activation functions: the nonlinearities with their closed-form derivatives (:data:`ACTIVATIONS`), the
derivative by autograd (:func:`activation_curve`), and why deep sigmoid stacks stopped learning
(:func:`gradient_flow`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "ActivationSpec",
    "GradientFlow",
    "activation_curve",
    "gradient_flow",
]


_LEAKY_SLOPE = 0.01  # torch.nn.LeakyReLU's default


def _gelu_derivative(x: Tensor) -> Tensor:
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    pdf = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


@dataclass(frozen=True)
class ActivationSpec:
    """One nonlinearity.

    Attributes:
        key: Registry key.
        name: Display name.
        formula: ``f(x)`` in LaTeX.
        derivative_formula: ``f'(x)`` in LaTeX.
        function: ``f``, elementwise.
        derivative: ``f'`` in closed form (the tests check it against autograd).
        init_gain: The gain ``torch.nn.init`` recommends for it (``calculate_gain``): the weight scale that keeps
            signals the same size from layer to layer.
        note: One or two sentences for students.
    """

    key: str
    name: str
    formula: str
    derivative_formula: str
    function: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor], Tensor]
    init_gain: float
    note: str


#: The nonlinearities of the playground, keyed by name.
ACTIVATIONS: dict[str, ActivationSpec] = {
    spec.key: spec
    for spec in (
        ActivationSpec(
            "relu",
            "ReLU",
            r"\max(0, x)",
            r"1 \text{ if } x > 0 \text{ else } 0",
            torch.relu,
            lambda x: (x > 0).to(x.dtype),
            nn.init.calculate_gain("relu"),
            "Negative values become zero, positive ones pass unchanged. Its slope is exactly 1 wherever it is "
            "active, so gradients pass through many layers without shrinking.",
        ),
        ActivationSpec(
            "leaky_relu",
            "LeakyReLU",
            rf"x \text{{ if }} x > 0 \text{{ else }} {_LEAKY_SLOPE}\,x",
            rf"1 \text{{ if }} x > 0 \text{{ else }} {_LEAKY_SLOPE}",
            lambda x: F.leaky_relu(x, _LEAKY_SLOPE),
            lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, _LEAKY_SLOPE)),
            nn.init.calculate_gain("leaky_relu", _LEAKY_SLOPE),
            f"ReLU with a small slope ({_LEAKY_SLOPE}) for negative inputs, so a unit that is switched off still "
            "gets a little gradient and can come back to life.",
        ),
        ActivationSpec(
            "sigmoid",
            "Sigmoid",
            r"\frac{1}{1 + e^{-x}}",
            r"\sigma(x)\,(1 - \sigma(x))",
            torch.sigmoid,
            lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)),
            nn.init.calculate_gain("sigmoid"),
            "Squashes everything into (0, 1). Its slope is at most 0.25 and almost zero for large inputs, so every "
            "layer multiplies the gradient by a small number: after ten layers hardly anything is left.",
        ),
        ActivationSpec(
            "tanh",
            "tanh",
            r"\tanh(x)",
            r"1 - \tanh^2(x)",
            torch.tanh,
            lambda x: 1 - torch.tanh(x) ** 2,
            nn.init.calculate_gain("tanh"),
            "Squashes into (−1, 1), centred on zero (LeNet-5 uses it). Slope 1 at zero, but it saturates like the "
            "sigmoid for large inputs.",
        ),
        ActivationSpec(
            "gelu",
            "GELU",
            r"x\,\Phi(x)",
            r"\Phi(x) + x\,\varphi(x)",
            F.gelu,
            _gelu_derivative,
            nn.init.calculate_gain("relu"),  # torch has no gain for GELU; it behaves like ReLU for large inputs
            "x times the probability that a standard normal variable is below x: a smooth ReLU, used in "
            "transformers and ConvNeXt. Slightly negative for small negative inputs.",
        ),
    )
}


def _activation(key: str) -> ActivationSpec:
    if key not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {key!r}. Activations: {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[key]


def activation_curve(key: str, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(f(x), f'(x))`` for the activation ``key``, the derivative computed by autograd."""
    spec = _activation(key)
    with torch.enable_grad():
        inputs = x.detach().clone().requires_grad_(True)
        y = spec.function(inputs)
        (dy,) = torch.autograd.grad(y.sum(), inputs)
    return y.detach(), dy


@dataclass(frozen=True)
class GradientFlow:
    """The gradient reaching each layer of a deep stack.

    Attributes:
        activation: Key of the activation between the layers.
        norms: ``‖∂L/∂W_l‖`` for layers ``l = 1 … depth`` (1 is nearest the input).
        depth: Hidden layers.
        width: Units per layer.
    """

    activation: str
    norms: tuple[float, ...]
    depth: int
    width: int


def gradient_flow(activation: str, depth: int = 20, width: int = 64, batch: int = 128, seed: int = 0) -> GradientFlow:
    """Backpropagate one batch through a seeded deep stack of dense layers and measure each layer's gradient.

    The stack is ``depth`` linear layers of ``width`` units, each followed by the activation, then a linear layer
    to 10 classes and cross-entropy against random labels. Weights use Glorot's normal initialization with the
    activation's recommended gain (:attr:`ActivationSpec.init_gain`), so every activation starts as fairly as it
    can; biases start at zero. The same seed gives the same inputs, labels and weight draws for every activation.

    Raises:
        ValueError: Unknown activation, or a size below 1.
    """
    spec = _activation(activation)
    if min(depth, width, batch) < 1:
        raise ValueError(f"Depth, width and batch must be at least 1; got {depth}, {width}, {batch}.")
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, width, generator=generator)
    labels = torch.randint(0, 10, (batch,), generator=generator)
    weights = []
    for _ in range(depth):
        std = spec.init_gain * math.sqrt(2.0 / (width + width))
        weights.append((torch.randn(width, width, generator=generator) * std).requires_grad_(True))
    head = torch.randn(10, width, generator=generator) * math.sqrt(2.0 / (width + 10))
    with torch.enable_grad():
        h = inputs
        for w in weights:
            h = spec.function(h @ w.T)
        loss = F.cross_entropy(h @ head.T, labels)
        grads = torch.autograd.grad(loss, weights)
    return GradientFlow(activation, tuple(float(g.norm()) for g in grads), depth, width)
