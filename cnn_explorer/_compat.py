"""The torchvision import guard.

Some installs pair a CPU build of torch with a torchvision wheel whose compiled ops (``torchvision::nms`` …) were
built for another torch and cannot load. torchvision then fails at import: its ``_meta_registrations`` registers
fake kernels for ``nms`` and ``qnms`` unconditionally, and those operators do not exist. Everything we use from
torchvision (models, transforms, datasets) is pure Python, so declaring the two missing schemas is enough.

The guard tries to load torchvision's extension exactly as torchvision would. If it loads (a normal install), the
operators exist and nothing is declared. Only the operators still missing afterwards are declared.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import torch

__all__ = ["declared_ops", "ensure_torchvision_importable"]

# The operators torchvision touches at import time even when its extension did not load, with the schemas its
# C++ code declares (torchvision/csrc/ops/nms.cpp).
_IMPORT_TIME_OPS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

_declared_library: torch.library.Library | None = None  # kept alive: dropping it would undefine the schemas
_declared: list[str] = []


def _op_exists(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def _load_extension() -> bool:
    """Load torchvision's ``_C`` library the way ``torchvision.extension`` does; False when it cannot load."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = Path(next(iter(spec.submodule_search_locations)))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"_C{suffix}"
        if path.exists():
            try:
                torch.ops.load_library(str(path))
            except (ImportError, OSError):
                return False
            return True
    return False


def ensure_torchvision_importable() -> list[str]:
    """Make ``import torchvision`` work, declaring only the operator schemas that are missing.

    Returns:
        The operator names declared (empty on a normal install, or when torchvision is already imported).
    """
    global _declared_library
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return []
    _load_extension()
    missing = [name for name in _IMPORT_TIME_OPS if not _op_exists(name)]
    if not missing:
        return []
    if _declared_library is None:
        _declared_library = torch.library.Library("torchvision", "FRAGMENT")
    for name in missing:
        _declared_library.define(_IMPORT_TIME_OPS[name])
    _declared.extend(missing)
    return missing


def declared_ops() -> tuple[str, ...]:
    """Every operator the guard has declared in this process (empty on a normal install)."""
    return tuple(_declared)
