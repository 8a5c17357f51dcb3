"""How the app and a training run share the machine's cores.

While a run trains, its worker process and the app compute at the same time. Each used every core: on two cores
the app's two torch threads and the worker's then took turns on the same cores, and a thread that waits at the end
of an operation for its descheduled partner holds the whole operation up. Score-CAM plus occlusion on ResNet-18
took 4.3× its time alone while a run trained. So while a run trains the app computes on half the cores
(:func:`app_threads`) and the worker on the rest (``jobs.CoreShare`` drops its threads while the app works): each
keeps its own cores, so the app's heavy work takes at most about twice its time alone and training keeps about half
its speed or more.

The worker's lower priority (``jobs``) makes a short page rerun win a core at once; it cannot replace the split:
a niced worker starved by long heavy work would lose most of its speed.
"""

from __future__ import annotations

import os

import torch

from cnn_explorer import runs

__all__ = ["app_threads", "machine_cores", "share_with_training"]


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it, else every core)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def app_threads(cores: int, training: bool) -> int:
    """The app's torch threads: every core while nothing trains, half of them (at least one) while a run does."""
    return max(1, cores // 2) if training else cores


def share_with_training() -> int:
    """Set the torch threads of the calling thread (a page's script run) for what runs now: called at the top of
    every rerun, so a page computes on half the cores while a run trains and on all of them once it ends.

    Returns:
        The thread count set.
    """
    threads = app_threads(machine_cores(), training=bool(runs.list_runs("running")))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
