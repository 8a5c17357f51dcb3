"""The app's share of the cores while a run trains (``cores``): half of them, all of them otherwise."""

import os

import pytest
import torch

from cnn_explorer import cores, runs
from cnn_explorer.runspec import preset


@pytest.mark.parametrize(
    ("cores_", "training", "threads"), [(2, False, 2), (2, True, 1), (1, True, 1), (4, True, 2), (16, True, 8)]
)
def test_the_app_computes_on_half_the_cores_while_a_run_trains(cores_, training, threads):
    assert cores.app_threads(cores_, training) == threads


def test_the_machines_cores_are_those_this_process_may_use():
    assert cores.machine_cores() == len(os.sched_getaffinity(0))


def test_a_pages_rerun_sets_its_threads_from_the_runs_that_train_now(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path))
    monkeypatch.setattr(cores, "machine_cores", lambda: 2)
    before = torch.get_num_threads()
    try:
        assert cores.share_with_training() == 2 and torch.get_num_threads() == 2
        run = runs.create_run(preset("tinyvgg-shapes"))
        assert cores.share_with_training() == 2  # queued: nothing trains yet
        runs.claim_run(run.id, os.getpid())
        assert cores.share_with_training() == 1 and torch.get_num_threads() == 1
        runs.set_status(run.id, "done", message="", expect="running")
        assert cores.share_with_training() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
