"""Keep the garbage collector's full passes short in a long-lived server process.

With torch, Streamlit, Matplotlib and pandas imported, a full collection walks about 300,000 objects: 130 ms on this
machine, holding the GIL. Streamlit forces one after every script run (``runner.postScriptGC``, turned off in
``.streamlit/config.toml``: even the message telling the browser that the run had ended waited for it), and Python
runs one whenever enough objects have survived since the last. Nearly all of those objects are modules, classes and
functions that live as long as the process. :func:`freeze_imports` moves them into the collector's permanent
generation (:func:`gc.freeze`), which collections skip: a full pass then takes about 8 ms, so Python's own
collector runs its full passes often and cheaply, and memory held in reference cycles (a Matplotlib figure, a
session's widgets) is still given back.
"""

from __future__ import annotations

import gc
import sys

__all__ = ["freeze_imports"]

_frozen_modules = [0]  # len(sys.modules) at the last freeze


def freeze_imports() -> bool:
    """Collect, then freeze every object alive, if modules were imported since the last call; True if it froze.

    Call it at the end of a script run. What is alive after the collection is what the process keeps: the modules a
    page imported on first use, the models and pictures in the caches. Frozen objects are never collected as cycles,
    so it freezes only when the set of modules grew: a few times per process, each on a run that imported modules
    and was slow already (the collection before it takes the 130 ms the frozen ones then save on every run).
    """
    if len(sys.modules) == _frozen_modules[0]:
        return False
    gc.collect()
    gc.freeze()
    gc.collect()  # cheap now: resets the collector's count of long-lived objects to those left unfrozen
    _frozen_modules[0] = len(sys.modules)
    return True
