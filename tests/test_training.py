"""The training loop on tiny problems it must solve, and its failure modes."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from cnn_explorer.runspec import Settings
from cnn_explorer.training import (
    OPTIMIZERS,
    TrainConfig,
    TrainingDiverged,
    evaluate,
    fit,
    native_bfloat16,
    predict_dataset,
    train,
)


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
    rates = _rates(TrainConfig(epochs=2, batch_size=16, lr=0.01))
    assert rates[0] == pytest.approx(0.01)
    assert rates == sorted(rates, reverse=True)
    assert rates[-1] < 0.01 * 0.05


def _rates(config: TrainConfig, images: int = 64) -> list[float]:
    """The learning rate of every optimizer step of a run of ``config``."""
    rates = []
    optimizer_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return optimizer_step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", spy)
        train(nn.Linear(2, 2), lambda e: _separable(images), config)
    return rates


def test_without_warmup_the_rate_is_the_plain_cosine():
    rates = _rates(TrainConfig(epochs=2, batch_size=16, lr=0.01))
    assert rates == [0.01 * 0.5 * (1 + math.cos(math.pi * step / 8)) for step in range(8)]


def test_warmup_climbs_linearly_to_the_peak_then_anneals():
    rates = _rates(TrainConfig(epochs=2, batch_size=8, lr=0.01, warmup=0.25))  # 16 steps, 4 of them climbing
    assert rates[:4] == pytest.approx([0.002, 0.004, 0.006, 0.008])
    assert rates[4] == pytest.approx(0.01)
    assert rates[4:] == sorted(rates[4:], reverse=True)
    assert rates[-1] < 0.01 * 0.05


@pytest.mark.parametrize(
    ("config", "match"),
    [(TrainConfig(precision="float16"), "Unknown precision"), (TrainConfig(warmup=1.0), "warmup is a share")],
)
def test_bad_precision_or_warmup_is_refused(config, match):
    with pytest.raises(ValueError, match=match):
        train(nn.Linear(2, 2), lambda e: _separable(16), config)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_small_cnn_learns_in_either_precision_and_channels_last(precision):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 1, 8, 8, generator=g)
    y = (x[:, :, :, :4].sum((1, 2, 3)) > x[:, :, :, 4:].sum((1, 2, 3))).long()  # which half is brighter
    data = TensorDataset(x, y)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 2))
    config = TrainConfig(epochs=8, batch_size=32, lr=0.01, precision=precision, channels_last=True)
    history = train(module, lambda e: data, config, data)
    assert history[-1].train_loss < history[0].train_loss * 0.5
    assert history[-1].val_accuracy >= 0.9
    assert all(p.dtype == torch.float32 for p in module.parameters())  # autocast never changes the weights
    # Validation ran channels-last too: the same float32 function, so the default layout gives its numbers.
    loss, accuracy = evaluate(module, data)
    assert history[-1].val_accuracy == accuracy and history[-1].val_loss == pytest.approx(loss, rel=1e-5)


def test_native_bfloat16_is_a_plain_answer():
    assert native_bfloat16() in (True, False)


# ── fit: progress, stop, early stopping, divergence ──────────────────────────────────────────────────────────────


def test_fit_reports_progress_every_batch_when_asked():
    reports = []
    result = fit(
        nn.Linear(2, 2),
        lambda e: _separable(64),
        TrainConfig(epochs=2, batch_size=16),
        _separable(32, seed=1),
        on_batch=reports.append,
        progress_every=0.0,
    )
    assert result.reason == "completed" and len(result.history) == 2
    assert [(r.epoch, r.batch) for r in reports] == [(e, b) for e in (1, 2) for b in (1, 2, 3, 4)]
    assert all(r.batches == 4 and r.epochs == 2 and r.images_per_second > 0 for r in reports)
    assert all(math.isfinite(r.loss) and r.seconds_left >= 0 for r in reports)
    assert reports[-1].seconds_left < reports[0].seconds_left
    assert all(r.images_per_second > 0 for r in result.history)


def test_fit_throttles_progress_by_time_but_always_reports_the_end_of_an_epoch():
    reports = []
    config = TrainConfig(epochs=2, batch_size=4)
    fit(nn.Linear(2, 2), lambda e: _separable(64), config, on_batch=reports.append, progress_every=3600)
    assert [(r.epoch, r.batch) for r in reports] == [(1, 16), (2, 16)]


def test_should_stop_ends_training_mid_epoch():
    calls = []
    steps = []
    optimizer_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        steps.append(1)
        return optimizer_step(self, *args, **kwargs)

    def should_stop():
        calls.append(1)
        return len(calls) > 3

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", spy)
        config = TrainConfig(epochs=5, batch_size=8)
        result = fit(nn.Linear(2, 2), lambda e: _separable(64), config, should_stop=should_stop)
    assert result.reason == "stopped"
    assert result.history == [] and result.best_epoch is None
    assert len(steps) == 3  # three batches ran, the fourth was never started


def test_should_stop_is_also_polled_during_validation():
    calls = []
    batches_per_epoch = 2

    def should_stop():
        calls.append(1)
        return len(calls) > batches_per_epoch  # True at the first validation batch

    result = fit(
        nn.Linear(2, 2),
        lambda e: _separable(32),
        TrainConfig(epochs=3, batch_size=16),
        _separable(32, seed=1),
        should_stop=should_stop,
    )
    assert result.reason == "stopped" and result.history == []


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    torch.manual_seed(0)
    module = nn.Linear(2, 2)
    train_data = _separable(128)
    x, y = train_data.tensors
    opposite = TensorDataset(x, 1 - y)  # every step on the training data makes this validation loss worse
    states = []

    def snapshot(result):
        states.append({k: v.clone() for k, v in module.state_dict().items()})

    config = TrainConfig(epochs=20, batch_size=32, lr=0.05, patience=2)
    result = fit(module, lambda e: train_data, config, opposite, on_epoch=snapshot)
    assert result.reason == "early_stopped"
    assert len(result.history) == 3  # epoch 1 is the best; epochs 2 and 3 did not improve
    assert result.best_epoch == 1 and result.best is result.history[0]
    assert [r.best for r in result.history] == [True, False, False]
    for key, value in module.state_dict().items():
        assert torch.equal(value, states[0][key]), key
    assert evaluate(module, opposite)[0] == pytest.approx(result.history[0].val_loss)


def test_without_patience_the_best_weights_are_still_the_ones_kept():
    torch.manual_seed(0)
    module = nn.Linear(2, 2)
    train_data = _separable(128)
    x, y = train_data.tensors
    result = fit(module, lambda e: train_data, TrainConfig(epochs=4, lr=0.05), TensorDataset(x, 1 - y))
    assert result.reason == "completed" and len(result.history) == 4 and result.best_epoch == 1


def test_a_huge_learning_rate_diverges_with_the_step_and_advice():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))  # weights multiply: they overflow
    config = TrainConfig(epochs=3, batch_size=16, lr=1e20, optimizer="sgd")
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step \d+.*Lower the learning rate") as info:
        fit(module, lambda e: _separable(), config)
    assert info.value.epoch == 1 and info.value.step >= 2


def test_a_poisoned_input_is_blamed_on_the_data():
    data = _separable(64)
    x, y = data.tensors
    x = x.clone()
    x[40, 0] = math.nan
    with pytest.raises(TrainingDiverged, match="input batch contains NaN") as info:
        fit(nn.Linear(2, 2), lambda e: TensorDataset(x, y), TrainConfig(epochs=1, batch_size=64))
    assert (info.value.epoch, info.value.step) == (1, 1)


def test_a_lone_last_image_is_dropped_so_batch_norm_can_train():
    module = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    result = fit(module, lambda e: _separable(33), TrainConfig(epochs=1, batch_size=16))
    assert len(result.history) == 1


def test_only_trainable_parameters_are_trained():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    module[0].requires_grad_(False)
    frozen = module[0].weight.clone()
    fit(module, lambda e: _separable(), TrainConfig(epochs=2, lr=0.05))
    assert torch.equal(module[0].weight, frozen)


def test_predict_dataset_gives_softmax_in_order():
    torch.manual_seed(0)
    module = nn.Linear(2, 3).train()
    x = torch.randn(10, 2)
    labels, probabilities = predict_dataset(module, TensorDataset(x, torch.arange(10) % 3), batch_size=4)
    assert torch.equal(labels, torch.arange(10) % 3)
    with torch.no_grad():
        assert torch.allclose(probabilities, torch.softmax(module(x), dim=1))
    assert module.training


class _BatchedOnly(TensorDataset):
    """A dataset that assembles whole batches itself, and whose single items are refused."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        super().__init__(*tensors)
        self.batches: list[list[int]] = []

    def batch(self, indices):
        self.batches.append(list(indices))
        return tuple(t[indices] for t in self.tensors)

    def __getitem__(self, index):
        raise AssertionError("items are read one by one")


