"""Names a package imports from its modules on first use (PEP 562), so that importing the package stays cheap.

``cnn_explorer.ui`` and ``cnn_explorer.render`` use it: a page loads only the view modules it calls, and the first
page imports no matplotlib figure.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_names(
    package: str, modules: Mapping[str, Iterable[str]], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for the names of ``modules`` (module name → its names).

    ``package.X`` imports ``X``'s module now if this is its first use and keeps ``X`` in ``namespace`` (the
    package's ``globals()``), so the next use is a plain attribute.
    """
    module_of = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *module_of})

    return __getattr__, __dir__
