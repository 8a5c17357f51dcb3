"""Diagnostics of a training run: each kind from hand-made records with its exact sentence, and none for a healthy
run trained by the real loop."""

import math
from dataclasses import asdict

import torch
from torch import nn
from torch.utils.data import TensorDataset

from cnn_explorer.diagnostics import Diagnostic, diagnose, summary
from cnn_explorer.training import TrainConfig, fit


def _epoch(epoch: int, train_loss: float, val_accuracy: float, **extra) -> dict:
    return {"epoch": epoch, "train_loss": train_loss, "val_loss": train_loss, "val_accuracy": val_accuracy, **extra}


def test_a_loss_that_explodes_while_finite_names_the_learning_rate_and_what_to_try():
    metrics = [_epoch(1, 4.5e16, 0.1, first_loss=2.3, peak_loss=1.9e17), _epoch(2, 2.3e4, 0.1)]
    found = diagnose(metrics, classes=10, lr=1e4, optimizer="sgd")
    assert found[0] == Diagnostic(
        "loss_exploded",
        "error",
        "The loss grew from 2.3 to 1.9e17 in epoch 1: the learning rate 1e4 is far too high for SGD.",
        "Try 0.01 or lower.",
    )
    assert summary(found).startswith("The loss grew from 2.3 to 1.9e17 in epoch 1: the learning rate 1e4 is far")
    # Adam's usual rate is lower; a rate a little too high gets a tenth of itself.
    (adam,) = [d for d in diagnose(metrics, classes=10, lr=0.1, optimizer="adam") if d.kind == "loss_exploded"]
    assert adam.advice == "Try 0.001 or lower."
    (small,) = [d for d in diagnose(metrics, classes=10, lr=1e-3, optimizer="adam") if d.kind == "loss_exploded"]
    assert small.advice == "Try 0.0001 or lower."


def test_a_loss_that_only_falls_has_not_exploded():
    metrics = [_epoch(1, 1.2, 0.6, first_loss=2.3, peak_loss=2.3), _epoch(2, 0.8, 0.7, first_loss=1.0, peak_loss=1.1)]
    assert diagnose(metrics, classes=10, lr=1e-3, optimizer="adam") == ()


def test_accuracy_within_noise_of_chance_after_two_epochs_is_stuck():
    # 10 classes, 400 validation images: chance 10 %, three standard errors 4.5 %.
    noise = 3 * math.sqrt(0.1 * 0.9 / 400)
    metrics = [_epoch(1, 2.30, 0.08), _epoch(2, 2.30, 0.1 + noise - 0.001)]
    (stuck,) = diagnose(metrics, classes=10, lr=1e-3, optimizer="adam", val_images=400)
    assert stuck.kind == "stuck_at_chance" and stuck.severity == "warning"  # it may still learn: train longer
    assert stuck.sentence == (
        "Validation accuracy stayed at chance: at best 14.4% in 2 epochs, where guessing among 10 classes gets "
        "10.0% (± 4.5% on 400 images). The model learnt nothing."
    )
    assert "raise it or train longer" in stuck.advice
    above = [_epoch(1, 2.30, 0.08), _epoch(2, 2.30, 0.1 + noise + 0.001)]
    assert diagnose(above, classes=10, lr=1e-3, optimizer="adam", val_images=400) == ()
    one_epoch = metrics[:1]  # a slow start is not yet stuck
    assert diagnose(one_epoch, classes=10, lr=1e-3, optimizer="adam", val_images=400) == ()


def test_gradients_exploding_vanishing_and_cut_off():
    huge = [_epoch(1, 1.0, 0.9, grad_norms={"conv1": 5.0, "fc": 2.5e3})]
    (exploding,) = diagnose(huge, classes=2, lr=1e-3, optimizer="adam")
    assert exploding.kind == "exploding_gradients"
    assert exploding.sentence.startswith("The gradients exploded: layer fc's gradient norm reached 2.5e3 in epoch 1")
    faint = [_epoch(1, 1.0, 0.9, grad_norms={"conv1": 2e-6, "fc": 0.5})]
    (vanishing,) = diagnose(faint, classes=2, lr=1e-3, optimizer="adam")
    assert vanishing.kind == "vanishing_gradients"
    assert "layer conv1's gradient norm was 2e-6, 4e-6 of the largest layer's (0.5)" in vanishing.sentence
    cut = [_epoch(1, 1.0, 0.9, grad_norms={"conv1": 0.0, "fc": 0.5})]
    (cut_off,) = diagnose(cut, classes=2, lr=1e-3, optimizer="adam")
    assert cut_off.sentence.startswith("No gradient reached layer conv1 in epoch 1")
    healthy = [_epoch(1, 1.0, 0.9, grad_norms={"conv1": 0.02, "fc": 3.0})]
    assert diagnose(healthy, classes=2, lr=1e-3, optimizer="adam") == ()


def test_dead_relus_from_the_counts_measured_at_the_end():
    (dead,) = diagnose(
        [_epoch(1, 1.0, 0.9)], classes=2, lr=1e-3, optimizer="adam", dead_relus={"a": [3, 4], "b": [1, 12]}
    )
    assert dead.kind == "dead_relus"
    assert dead.sentence.startswith("25% of the ReLU units never fire on the validation images (4 of 16; a: 3 of 4).")
    assert diagnose([_epoch(1, 1.0, 0.9)], classes=2, lr=1e-3, optimizer="adam", dead_relus={"a": [1, 4]}) == ()


def test_overfitting_is_one_of_the_diagnostics():
    metrics = [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 0.50, "val_accuracy": 0.8},
        {"epoch": 2, "train_loss": 0.8, "val_loss": 0.55, "val_accuracy": 0.8},
        {"epoch": 3, "train_loss": 0.6, "val_loss": 0.60, "val_accuracy": 0.8},
    ]
    (overfitting,) = diagnose(metrics, classes=2, lr=1e-3, optimizer="adam", val_images=1000)
    assert (overfitting.kind, overfitting.severity) == ("overfitting", "info")
    assert overfitting.advice == "More data or augmentation, dropout, weight decay or early stopping help."


def test_a_healthy_run_of_the_real_loop_has_no_diagnostics():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 2, generator=g)
    data = TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long())
    module = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    history = fit(module, lambda epoch: data, TrainConfig(epochs=4, batch_size=32, lr=0.01), data).history
    metrics = [asdict(r) for r in history]
    assert history[-1].val_accuracy > 0.9
    assert diagnose(metrics, classes=2, lr=0.01, optimizer="adam", val_images=512, dead_relus={"1": [0, 16]}) == ()
