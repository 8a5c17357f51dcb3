"""playground.pooling: pooling, the translation demo and the relative change it reports.

References: ``F.max_pool2d`` / ``F.avg_pool2d``, a hand computation of the shifted maps, and hand-computed changes.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from toy_models import wrap as _wrap  # tests/playground/toy_models.py

from cnn_explorer.architectures import LeNet5
from cnn_explorer.layers import capture_activations
from cnn_explorer.playground import (
    default_translation_layer,
    pool,
    relative_change,
    size_formula,
    spatial_layers,
    translation_effect,
)
from cnn_explorer.zoo import LoadedModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("window", "stride"), [(2, None), (2, 1), (3, 2), (3, 3), (4, 2), (1, 1)])
def test_pooling_equals_torch(window: int, stride: int | None) -> None:
    maps = torch.randn(2, 4, 13, 10, generator=torch.Generator().manual_seed(window))
    torch.testing.assert_close(pool(maps, "max", window, stride), F.max_pool2d(maps, window, stride))
    torch.testing.assert_close(pool(maps, "average", window, stride), F.avg_pool2d(maps, window, stride))
    torch.testing.assert_close(pool(maps[0], "max", window, stride), F.max_pool2d(maps, window, stride)[0])
    height, width = size_formula(13, 10, window, stride or window)
    assert pool(maps[0], "max", window, stride).shape[-2:] == (height.output, width.output)


def test_pooling_by_hand_and_its_errors() -> None:
    maps = torch.tensor([[[1.0, 5, 2, 0], [3, 4, 8, 1], [0, 0, 1, 1], [2, 6, 1, 3]]])
    assert pool(maps, "max").tolist() == [[[5.0, 8.0], [6.0, 3.0]]]
    assert pool(maps, "average").tolist() == [[[3.25, 2.75], [2.0, 1.5]]]
    with pytest.raises(ValueError, match=r"5×5 window does not fit in 4×4 maps"):
        pool(maps, "max", 5)
    with pytest.raises(ValueError, match="Pooling must be one of max, average"):
        pool(maps, "median")


def test_the_translation_demo_against_a_hand_computation(tinyvgg: LoadedModel) -> None:
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    layer = default_translation_layer(tinyvgg)
    assert layer == "relu_1_2"  # what max_pool_1 reads
    effect = translation_effect(tinyvgg, x, layer, kind="max", window=2, max_shift=4)
    assert effect.shifts == (0, 1, 2, 3, 4)
    assert effect.maps_change[0] == 0 and effect.pooled_change[0] == 0
    reference = capture_activations(tinyvgg, x, [layer])[layer]
    pooled_reference = F.max_pool2d(reference, 2)
    for k in effect.shifts[1:]:
        shifted = torch.cat([x[..., :1].expand(-1, -1, -1, k), x[..., :-k]], dim=-1)  # left edge repeated
        maps = capture_activations(tinyvgg, shifted, [layer])[layer]
        expected = float((maps - reference).norm() / (reference.norm() + maps.norm()))
        assert effect.maps_change[k] == pytest.approx(expected, rel=1e-5)
        pooled = F.max_pool2d(maps, 2)
        expected_pooled = float((pooled - pooled_reference).norm() / (pooled_reference.norm() + pooled.norm()))
        assert effect.pooled_change[k] == pytest.approx(expected_pooled, rel=1e-5)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in tinyvgg.module.modules())


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ([1.0, 0.0], [1.0, 0.0], 0.0),  # unchanged
        ([1.0, 0.0], [0.0, 1.0], 1 / math.sqrt(2)),  # the same pattern somewhere else: √2 / (1 + 1)
        ([3.0, 4.0], [-3.0, -4.0], 1.0),  # the opposite: 10 / (5 + 5), the largest change there is
        ([3.0, 4.0], [6.0, 8.0], 1 / 3),  # twice as strong: 5 / (5 + 10)
        ([0.0, 0.0], [0.0, 2.0], 1.0),  # something from nothing
        ([0.0, 0.0], [0.0, 0.0], 0.0),  # nothing stays nothing
        ([[2.0, 0.0], [0.0, 0.0]], [[2.0, 1.0], [0.0, 0.0]], 1 / 4.2360679775),  # 1 / (2 + √5)
    ],
)
def test_relative_change_by_hand_stays_within_0_and_1(before: list, after: list, expected: float) -> None:
    assert relative_change(torch.tensor(before), torch.tensor(after)) == pytest.approx(expected, abs=1e-9)


def test_relative_change_never_exceeds_one_where_the_old_measure_read_over_100_percent() -> None:
    before, after = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.2, 0.5])
    assert float((after - before).norm() / before.norm()) == pytest.approx(math.sqrt(2.69))  # 164 %: unreadable
    assert relative_change(before, after) == pytest.approx(math.sqrt(2.69) / (1 + 1.3))  # 71 %
    with pytest.raises(ValueError, match="same shape"):
        relative_change(before, torch.zeros(2))


def test_translation_layers_and_errors(tinyvgg: LoadedModel) -> None:
    assert spatial_layers(tinyvgg)[:3] == ["conv_1_1", "relu_1_1", "conv_1_2"]
    torch.manual_seed(0)
    lenet = _wrap(LeNet5(), (1, 32, 32), "lenet")
    assert default_translation_layer(lenet) == "tanh1"
    with pytest.raises(ValueError, match="largest shift"):
        translation_effect(tinyvgg, torch.zeros(1, 3, 64, 64), "conv_1_1", max_shift=64)
