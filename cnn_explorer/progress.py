"""How a long computation reports progress and is cancelled: the callback types every module takes, once.

Four kinds of progress, named for what they carry:

- :data:`Progress`: the fraction done, 0 … 1 (explanations, trust checks, attacks, feature visualization);
- :data:`Status`: the fraction done and, in words, what is being computed (the report);
- :data:`ByteProgress`: bytes done and bytes in all, or None when the server did not say (downloads);
- :data:`ItemProgress`: items done and items in all (a run's images read into memory).

A computation that can be cancelled polls a :data:`StopFn` and raises :class:`Cancelled` when it returns True
(:func:`stop_if`); :func:`ticker` does both at each step of a computation with a known number of steps.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ByteProgress", "Cancelled", "ItemProgress", "Progress", "Status", "StopFn", "stop_if", "ticker"]

Progress = Callable[[float], None]  # fraction done, 0 … 1
Status = Callable[[float, str], None]  # (fraction done 0 … 1, what is being computed)
ByteProgress = Callable[[int, int | None], None]  # (bytes done, bytes in all or None)
ItemProgress = Callable[[int, int], None]  # (items done, items in all)
StopFn = Callable[[], bool]  # polled; True asks the computation to stop


class Cancelled(Exception):
    """The caller's ``should_stop`` asked the computation to stop; the model is left as it was."""


def stop_if(should_stop: StopFn | None, message: str) -> None:
    """Raise :class:`Cancelled` with ``message`` when ``should_stop`` asks for it."""
    if should_stop is not None and should_stop():
        raise Cancelled(message)


def ticker(total: int, progress: Progress | None, should_stop: StopFn | None, cancelled: str) -> Callable[[], None]:
    """``tick()``, called before each of ``total`` steps: honours cancellation (:class:`Cancelled` with the message
    ``cancelled``), then reports the fraction of steps done so far."""
    done = 0

    def tick() -> None:
        nonlocal done
        stop_if(should_stop, cancelled)
        if progress is not None:
            progress(min(done / max(total, 1), 1.0))
        done += 1

    return tick
