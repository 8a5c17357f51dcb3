"""Forward hooks on a shared model, written once: registering, ignoring other threads, removing, stopping early.

A loaded model is shared by every browser session (``st.cache_resource``), so while one computation has hooks on
it another thread may run a prediction through the same modules. :class:`ForwardHooks` wraps every hook so that it
runs only for forward passes of the thread that registered it, and removes all of its hooks on exit, also when the
forward pass raised (TorchCAM's ``__exit__`` pattern). A hook that has seen what it needs raises
:class:`StopForward`, and :func:`run_until_stopped` ends the forward pass there: the rest of the network is not
needed. Callers hold ``model.lock`` while hooks are on a shared module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

__all__ = ["ForwardHooks", "StopForward", "run_until_stopped"]

BeforeHook = Callable[[nn.Module, tuple[Any, ...]], None]  # (module, positional inputs), as torch's pre-hook
AfterHook = Callable[[nn.Module, tuple[Any, ...], Any], None]  # (module, inputs, output), as torch's hook


class StopForward(Exception):
    """Raised from a hook to end a forward pass once what it needs has run (see :func:`run_until_stopped`)."""


def run_until_stopped(module: nn.Module, x: Tensor) -> None:
    """A forward pass of ``module`` on ``x`` that a hook may end early with :class:`StopForward`."""
    with suppress(StopForward):
        module(x)


class ForwardHooks:
    """Hooks registered through it run only in the thread that created it, and are all removed on exit.

    Example::

        with model.lock, ForwardHooks() as hooks:
            hooks.after(model.module.get_submodule("layer4"), keep)
            model.module(x)
    """

    def __init__(self) -> None:
        self._owner = threading.get_ident()
        self._handles: list[RemovableHandle] = []

    def _mine(self) -> bool:
        return threading.get_ident() == self._owner  # not another thread's pass through the shared module

    def before(self, module: nn.Module, hook: BeforeHook) -> None:
        """Call ``hook(module, inputs)`` before each of this thread's calls of ``module``."""

        def guarded(m: nn.Module, inputs: tuple[Any, ...]) -> None:
            if self._mine():
                hook(m, inputs)

        self._handles.append(module.register_forward_pre_hook(guarded))

    def after(self, module: nn.Module, hook: AfterHook) -> None:
        """Call ``hook(module, inputs, output)`` after each of this thread's calls of ``module``."""

        def guarded(m: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if self._mine():
                hook(m, inputs, output)

        self._handles.append(module.register_forward_hook(guarded))

    def remove(self) -> None:
        """Remove every hook registered so far."""
        try:
            for handle in self._handles:
                handle.remove()
        finally:
            self._handles.clear()

    def __enter__(self) -> ForwardHooks:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.remove()
