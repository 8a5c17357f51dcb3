"""Activation capture: the outputs and inputs of named layers for one input, in one forward pass.

Every capture holds ``model.lock`` and registers its hooks through :class:`~cnn_explorer.hooks.ForwardHooks`: they
ignore calls from other threads, so a prediction running beside a capture is never recorded into it, and are removed
on exit, leaving the module as it was found. Values are copied the moment a layer produces them, before any later
in-place op. :func:`_hooked` (hooks keyed by layer name) also serves the layer table and the effective receptive
field; captures run their forward pass through :data:`_run` (the effective field imports it too), so a test can
count the passes by patching ``_run`` where each of them looks it up.

Stepping through layers costs no forward pass: capture once per (model, image) with :func:`capture_layers`, then
pass both dicts to :func:`~cnn_explorer.layers.arithmetic.explain_unit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from cnn_explorer.hooks import ForwardHooks, StopForward, run_until_stopped
from cnn_explorer.layers.names import _NAMES_IN_MESSAGES, UnknownLayer, _layer_key, _leaf_paths, _resolve, _split_key
from cnn_explorer.model import LoadedModel

__all__ = ["capture_activations", "capture_inputs", "capture_layers"]


def _first_tensor(value: Any) -> Tensor | None:
    """A module's output or input as one tensor: itself, or the first tensor of a tuple/list."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        return next((v for v in value if isinstance(v, Tensor)), None)
    return None


_LayerHook = Callable[[str, nn.Module, Tensor | None], None]


@contextmanager
def _hooked(
    root: nn.Module, paths: Iterable[str], *, before: _LayerHook | None = None, after: _LayerHook | None = None
) -> Iterator[None]:
    """Call ``before(key, module, input)`` and ``after(key, module, output)`` around each call of the modules at
    ``paths`` in this thread (``key`` is the layer name with its call mark); every hook is removed on exit, also when
    the forward pass raised."""
    calls: dict[str, int] = {}

    def hook_pair(path: str) -> tuple[Callable[..., None], Callable[..., None]]:
        def pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            calls[path] = calls.get(path, 0) + 1
            if before is not None:
                before(_layer_key(path, calls[path]), module, _first_tensor(args))

        def post_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if after is not None:
                after(_layer_key(path, calls[path]), module, _first_tensor(output))

        return pre_hook, post_hook

    with ForwardHooks() as hooks:
        for path in dict.fromkeys(paths):
            module = root.get_submodule(path)
            pre_hook, post_hook = hook_pair(path)
            hooks.before(module, pre_hook)
            hooks.after(module, post_hook)
        yield


_run = run_until_stopped  # a name of this module, so that a test can count the forward passes it runs


def _snapshot(t: Tensor) -> Tensor:
    # Cloned at the moment the layer produced it: later in-place ops (ResNet's `out += identity`, in-place
    # ReLUs) write into the original tensor, never into the copy.
    return t.detach().clone()


def _capture(
    model: LoadedModel, x: Tensor, layers: Sequence[str] | None, *, outputs: bool, inputs: bool, stop_early: bool
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """One forward pass recording the wanted layers' outputs and/or inputs, in execution order.

    With ``stop_early`` the pass ends as soon as everything wanted is recorded (the rest of the network is not
    needed).
    """
    root = model.module
    if layers is None:
        wanted: set[str] | None = None
        paths = _leaf_paths(root)
    else:
        resolved = [_resolve(root, name) for name in layers]
        wanted = {_layer_key(path, call) for path, call, _ in resolved}
        paths = [path for path, _, _ in resolved]
    captured_outputs: dict[str, Tensor] = {}
    captured_inputs: dict[str, Tensor] = {}
    last_recorded = captured_outputs if outputs else captured_inputs  # outputs come after inputs
    seen: list[str] = []

    def done() -> bool:
        return stop_early and wanted is not None and wanted <= last_recorded.keys()

    def before(key: str, module: nn.Module, value: Tensor | None) -> None:
        seen.append(key)
        if inputs and value is not None and (wanted is None or key in wanted):
            captured_inputs[key] = _snapshot(value)
            if done():
                raise StopForward

    def after(key: str, module: nn.Module, value: Tensor | None) -> None:
        if outputs and value is not None and (wanted is None or key in wanted):
            captured_outputs[key] = _snapshot(value)
            if done():
                raise StopForward

    with model.lock, torch.no_grad(), _hooked(root, paths, before=before, after=after):
        _run(root, x)
    if wanted is not None:
        missing = [name for name in layers or () if _layer_key(*_split_key(name)) not in seen]
        if missing:
            raise UnknownLayer(
                f"Layer(s) {', '.join(map(repr, missing))} did not run for this input. Calls of these modules that "
                f"ran: {', '.join(seen[:_NAMES_IN_MESSAGES])}{' …' if len(seen) > _NAMES_IN_MESSAGES else ''}."
            )
    return captured_outputs, captured_inputs


def capture_activations(model: LoadedModel, x: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The output of each named layer for input ``x``: detached copies taken the moment each layer produced them.

    Args:
        model: The model; its lock is held during the forward pass.
        x: Input batch ``[N, C, H, W]``.
        layers: Layer names as :func:`list_layers` gives them (``"conv1"``, ``"layer1.0.relu#2"`` for a second
            call); any submodule's dotted path works too (``"layer1.0"``: the block's output). None: every layer.

    Returns:
        Layer name → output ``[N, …]``, in execution order. With ``layers=None`` the keys are exactly the names of
        :func:`list_layers`.

    Raises:
        UnknownLayer: A name that is no submodule (the message names the valid layers), or a call that did not run.
    """
    outputs, _ = _capture(model, x, layers, outputs=True, inputs=False, stop_early=False)
    return outputs


def capture_layers(
    model: LoadedModel, x: Tensor, layers: Sequence[str] | None = None
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Outputs and inputs of the named layers in one forward pass: what the layer page caches per (model, image).

    Returns:
        ``(outputs, inputs)``, each as :func:`capture_activations` and :func:`capture_inputs` would return them.
    """
    return _capture(model, x, layers, outputs=True, inputs=True, stop_early=False)


def capture_inputs(model: LoadedModel, x: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The input of each named layer for input ``x``, copied as the layer received it (before an in-place op).

    A layer's input is not always the previous layer's output: a ResNet shortcut reads the block's input, a
    residual sum or ``torch.flatten`` happens outside any layer. :func:`explain_unit` reads its patches from here.
    Arguments, return value and errors as :func:`capture_activations`.
    """
    _, inputs = _capture(model, x, layers, outputs=False, inputs=True, stop_early=False)
    return inputs
