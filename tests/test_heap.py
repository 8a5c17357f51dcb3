"""heap.freeze_imports: the collector's full passes skip what the process keeps, and still collect what a run drops."""

import gc
import sys
import types
import weakref

import pytest

from cnn_explorer import heap


@pytest.fixture
def unfrozen(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(heap, "_frozen_modules", [0])
    yield
    gc.unfreeze()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_it_freezes_when_modules_were_imported_and_not_again_until_more_are(
    unfrozen, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = _Cycle()  # alive at the freeze: moved to the permanent generation
    assert heap.freeze_imports() is True
    assert gc.get_freeze_count() > 0 and not any(obj is kept for obj in gc.get_objects())
    assert heap.freeze_imports() is False, "no module imported since"

    monkeypatch.setitem(sys.modules, "cnn_explorer_heap_test_module", types.ModuleType("cnn_explorer_heap_test_module"))
    assert heap.freeze_imports() is True


def test_a_cycle_dropped_after_the_freeze_is_still_collected(unfrozen) -> None:
    heap.freeze_imports()
    dropped = _Cycle()
    alive = weakref.ref(dropped)
    del dropped
    assert alive() is not None, "a cycle outlives its last name until the collector finds it"
    gc.collect()
    assert alive() is None
