"""Running a method: :func:`explain` and :func:`explain_batch`, and how they leave the shared model as found.

They validate the method, its parameters, the input, the targets and the layer, then call the method's function
from :mod:`~cnn_explorer.attribution.methods` under ``model.lock`` with the model prepared once for every method:

- in-place ReLUs are switched to out-of-place for the duration when the method hooks modules (otherwise a CAM
  layer's stored activation is rewritten by the ReLU after it, and captum's guided backprop fails on a leaf modified
  in place);
- a method that only runs the model forward runs on a fused, channels-last inference copy;
- progress and cancellation are read at every forward pass (a pre-hook on the root);
- every hook is removed and every flag restored in ``finally``, because one loaded model is shared by every browser
  session.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.fx.experimental.optimization import fuse

from cnn_explorer.attribution.methods import _COMPUTE, _TORCHCAM, _occlusion_geometry
from cnn_explorer.attribution.registry import METHODS, Explanation, MethodSpec
from cnn_explorer.attribution.targets import _cam_layer_info, _check_layer, default_cam_layer, resolve_target
from cnn_explorer.hooks import ForwardHooks
from cnn_explorer.layers import inplace_disabled
from cnn_explorer.model import LoadedModel
from cnn_explorer.progress import Progress, StopFn, stop_if

__all__ = [
    "explain",
    "explain_batch",
]


def explain(
    model: LoadedModel,
    x: Tensor,
    method: str,
    *,
    target: int | str | None = None,
    layer: str | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
    **params: Any,
) -> Explanation:
    """Explain the model's output for one input.

    Args:
        model: The model; its module is left exactly as found (no hooks, flags and mode restored).
        x: One preprocessed input ``[1, C, H, W]``.
        method: A key of ``METHODS``.
        target: Class index or name; None explains the predicted class.
        layer: Convolutional layer for the CAM methods; None means the last one.
        seed: Seeds the random noise of SmoothGrad (every other method is deterministic).
        progress: Called with the fraction done as forward passes complete.
        should_stop: Polled before every forward pass; when it returns True, :class:`Cancelled` is raised.
        **params: The method's parameters (see ``METHODS[method].params``); missing ones take their defaults.

    Raises:
        ValueError: Unknown method, target, layer or parameter, or ``x`` not one input.
        Cancelled: ``should_stop`` returned True.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"explain takes one input [1, C, H, W]; got shape {tuple(x.shape)}. Use explain_batch.")
    targets = None if target is None else [target]
    return explain_batch(
        model, x, method, targets=targets, layer=layer, seed=seed, progress=progress, should_stop=should_stop, **params
    )[0]


