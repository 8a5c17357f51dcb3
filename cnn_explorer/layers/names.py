"""How layers are named and found: the names every function of :mod:`cnn_explorer.layers` takes.

Layers are the LEAF modules (modules without children) in the order they run. A module called more than once in
one forward pass (ResNet's ``BasicBlock`` calls its ``relu`` twice) is one layer per call: the first call is named
by its dotted path (``"layer1.0.relu"``), the k-th by the path and ``#k`` (``"layer1.0.relu#2"``). This module turns
names into modules (:class:`UnknownLayer` naming the valid layers otherwise), checks a unit's position in a layer's
output, and looks a module up in a registry keyed by layer class; the other modules of the package build on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

__all__ = ["UnknownLayer"]

_CALL_MARK = "#"


_NAMES_IN_MESSAGES = 20  # a ResNet has ~70 layers: name the first ones and count the rest


class UnknownLayer(KeyError):
    """A layer name that does not exist in the model or did not run for this input."""

    def __str__(self) -> str:  # KeyError's str() would quote the whole message
        return str(self.args[0]) if self.args else ""


def _layer_key(path: str, call: int) -> str:
    return path if call == 1 else f"{path}{_CALL_MARK}{call}"


def _split_key(name: str) -> tuple[str, int]:
    """``"layer1.0.relu#2"`` → ``("layer1.0.relu", 2)``; a name without a mark is the first call."""
    path, mark, call = name.rpartition(_CALL_MARK)
    if not mark:
        return name, 1
    if not call.isdigit() or int(call) < 1:
        raise UnknownLayer(f"Layer name {name!r}: after {_CALL_MARK!r} comes the call number (2, 3, …).")
    return path, int(call)


def _leaf_paths(root: nn.Module) -> list[str]:
    return [path for path, module in root.named_modules() if next(module.children(), None) is None]


def _resolve(root: nn.Module, name: str) -> tuple[str, int, nn.Module]:
    """Split a layer name and find its module; :class:`UnknownLayer` naming the valid layers otherwise."""
    path, call = _split_key(name)
    try:
        return path, call, root.get_submodule(path)
    except AttributeError:
        leaves = _leaf_paths(root)
        shown = ", ".join(leaves[:_NAMES_IN_MESSAGES])
        more = f" … and {len(leaves) - _NAMES_IN_MESSAGES} more" if len(leaves) > _NAMES_IN_MESSAGES else ""
        raise UnknownLayer(
            f"Unknown layer {name!r}. Layers of this model: {shown}{more} (a module's k-th call is 'path#k')."
        ) from None


def _by_type(registry: Mapping[type[nn.Module], Any], module: nn.Module) -> Any:
    """The registry entry for the module's class or its nearest registered base class, None when none."""
    return next((registry[cls] for cls in type(module).__mro__ if cls in registry), None)


def _check_index(layer: str, index: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    index = tuple(int(i) for i in index)
    if len(index) != len(shape) or not all(0 <= i < n for i, n in zip(index, shape, strict=True)):
        raise ValueError(f"Index {index} is not a position in {layer!r}'s output of shape {tuple(shape)}.")
    return index
