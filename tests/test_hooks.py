"""Forward hooks written once (cnn_explorer.hooks): this thread's passes only, removed on exit, early stop."""

import threading

import pytest
import torch
from torch import nn

from cnn_explorer import load_model
from cnn_explorer.attribution import explain, gradcam_steps
from cnn_explorer.hooks import ForwardHooks, StopForward, run_until_stopped
from cnn_explorer.images import load_sample, samples_for


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _hook_count(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def test_hooks_see_this_threads_passes_with_inputs_and_outputs() -> None:
    net, x = _net(), torch.randn(2, 3)
    seen = []
    with ForwardHooks() as hooks:
        hooks.before(net[1], lambda m, inputs: seen.append(("before", m, inputs[0].clone())))
        hooks.after(net[1], lambda m, inputs, output: seen.append(("after", m, output.clone())))
        net(x)
    hidden = net[0](x)
    assert [(kind, m) for kind, m, _ in seen] == [("before", net[1]), ("after", net[1])]
    assert torch.equal(seen[0][2], hidden) and torch.equal(seen[1][2], torch.relu(hidden))


def test_another_threads_pass_is_ignored() -> None:
    net, x = _net(), torch.randn(1, 3)
    seen: list[int] = []
    with ForwardHooks() as hooks:
        hooks.before(net, lambda m, inputs: seen.append(threading.get_ident()))
        hooks.after(net[2], lambda m, inputs, output: seen.append(threading.get_ident()))
        other = threading.Thread(target=net, args=(x,))
        other.start()
        other.join()
        net(x)
    assert seen == [threading.get_ident()] * 2


def test_every_hook_is_removed_also_when_the_pass_raises() -> None:
    net = _net()

    def fail(m: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), ForwardHooks() as hooks:
        hooks.before(net[0], lambda m, inputs: None)
        hooks.after(net[2], fail)
        assert _hook_count(net) == 2
        net(torch.randn(1, 3))
    assert _hook_count(net) == 0


def test_stop_forward_ends_the_pass_after_the_layer() -> None:
    net, ran = _net(), []
    with ForwardHooks() as hooks:
        hooks.after(net[0], lambda m, inputs, output: (ran.append("first"), _raise(StopForward())))
        hooks.after(net[2], lambda m, inputs, output: ran.append("last"))
        run_until_stopped(net, torch.randn(1, 3))
    assert ran == ["first"]


def _raise(error: Exception) -> None:
    raise error


def test_an_explanation_ignores_a_prediction_from_another_thread() -> None:
    """A prediction in another thread through the shared module, during an explanation, is neither counted in its
    progress nor polled for its cancel (before hooks were written once, the root hook ran for every thread)."""
    model = load_model("tinyvgg-shapes")
    x = model.preprocess(load_sample(samples_for("tinyvgg-shapes", made_for_it=True)[0]))
    callers: list[int] = []

    def progress(fraction: float) -> None:
        callers.append(threading.get_ident())
        if len(callers) == 1:  # the first forward pass is under way: another session predicts meanwhile
            other = threading.Thread(target=lambda: model.module(x))
            other.start()
            other.join()

    explain(model, x, method="integrated_gradients", steps=8, progress=progress)
    assert callers and set(callers) == {threading.get_ident()}


def test_gradcam_steps_leaves_no_hook_behind() -> None:
    model = load_model("tinyvgg-shapes")
    x = model.preprocess(load_sample(samples_for("tinyvgg-shapes", made_for_it=True)[0]))
    before = _hook_count(model.module)
    gradcam_steps(model, x)
    assert _hook_count(model.module) == before