def test_a_dataset_that_builds_its_batches_trains_exactly_like_one_read_item_by_item():
    data = _separable(100)
    batched = _BatchedOnly(*data.tensors)
    config = TrainConfig(epochs=3, batch_size=32, lr=0.1, seed=5)
    modules = []
    for dataset in (data, batched):
        torch.manual_seed(0)
        module = nn.Linear(2, 2)
        result = fit(module, lambda epoch, d=dataset: d, config, dataset)
        modules.append((module, result.history))
    (plain, plain_history), (fast, fast_history) = modules
    for a, b in zip(plain.parameters(), fast.parameters(), strict=True):
        assert torch.equal(a, b)  # the same shuffled order, batch by batch
    assert [r.val_loss for r in plain_history] == [r.val_loss for r in fast_history]
    assert [len(b) for b in batched.batches[:4]] == [32, 32, 32, 4]  # training batches, then validation's
    assert sorted(i for b in batched.batches[:4] for i in b) == list(range(100))
    assert predict_dataset(fast, batched, batch_size=64)[0].tolist() == data.tensors[1].tolist()


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adams_beta2_reaches_the_optimizer_and_changes_the_steps(name):
    parameter = nn.Parameter(torch.zeros(2))
    assert OPTIMIZERS[name]([parameter], 0.1, 0.0, 0.95).param_groups[0]["betas"] == (0.9, 0.95)
    pytorch_default = torch.optim.Adam([parameter]).defaults["betas"][1]
    assert TrainConfig().beta2 == Settings().beta2 == pytorch_default
    data = _separable(64)
    weights = []
    for beta2 in (0.999, 0.9):
        torch.manual_seed(0)
        module = nn.Linear(2, 2)
        fit(module, lambda epoch: data, TrainConfig(epochs=2, batch_size=16, lr=0.05, optimizer=name, beta2=beta2))
        weights.append(module.weight.detach().clone())
    assert not torch.allclose(weights[0], weights[1])