def explain_batch(
    model: LoadedModel,
    x: Tensor,
    method: str,
    *,
    targets: Sequence[int | str] | None = None,
    layer: str | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
    **params: Any,
) -> list[Explanation]:
    """Explain each input of a batch ``[N, C, H, W]``: the same maps as :func:`explain` on each input alone.

    ``targets`` gives one class per input (None: each input's predicted class); the other arguments are those of
    :func:`explain`.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}. Methods: {', '.join(METHODS)}.")
    spec = METHODS[method]
    values = spec.checked(params)
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(model.input_size):
        raise ValueError(
            f"{model.name} takes inputs [N, {', '.join(map(str, model.input_size))}]; got shape {tuple(x.shape)}."
        )
    if targets is not None and len(targets) != x.shape[0]:
        raise ValueError(f"Got {len(targets)} targets for {x.shape[0]} inputs: give one per input.")
    if spec.uses_layer:
        layer = layer or default_cam_layer(model)
        _check_layer(model, layer)
    else:
        layer = None

    x = x.detach().to(torch.float32)
    started = time.perf_counter()

    def run(out_of_place: bool) -> tuple[list[int], Tensor]:
        with model.lock, _prepared(model.module, out_of_place, quiet=method not in _TORCHCAM):
            if targets is None:
                with torch.no_grad():
                    chosen = model.module(x).argmax(dim=1).tolist()
            else:
                chosen = [resolve_target(model, t) for t in targets]
            module = _inference_copy(model.module) if spec.forward_only else model.module
            counting = (
                _counting(module, _expected_rows(spec, values, model, x, layer), progress, should_stop)
                if progress is not None or should_stop is not None
                else contextlib.nullcontext()  # a hook on the root slows every forward pass a little: only when asked
            )
            # also under a caller's no_grad (captum's sensitivity_max): CAMs backpropagate
            with counting, torch.enable_grad():
                return chosen, _COMPUTE[method](module, x, chosen, layer, values, seed)

    try:
        chosen, attributions = run(out_of_place=spec.hooks)
    except RuntimeError as err:
        # torchvision's in-place ReLUs are safe for gradients (they train that way); a model that applies one twice
        # to the same tensor is not: autograd refuses, and the method runs again with the flags off.
        if spec.hooks or "modified by an inplace operation" not in str(err):
            raise
        chosen, attributions = run(out_of_place=True)
    seconds = time.perf_counter() - started
    size = (int(x.shape[-2]), int(x.shape[-1]))
    return [
        Explanation(
            method=method,
            target=t,
            target_name=model.class_names[t],
            layer=layer,
            params=dict(values),
            attribution=attribution,
            input_size=size,
            seconds=seconds,
        )
        for t, attribution in zip(chosen, attributions, strict=True)
    ]


@contextmanager
def _prepared(module: nn.Module, out_of_place: bool = True, quiet: bool = True) -> Iterator[None]:
    """Eval mode and (``out_of_place``) out-of-place ReLUs for the duration; modes restored after. With ``quiet``,
    captum's warnings about reused ReLU modules, hooks and inputs that did not require gradients (expected, and
    handled) are silenced. Each part costs only when there is something to do: on a sub-millisecond explanation the
    bookkeeping would otherwise be a tenth of the time."""
    modules, inplace_capable = _structure(module)
    modes = [(m, m.training) for m in modules]
    switched = [m for m in inplace_capable if m.inplace is True] if out_of_place else []
    try:
        # A loaded model is in eval mode already; setting a flag goes through Module.__setattr__, so only flags that
        # change are set (here and below).
        if any(training for _, training in modes):
            module.eval()
        with (
            inplace_disabled(module, switched) if switched else contextlib.nullcontext(),
            warnings.catch_warnings() if quiet else contextlib.nullcontext(),
        ):
            if quiet:
                warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        for m, training in modes:
            if m.training != training:
                m.training = training


def _inference_copy(module: nn.Module) -> nn.Module:
    """The same function as ``module`` (in eval mode), faster to run forward many times: a copy with each
    BatchNorm folded into the conv before it (torch.fx's ``fuse``) and the conv weights channels-last, the layout
    oneDNN convolves fastest on a CPU. The outputs differ from the module's by float rounding only (about 1e-6 of
    the logits). Occlusion's windows on a ResNet-18 run about 1.5× faster; the copy costs 60 ms to make.

    A model fx cannot trace (data-dependent control flow, a TorchScript archive) keeps its BatchNorms, and one
    that cannot even be copied runs as it is: the shared module itself is never changed.
    """
    try:
        fast = fuse(module)
    except Exception:  # symbolic tracing fails with one of several errors on code it cannot follow
        try:
            fast = copy.deepcopy(module)
        except Exception:  # e.g. a module holding an open resource
            return module
    return fast.requires_grad_(False).to(memory_format=torch.channels_last)


_STRUCTURE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[nn.Module, ...], tuple[nn.Module, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _structure(module: nn.Module) -> tuple[tuple[nn.Module, ...], tuple[nn.Module, ...]]:
    """``module.modules()`` and those of them with an ``inplace`` flag, found once per module: a loaded model's
    structure does not change, and walking it costs a tenth of a cheap explanation on a small model."""
    if (found := _STRUCTURE.get(module)) is None:
        modules = tuple(module.modules())
        found = _STRUCTURE[module] = (modules, tuple(m for m in modules if hasattr(m, "inplace")))
    return found


@contextmanager
def _counting(
    module: nn.Module, expected_rows: int, progress: Progress | None, should_stop: StopFn | None
) -> Iterator[None]:
    """Report progress and honour cancellation at every forward pass of the model (a pre-hook on the root)."""
    done = 0

    def before_forward(_module: nn.Module, inputs: tuple[Any, ...]) -> None:
        nonlocal done
        stop_if(should_stop, "The explanation was cancelled.")
        if progress is not None:
            progress(min(done / max(expected_rows, 1), 1.0))
        done += inputs[0].shape[0] if inputs and isinstance(inputs[0], Tensor) else 1

    with ForwardHooks() as hooks:
        hooks.before(module, before_forward)
        yield
    if progress is not None:
        progress(1.0)


def _expected_rows(spec: MethodSpec, values: dict, model: LoadedModel, x: Tensor, layer: str | None) -> int:
    """Forward rows the method will run, for the progress fraction."""
    n = x.shape[0]
    if spec.key == "integrated_gradients":
        return n * values["steps"]
    if spec.key == "smoothgrad":
        return n * values["samples"]
    if spec.key == "occlusion":  # captum's pass on the unoccluded input, then one per window
        window, stride = _occlusion_geometry(x, values)
        windows = math.prod((side - w) // s + 1 for side, w, s in zip(x.shape[-2:], window, stride, strict=True))
        return n * (1 + windows)
    if spec.key == "scorecam":  # TorchCAM's pass that records the layer, one per channel, then the scores
        return n * (1 + _cam_layer_info(model)[layer].channels)
    return n
