"""Shared by the playground tests: a bare module wrapped as a LoadedModel, with no weights to load."""

from torch import nn

from cnn_explorer.preprocess import Preprocess
from cnn_explorer.zoo import LoadedModel


def wrap(module: nn.Module, input_size: tuple[int, int, int], name: str = "test") -> LoadedModel:
    channels, side, _ = input_size
    return LoadedModel(
        name=name,
        module=module.eval(),
        input_size=input_size,
        class_names=tuple(f"class {i}" for i in range(10)),
        preprocess=Preprocess(resize=side, crop=side, grayscale=channels == 1),
        summary=name,
        card=name,
    )
