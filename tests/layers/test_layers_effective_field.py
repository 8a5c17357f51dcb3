"""The effective receptive field against the gradient computed directly; inside the theoretical field; in-place
flags restored."""

import pytest
import torch
from layer_models import assert_no_hooks, random_input  # tests/layers/layer_models.py

from cnn_explorer.layers import capture_activations, effective_receptive_field, list_layers, theoretical_field

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_effective_field_lies_inside_the_theoretical_one(tinyvgg):
    x = random_input(tinyvgg)
    layers = list_layers(tinyvgg)
    erf = effective_receptive_field(tinyvgg, x, "conv_2_2", (3, 13, 13))
    assert erf.shape == (64, 64)
    top, left, bottom, right = theoretical_field(layers, "conv_2_2", 13, 13)
    assert (bottom - top, right - left) == (14, 14)
    rows, cols = torch.nonzero(erf, as_tuple=True)
    assert len(rows) > 0
    assert top <= rows.min() and rows.max() < bottom and left <= cols.min() and cols.max() < right
    # The reference: the same gradient computed directly.
    image = x.clone().requires_grad_(True)
    h = image
    for name, layer in tinyvgg.module.named_children():
        h = layer(h)
        if name == "conv_2_2":
            break
    (grad,) = torch.autograd.grad(h[0, 3, 13, 13], image)
    assert torch.allclose(erf, grad[0].abs().sum(0))
    assert all(p.grad is None for p in tinyvgg.module.parameters())
    assert_no_hooks(tinyvgg.module)


def test_effective_field_on_resnet_restores_inplace_flags(resnet):
    x = random_input(resnet)
    inplace = [m for m in resnet.module.modules() if getattr(m, "inplace", False)]
    assert inplace  # torchvision's ReLUs are in-place
    layers = list_layers(resnet)
    block_output = capture_activations(resnet, x, ["layer1.0.relu#2"])["layer1.0.relu#2"][0, 0]
    active = tuple(int(i) for i in torch.nonzero(block_output[4:-4, 4:-4] > 0)[0] + 4)  # a unit the ReLU passes
    for name, index in [("layer1.0.bn1", (2, 8, 8)), ("layer1.0.relu#2", (0, *active))]:
        erf = effective_receptive_field(resnet, x, name, index)
        top, left, bottom, right = theoretical_field(layers, name, *index[1:])
        rows, cols = torch.nonzero(erf, as_tuple=True)
        assert len(rows) > 0
        assert top <= rows.min() and rows.max() < bottom and left <= cols.min() and cols.max() < right
    assert all(m.inplace for m in inplace)
    assert not resnet.module.training and not any(m.training for m in resnet.module.modules())
    assert all(p.grad is None for p in resnet.module.parameters())
    assert_no_hooks(resnet.module)