def test_sgd_ignores_beta2():
    parameter = nn.Parameter(torch.zeros(2))
    optimizer = OPTIMIZERS["sgd"]([parameter], 0.1, 0.0, 0.9)
    assert optimizer.param_groups[0]["momentum"] == 0.9 and "betas" not in optimizer.param_groups[0]


# ── what the run records for its diagnostics ────────────────────────────────────────────────────────────────────


def test_the_gradient_norms_of_each_epoch_are_torchs_own_on_its_last_batch():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    reference = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    reference.load_state_dict(module.state_dict())
    data = _separable(32)
    # One batch per epoch and a learning rate of 0: the last batch is the whole set, the weights never move.
    (result,) = fit(module, lambda epoch: data, TrainConfig(epochs=1, batch_size=32, lr=0.0, optimizer="sgd")).history
    x, y = data.tensors
    nn.functional.cross_entropy(reference(x), y).backward()
    expected = {
        layer: torch.cat(
            [reference.get_submodule(layer).weight.grad.flatten(), reference.get_submodule(layer).bias.grad]
        )
        .norm()
        .item()
        for layer in ("0", "2")
    }
    assert list(result.grad_norms) == ["0", "2"]
    for layer, norm in expected.items():
        assert result.grad_norms[layer] == pytest.approx(norm, rel=1e-5)
    assert result.first_loss == pytest.approx(nn.functional.cross_entropy(reference(x), y).item(), rel=1e-6)
    assert result.peak_loss == result.first_loss  # one batch


def test_frozen_layers_have_no_gradient_norm():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    module[0].requires_grad_(False)
    (result,) = fit(module, lambda epoch: _separable(32), TrainConfig(epochs=1, batch_size=16)).history
    assert list(result.grad_norms) == ["2"]
