"""The training loop on tiny problems it must solve, and its failure modes."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from cnn_explorer.training import TrainConfig, TrainingDiverged, evaluate, train


def _separable(n: int = 256, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long())


def test_learns_a_separable_problem_and_reports_each_epoch():
    torch.manual_seed(0)
    module = nn.Linear(2, 2)
    data = _separable()
    seen = []
    history = train(module, lambda epoch: data, TrainConfig(epochs=5, batch_size=32, lr=0.1), data, seen.append)
    assert [r.epoch for r in history] == [1, 2, 3, 4, 5] and seen == history
    assert history[-1].train_loss < history[0].train_loss
    assert history[-1].val_accuracy >= 0.95
    assert not module.training


def test_evaluate_matches_cross_entropy_and_restores_the_mode():
    torch.manual_seed(0)
    module = nn.Linear(2, 2).train()
    data = _separable(50)
    loss, accuracy = evaluate(module, data, batch_size=7)
    x, y = data.tensors
    with torch.no_grad():
        logits = module(x)
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert accuracy == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert module.training


def test_each_epoch_gets_its_own_data():
    asked = []

    def data_for_epoch(epoch):
        asked.append(epoch)
        return _separable(32, seed=epoch)

    train(nn.Linear(2, 2), data_for_epoch, TrainConfig(epochs=3, batch_size=16))
    assert asked == [0, 1, 2]


def test_stops_when_the_callback_says_so():
    history = train(nn.Linear(2, 2), lambda e: _separable(), TrainConfig(epochs=10), on_epoch=lambda r: r.epoch == 2)
    assert len(history) == 2


def test_diverging_loss_raises_with_advice():
    module = nn.Linear(2, 2)
    with torch.no_grad():
        module.weight.fill_(math.inf)
    with pytest.raises(TrainingDiverged, match="Lower the learning rate"):
        train(module, lambda e: _separable(), TrainConfig(epochs=1))


def test_learning_rate_anneals_to_zero():
    module = nn.Linear(2, 2)
    rates = []
    optimizer_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return optimizer_step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", spy)
        train(module, lambda e: _separable(64), TrainConfig(epochs=2, batch_size=16, lr=0.01))
    assert rates[0] == pytest.approx(0.01)
    assert rates == sorted(rates, reverse=True)
    assert rates[-1] < 0.01 * 0.05
