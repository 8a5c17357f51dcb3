"""Long computations in the UI, written once: a result from the store shared by every session, or computed now
with a progress bar, its elapsed time and a Cancel button.

The Explain page (explanations, trust checks), the Playground (what a filter wants to see) and Fool the model
(attacks, the smallest flipping ε) all go through :func:`computed`; :func:`request_button` asks for results that
only run on a click.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from cnn_explorer.progress import Progress

_REQUESTED = "long_task_requested"  # session keys: results asked for by request_button, and cancelled ones
_CANCELLED = "long_task_cancelled"


class ResultStore:
    """Slow results shared by every session, keyed on what they depend on (kind, model, image digest, parameters).

    Not ``st.cache_data``: a slow computation shows its own progress bar and cancel button while it runs, and a
    cancelled one must store nothing. Bounded; thread-safe.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: tuple) -> Any:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
            return self._entries.get(key)

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


@st.cache_resource(show_spinner=False)
def results() -> ResultStore:
    """The one store of slow results, shared by every session."""
    return ResultStore()


def computed(
    key: tuple,
    label: str,
    compute: Callable[[Progress | None], Any],
    widget_key: str,
    *,
    on_request: bool = False,
    slow: bool = True,
    error_prefix: str = "",
) -> Any:
    """A slow result from the shared store, or computed now with a progress bar, its elapsed time and Cancel.

    With ``on_request`` the computation runs only after :func:`request_button` asked for ``key``, and Cancel
    withdraws the request; otherwise it starts at once, and once cancelled waits for a click on Compute. Cancel
    makes Streamlit stop the run at the next progress update (the library restores the model on the way out).
    Returns None while nothing is stored; a ``ValueError`` of the library is shown as an error.

    Args:
        key: What the result depends on (kind, model name, image digest, parameters).
        label: What is computed, for the progress bar.
        compute: Called with a progress callback (fraction done), or None when not ``slow``; returns the result to
            store.
        widget_key: Prefix of the buttons' keys.
        on_request: Wait for a request.
        slow: Show the progress bar and Cancel; a quick computation runs without them and cannot be cancelled.
        error_prefix: Put before the error's message (which computation failed, where several are shown).
    """
    store = results()
    if (found := store.get(key)) is not None:
        return found
    requested = st.session_state.setdefault(_REQUESTED, set())
    cancelled = st.session_state.setdefault(_CANCELLED, set())
    if on_request and key not in requested:
        return None
    if not on_request and slow and key in cancelled:
        st.info(f"{label} was cancelled.")
        st.button("Compute", key=f"{widget_key}_compute", on_click=cancelled.discard, args=(key,))
        return None
    slot = progress = None
    if slow:
        slot = st.empty()
        with slot.container():
            bar = st.progress(0.0, text=f"{label} …")
            withdraw = requested.discard if on_request else cancelled.add
            st.button("Cancel", key=f"{widget_key}_cancel", on_click=withdraw, args=(key,))
        started = time.perf_counter()

        def progress(fraction: float) -> None:
            bar.progress(
                min(max(fraction, 0.0), 1.0), text=f"{label}: {fraction:.0%} · {time.perf_counter() - started:.1f} s"
            )

    try:
        result = compute(progress)
    except ValueError as error:
        if slot is not None:
            slot.empty()
        requested.discard(key)
        st.error(f"{error_prefix}{error}")
        return None
    store.put(key, result)
    requested.discard(key)
    if slot is not None:
        slot.empty()
    return result


def request_button(label: str, keys: Sequence[tuple], widget_key: str, **kwargs) -> None:
    """A button that asks :func:`computed` (``on_request=True``) for the results under ``keys``; drawn only while
    one of them is neither stored nor already asked for."""
    requested = st.session_state.setdefault(_REQUESTED, set())
    store = results()
    if any(store.get(key) is None and key not in requested for key in keys):
        st.button(label, key=widget_key, on_click=requested.update, args=(list(keys),), **kwargs)
