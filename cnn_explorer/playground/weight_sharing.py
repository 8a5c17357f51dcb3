"""Weight sharing in numbers: each conv layer's parameter count beside a dense layer's with the same input and
output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from cnn_explorer.layers import list_layers
from cnn_explorer.model import LoadedModel

__all__ = [
    "SharingRow",
    "weight_sharing",
]


@dataclass(frozen=True)
class SharingRow:
    """One conv layer next to the dense layer that would map the same input to the same output.

    Attributes:
        layer: The conv layer's name.
        input_shape: ``(C, H, W)`` it reads.
        output_shape: ``(C', H', W')`` it writes.
        kernel: ``(kh, kw)``.
        conv_params: Its weights and biases: ``C' × C/groups × kh × kw + C'``.
        dense_params: A dense layer's: ``(C·H·W) × (C'·H'·W') + C'·H'·W'``.
    """

    layer: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel: tuple[int, int]
    conv_params: int
    dense_params: int

    @property
    def ratio(self) -> float:
        """How many times more parameters the dense layer needs."""
        return self.dense_params / max(self.conv_params, 1)


def weight_sharing(model: LoadedModel) -> list[SharingRow]:
    """Every conv layer's parameter count beside a dense layer's with the same input and output sizes.

    A conv layer reuses one small kernel per output channel at every position; a dense layer has its own weight for
    every (input value, output value) pair.
    """
    rows = []
    for info in list_layers(model):
        module = model.module.get_submodule(info.path)
        if not isinstance(module, nn.Conv2d) or info.call != 1:
            continue
        inputs, outputs = math.prod(info.input_shape), math.prod(info.output_shape)
        rows.append(
            SharingRow(
                layer=info.name,
                input_shape=tuple(info.input_shape),
                output_shape=tuple(info.output_shape),
                kernel=tuple(module.kernel_size),
                conv_params=sum(p.numel() for p in module.parameters()),
                dense_params=inputs * outputs + outputs,
            )
        )
    return rows
