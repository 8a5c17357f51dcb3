"""Fixtures of the layers tests: seeded TinyVGG, LeNet-5, ResNet-18 (non-trivial batch norm) and a model of
awkward windows, one per test module; nothing downloads."""

import pytest
import torch
import torchvision.models
from layer_models import RESNET_SIDE, Tricky, wrap  # tests/layers/layer_models.py
from torch import nn

from cnn_explorer.architectures import LeNet5, TinyVGG
from cnn_explorer.zoo import LoadedModel


@pytest.fixture(scope="module")
def tinyvgg() -> LoadedModel:
    torch.manual_seed(0)
    return wrap(TinyVGG(num_classes=10), (3, 64, 64), 10, "tinyvgg")


@pytest.fixture(scope="module")
def lenet() -> LoadedModel:
    torch.manual_seed(1)
    return wrap(LeNet5(num_classes=10), (1, 32, 32), 10, "lenet")


@pytest.fixture(scope="module")
def resnet() -> LoadedModel:
    torch.manual_seed(2)
    module = torchvision.models.resnet18()
    for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
        # Non-trivial statistics, so batch norm is more than the identity.
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.2, 0.2)
    return wrap(module, (3, RESNET_SIDE, RESNET_SIDE), 1000, "resnet18")


@pytest.fixture(scope="module")
def tricky() -> LoadedModel:
    torch.manual_seed(3)
    return wrap(Tricky(), (4, 19, 19), 5, "tricky")
