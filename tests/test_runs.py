"""The run store: the index across processes, atomic files, a crash mid-write, export."""

import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from cnn_explorer import runs
from cnn_explorer.runspec import DataSpec, RunSpec, Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _spec(name: str = "a run") -> RunSpec:
    return RunSpec(name=name, data=DataSpec(size=16, count=40), settings=Settings(epochs=2))


def _state(value: float) -> dict[str, torch.Tensor]:
    return {"weight": torch.full((2, 3), value), "bias": torch.zeros(2)}


def test_reading_an_empty_home_creates_nothing(home):
    assert runs.list_runs() == [] and runs.next_queued() is None
    with pytest.raises(runs.RunNotFound):
        runs.get_run("1")
    assert not home.exists()


def test_a_created_run_is_queued_with_its_spec_and_folder(home):
    run = runs.create_run(_spec("first"))
    assert run.status == "queued" and run.name == "first" and run.model_name == f"run-{run.id}"
    assert run.started is None and run.finished is None and run.pid is None and run.best_val_accuracy is None
    assert run.folder == home / "runs" / run.id
    assert RunSpec.from_json((run.folder / "spec.json").read_text()) == _spec("first") == run.spec
    assert (home / "runs" / "index.sqlite").exists()
    assert not run.has_checkpoint and not run.in_zoo


def test_the_home_is_read_at_every_call(tmp_path, monkeypatch):
    first = runs.create_run(_spec())
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path / "elsewhere"))
    assert runs.list_runs() == []
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path / "home"))
    assert [r.id for r in runs.list_runs()] == [first.id]


def test_list_is_newest_first_and_filters_by_status():
    a, b, c = (runs.create_run(_spec(n)) for n in "abc")
    runs.set_status(b.id, "running")
    assert [r.id for r in runs.list_runs()] == [c.id, b.id, a.id]
    assert [r.id for r in runs.list_runs("running")] == [b.id]
    assert [r.id for r in runs.list_runs(("queued", "done"))] == [c.id, a.id]
    assert runs.next_queued().id == a.id


def test_status_transitions_stamp_times_and_can_be_conditional():
    run = runs.create_run(_spec())
    assert runs.set_status(run.id, "running", pid=1234)
    running = runs.get_run(run.id)
    assert running.started is not None and running.pid == 1234 and running.finished is None
    assert not runs.set_status(run.id, "stopped", expect="queued")  # it is running: nothing changes
    assert runs.get_run(run.id).status == "running"
    assert runs.set_status(run.id, "failed", message="It broke.", expect=("running", "queued"))
    failed = runs.get_run(run.id)
    assert failed.status == "failed" and failed.message == "It broke." and failed.finished >= failed.started
    with pytest.raises(runs.RunError, match="Unknown status"):
        runs.set_status(run.id, "paused")


def test_rename_and_delete():
    run = runs.create_run(_spec("old"))
    assert runs.rename_run(run.id, "  new name ").name == "new name"
    assert runs.get_run(run.id).spec.name == "old"  # the spec records what was asked for
    with pytest.raises(runs.RunError, match="empty"):
        runs.rename_run(run.id, " ")
    runs.delete_run(run.id)
    assert not run.folder.exists()
    with pytest.raises(runs.RunNotFound):
        runs.get_run(run.id)
    with pytest.raises(runs.RunNotFound):
        runs.rename_run(run.id, "gone")


def test_a_running_run_cannot_be_deleted():
    run = runs.create_run(_spec())
    runs.set_status(run.id, "running")
    with pytest.raises(runs.RunError, match="stop it first"):
        runs.delete_run(run.id)
    assert runs.get_run(run.id).status == "running" and run.folder.exists()


@pytest.mark.parametrize("bad", ["../x", "1/../../etc", "", "-1", "run-1", "1.0"])
def test_ids_never_reach_the_file_system_unchecked(bad):
    with pytest.raises(runs.RunNotFound, match="not a run id"):
        runs.run_dir(bad)


