"""What an explanation, a trust check or an attack must leave unchanged on a shared model, and the check of it."""

import torch
from torch import nn


def snapshot(module: nn.Module) -> dict:
    """Weights (bit for bit), train/eval modes, in-place flags, hooks, stored gradients and requires_grad flags."""
    return {
        "weights": {k: v.clone() for k, v in module.state_dict().items()},
        "training": [m.training for m in module.modules()],
        "inplace": [getattr(m, "inplace", None) for m in module.modules()],
        "hooks": [
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
            for m in module.modules()
        ],
        "grads": [p.grad is None for p in module.parameters()],
        "requires_grad": [p.requires_grad for p in module.parameters()],
    }


def assert_unchanged(before: dict, after: dict) -> None:
    """``after`` equals ``before`` and no hook is left anywhere."""
    assert {k: v for k, v in before.items() if k != "weights"} == {k: v for k, v in after.items() if k != "weights"}
    assert not any(after["hooks"])
    assert before["weights"].keys() == after["weights"].keys()
    for key, value in before["weights"].items():
        assert torch.equal(value, after["weights"][key]), key
