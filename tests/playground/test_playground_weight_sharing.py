"""playground.weight_sharing: conv and dense parameter counts, against hand counts, ``nn.Linear``'s own count and
the training page's stack planner.
"""

import pytest
from torch import nn
from toy_models import wrap as _wrap  # tests/playground/toy_models.py

from cnn_explorer.architectures import describe_stack
from cnn_explorer.playground import (
    weight_sharing,
)
from cnn_explorer.runspec import LayerSpec
from cnn_explorer.zoo import LoadedModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_weight_sharing_by_hand(tinyvgg: LoadedModel) -> None:
    rows = weight_sharing(tinyvgg)
    assert [row.layer for row in rows] == ["conv_1_1", "conv_1_2", "conv_2_1", "conv_2_2"]
    first = rows[0]
    assert first.input_shape == (3, 64, 64) and first.output_shape == (10, 62, 62) and first.kernel == (3, 3)
    assert first.conv_params == 10 * 3 * 3 * 3 + 10
    assert first.dense_params == (3 * 64 * 64) * (10 * 62 * 62) + 10 * 62 * 62
    assert first.ratio == first.dense_params / first.conv_params


def test_the_dense_count_is_nn_linear_s() -> None:
    tiny = _wrap(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 10)), (1, 6, 6), "tiny")
    (row,) = weight_sharing(tiny)
    assert row.conv_params == sum(p.numel() for p in tiny.module[0].parameters())
    assert row.dense_params == sum(p.numel() for p in nn.Linear(36, 32).parameters())


def test_the_dense_count_agrees_with_the_stack_planner(tinyvgg: LoadedModel) -> None:
    """The training page's ``describe_stack`` counts the same dense layer for the same convolutions."""
    conv, relu = LayerSpec("conv", channels=10, kernel=3), LayerSpec("relu")
    pool_ = LayerSpec("pool", kernel=2, stride=None)
    stack = describe_stack([conv, relu, conv, relu, pool_, conv, relu, conv, relu, pool_], 3, 64, 10)
    planned = [row.dense_params for row in stack if row.dense_params is not None]
    assert planned == [row.dense_params for row in weight_sharing(tinyvgg)]
    assert [row.params for row in stack if row.kind == "Conv2d"] == [row.conv_params for row in weight_sharing(tinyvgg)]
