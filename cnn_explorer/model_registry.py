"""The one registry every model source joins: built-in models, torchvision's ImageNet models, trained runs and the
user's own models each register a function that lists their entries (as timm's ``register_model``).

The registry names no source; :mod:`cnn_explorer.sources` imports them all, and :mod:`cnn_explorer.zoo`, the public
factory, reads the registry. A source that needs another model (a transfer run's base) loads it through
:func:`load` here, never through the zoo, so no source imports the zoo.
"""

from __future__ import annotations

from collections.abc import Callable

from cnn_explorer.model import LoadedModel, ModelEntry
from cnn_explorer.progress import ByteProgress

__all__ = ["EntriesFn", "entries", "entry", "load", "register_source"]

EntriesFn = Callable[[], dict[str, ModelEntry]]

_SOURCES: dict[str, tuple[int, EntriesFn]] = {}


def register_source(order: int) -> Callable[[EntriesFn], EntriesFn]:
    """Decorator: ``entries_fn`` lists one source's models; sources are offered by ascending ``order`` (built-in 10,
    ImageNet 20, trained runs 30, the user's models 40). Registering the same function again replaces it."""

    def register(entries_fn: EntriesFn) -> EntriesFn:
        _SOURCES[f"{entries_fn.__module__}.{entries_fn.__qualname__}"] = (order, entries_fn)
        return entries_fn

    return register


def entries() -> dict[str, ModelEntry]:
    """Every registered model by name, source by source in their order (each source is asked now: runs and the
    user's models come and go while the app runs)."""
    found: dict[str, ModelEntry] = {}
    for _, entries_fn in sorted(_SOURCES.values(), key=lambda source: source[0]):
        found.update(entries_fn())
    return found


def entry(name: str) -> ModelEntry:
    """The entry of ``name``; ``KeyError`` naming the known models otherwise."""
    registry = entries()
    if name not in registry:
        raise KeyError(f"Unknown model {name!r}. Known models: {', '.join(registry)}.")
    return registry[name]


def load(name: str, progress: ByteProgress | None = None) -> LoadedModel:
    """Load a registered model by name (see :func:`cnn_explorer.zoo.load_model`)."""
    return entry(name).load(progress)
