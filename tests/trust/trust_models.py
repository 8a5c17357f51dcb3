"""Shared by the trust tests: a bare module wrapped as a LoadedModel, with no weights to load."""

from torch import nn

from cnn_explorer.preprocess import Preprocess
from cnn_explorer.zoo import LoadedModel


def loaded(module: nn.Module, input_size: tuple[int, int, int], classes: int, name: str = "test") -> LoadedModel:
    return LoadedModel(
        name=name,
        module=module.eval(),
        input_size=input_size,
        class_names=tuple(f"class {i}" for i in range(classes)),
        preprocess=Preprocess(resize=input_size[-1], crop=input_size[-1]),
        summary="",
        card="",
    )
