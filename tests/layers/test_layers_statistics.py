"""Activation statistics by hand: range, mean, zero share, dead channels, histogram."""

import pytest
import torch

from cnn_explorer.layers import activation_stats

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_activation_stats_by_hand():
    maps = torch.tensor(
        [
            [[-1.0, 0.0], [2.0, 0.0]],
            [[-3.0, -1.0], [0.0, -2.0]],
            [[0.5, 0.5], [0.5, 0.5]],
        ]
    )
    for t in (maps, maps[None]):
        stats = activation_stats(t)
        assert (stats.min, stats.max, stats.mean) == (-3.0, 2.0, -0.25)
        assert stats.zero_share == 0.25
        assert stats.channel_max.tolist() == [2.0, 0.0, 0.5]
        assert stats.dead_channels == (1,)
        assert stats.histogram.shape == (40,) and stats.bin_edges.shape == (41,)
        assert stats.histogram.sum().item() == 12
        assert (stats.bin_edges[0].item(), stats.bin_edges[-1].item()) == (-3.0, 2.0)
        assert stats.histogram[0].item() == 1 and stats.histogram[-1].item() == 1  # −3 and 2
    vector = activation_stats(torch.tensor([[0.0, 1.0, -2.0]]))
    assert vector.dead_channels == (0, 2) and vector.channel_max.tolist() == [0.0, 1.0, -2.0]
    constant = activation_stats(torch.zeros(2, 3, 3), bins=4)
    assert constant.zero_share == 1.0 and constant.histogram.tolist() == [0, 0, 18, 0]
    with pytest.raises(ValueError, match="batch of 2"):
        activation_stats(torch.zeros(2, 3, 4, 4))
