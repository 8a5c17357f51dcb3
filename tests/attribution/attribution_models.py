"""Shared by the attribution tests: the zoo models the contract runs on, their sample inputs, a net with
torchvision's in-place ReLU traps, and Grad-CAM by hand (the reference the CAMs are checked against)."""

from collections import OrderedDict

import torch
from torch import nn

from cnn_explorer.images import load_sample, samples_for
from cnn_explorer.zoo import LoadedModel

MODELS = ("tinyvgg-shapes", "lenet5-digits", "resnet18")


def input_for(model: LoadedModel) -> torch.Tensor:
    sample = samples_for(model.name, made_for_it=True) or samples_for(model.name)
    return model.preprocess(load_sample(sample[0]))


class Trap(nn.Module):
    """A VGG-like net with torchvision's traps: an in-place ReLU right after the CAM layer and a reused ReLU."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.features = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 6, 3, padding=1),
                relu1=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(2),
                conv2=nn.Conv2d(6, 8, 3, padding=1),
                relu2=nn.ReLU(inplace=True),
            )
        )
        self.fc = nn.Linear(8 * 8 * 8, 16)
        self.shared_relu = nn.ReLU(inplace=True)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        h = self.shared_relu(self.fc(torch.flatten(self.features(x), 1)))
        return self.out(self.shared_relu(h))  # reused, as torchvision's ResNet blocks reuse theirs


def hand_gradcam(module: nn.Module, layer: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """ReLU(Σ_k mean(∂y/∂A_k) · A_k), with A captured as a clone (no in-place op can rewrite it)."""
    kept = {}
    handle = layer.register_forward_hook(lambda m, i, o: kept.setdefault("A", o))
    try:
        score = module(x.clone().requires_grad_(True))[0, target]
    finally:
        handle.remove()
    (gradient,) = torch.autograd.grad(score, kept["A"])
    weights = gradient[0].mean(dim=(1, 2))
    return torch.relu((weights[:, None, None] * kept["A"][0].detach()).sum(dim=0))