def test_claim_next_runs_one_at_a_time_oldest_first():
    a, b = runs.create_run(_spec("a")), runs.create_run(_spec("b"))
    claimed = runs.claim_next()
    assert claimed.id == a.id and claimed.status == "running" and claimed.pid is None
    assert runs.claim_next() is None  # a is running
    assert runs.set_pid(a.id, 42) and runs.get_run(a.id).pid == 42
    runs.set_status(a.id, "done")
    assert not runs.set_pid(a.id, 43)  # no longer running
    assert runs.claim_next().id == b.id


def test_claim_run_takes_a_queued_run_whatever_runs():
    a, b = runs.create_run(_spec("a")), runs.create_run(_spec("b"))
    runs.set_status(a.id, "running")
    assert runs.claim_run(b.id, pid=7)
    assert runs.get_run(b.id).status == "running" and runs.get_run(b.id).pid == 7
    assert not runs.claim_run(b.id, pid=8)


def test_concurrent_writers_in_threads_and_another_process_get_distinct_runs():
    code = (
        "from cnn_explorer import runs; from cnn_explorer.runspec import RunSpec\n"
        "for i in range(15): runs.create_run(RunSpec(name=f'process {i}'))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=os.environ.copy())
    threads = [
        threading.Thread(target=lambda t=t: [runs.create_run(_spec(f"thread {t}.{i}")) for i in range(5)])
        for t in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert process.wait(timeout=120) == 0
    listed = runs.list_runs()
    assert len(listed) == 30 and len({r.id for r in listed}) == 30
    assert all((r.folder / "spec.json").exists() for r in listed)


class _LockedAtFirst:
    """A connection whose first statements find the file locked, as SQLite answers mid-recovery without waiting."""

    def __init__(self, connection, failures: int):
        self.connection, self.failures, self.statements = connection, failures, []

    def execute(self, sql: str, *args):
        self.statements.append(sql)
        if self.failures:
            self.failures -= 1
            raise runs.sqlite3.OperationalError("database is locked")
        return self.connection.execute(sql, *args)


def test_preparing_the_index_tries_again_while_another_connection_holds_it(home):
    home.mkdir()
    connection = runs.sqlite3.connect(home / "index.sqlite", isolation_level=None)
    locked = _LockedAtFirst(connection, failures=3)
    runs._prepare(locked)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    assert len(locked.statements) > 3


def test_preparing_the_index_gives_up_on_other_errors(home):
    class Broken(_LockedAtFirst):
        def execute(self, sql: str, *args):
            self.statements.append(sql)
            raise runs.sqlite3.OperationalError("disk I/O error")

    broken = Broken(None, failures=0)
    with pytest.raises(runs.sqlite3.OperationalError, match="disk I/O"):
        runs._prepare(broken)
    assert len(broken.statements) == 1


def test_a_fresh_process_finds_the_run():
    run = runs.create_run(_spec("survivor"))
    runs.set_status(run.id, "running", pid=99)
    runs.set_best_val_accuracy(run.id, 0.75)
    code = f"from cnn_explorer import runs; r = runs.get_run({run.id!r}); print(r.name, r.status, r.best_val_accuracy)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["survivor", "running", "0.75"]


def test_metrics_lines_and_a_line_cut_short():
    run = runs.create_run(_spec())
    assert runs.read_metrics(run.id) == []
    runs.append_metrics(run.id, {"epoch": 1, "val_loss": 0.5})
    runs.append_metrics(run.id, {"epoch": 2, "val_loss": 0.4})
    with open(run.folder / "metrics.jsonl", "a") as file:
        file.write('{"epoch": 3, "val_lo')  # the process was killed mid-line
    assert runs.read_metrics(run.id) == [{"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": 0.4}]


def test_progress_is_replaced_whole():
    run = runs.create_run(_spec())
    assert runs.read_progress(run.id) is None
    runs.write_progress(run.id, {"phase": "training", "epoch": 1, "batch": 3})
    runs.write_progress(run.id, {"phase": "training", "epoch": 1, "batch": 4})
    progress = runs.read_progress(run.id)
    assert progress["batch"] == 4 and progress["updated"] > 0
    assert [p.name for p in run.folder.iterdir() if "progress" in p.name] == ["progress.json"]


def test_checkpoints_round_trip_with_weights_only_loading(monkeypatch):
    run = runs.create_run(_spec())
    runs.save_checkpoint(run.id, "best", _state(1.0))
    loaded_with = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loaded_with.append(k) or real_load(*a, **k))
    assert torch.equal(runs.load_checkpoint(run.id, "best")["weight"], torch.ones(2, 3))
    assert loaded_with == [{"map_location": "cpu", "weights_only": True}]
    with pytest.raises(runs.RunNotFound, match="no last checkpoint"):
        runs.load_checkpoint(run.id, "last")
    with pytest.raises(runs.RunError):
        runs.save_checkpoint(run.id, "final", _state(1.0))


def test_a_run_killed_mid_write_leaves_the_previous_checkpoint_loadable(monkeypatch):
    run = runs.create_run(_spec())
    runs.save_checkpoint(run.id, "best", _state(1.0))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before the rename")

    # The temporary file is written (here: completely; below: half), then the process dies before os.replace.
    with monkeypatch.context() as m:
        m.setattr(runs.os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            runs.save_checkpoint(run.id, "best", _state(2.0))
    leftover = run.folder / ".best.pt.tmp"
    assert leftover.exists()
    leftover.write_bytes(leftover.read_bytes()[:50])  # and cut short
    assert torch.equal(runs.load_checkpoint(run.id, "best")["weight"], torch.ones(2, 3))
    reloaded = torch.load(run.folder / "best.pt", weights_only=True)
    assert torch.equal(reloaded["weight"], torch.ones(2, 3))
    # The next save replaces both the stale temporary file and the checkpoint.
    runs.save_checkpoint(run.id, "best", _state(3.0))
    assert torch.equal(runs.load_checkpoint(run.id, "best")["weight"], torch.full((2, 3), 3.0))
    assert not leftover.exists()


def test_timelapse_and_results_round_trip():
    run = runs.create_run(_spec())
    assert runs.read_timelapse(run.id) == [] and runs.read_results(run.id) is None
    for epoch in (2, 0, 1):
        runs.save_timelapse(run.id, epoch, {"epoch": epoch, "layer": "conv1", "gradcam": torch.rand(4, 4)})
    assert [f["epoch"] for f in runs.read_timelapse(run.id)] == [0, 1, 2]
    assert sorted(p.name for p in (run.folder / "timelapse").iterdir()) == [f"epoch-00{i}.pt" for i in range(3)]
    results = {"labels": torch.tensor([0, 1]), "class_names": ["a", "b"], "val_accuracy": 0.5}
    runs.save_results(run.id, results)
    assert runs.read_results(run.id)["class_names"] == ["a", "b"]


def test_export_is_a_zip_of_the_state_dict_and_model_card():
    run = runs.create_run(_spec("exported"))
    with pytest.raises(runs.RunNotFound, match="no checkpoint"):
        runs.export_run(run.id)
    runs.save_checkpoint(run.id, "best", _state(1.5))
    runs.write_model_info(run.id, {"class_names": ["a", "b"], "input_size": [3, 16, 16], "architecture": "CNN"})
    runs.save_results(
        run.id,
        {"class_names": ["a", "b"], "per_class_accuracy": torch.tensor([1.0, float("nan")]), "labels": torch.zeros(1)},
    )
    runs.append_metrics(run.id, {"epoch": 1, "val_accuracy": 0.5})
    runs.set_status(run.id, "done")
    archive = zipfile.ZipFile(io.BytesIO(runs.export_run(run.id)))
    assert sorted(archive.namelist()) == [f"run-{run.id}/model_card.json", f"run-{run.id}/state_dict.pt"]
    state = torch.load(io.BytesIO(archive.read(f"run-{run.id}/state_dict.pt")), weights_only=True)
    assert torch.equal(state["weight"], torch.full((2, 3), 1.5))
    card = json.loads(archive.read(f"run-{run.id}/model_card.json"), parse_constant=pytest.fail)  # no NaN
    assert card["name"] == "exported" and card["class_names"] == ["a", "b"] and card["status"] == "done"
    assert card["spec"] == run.spec.to_dict() and card["metrics"] == [{"epoch": 1, "val_accuracy": 0.5}]
    assert card["per_class_accuracy"] == {"a": 1.0, "b": None}
