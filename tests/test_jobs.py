"""Background runs through real worker processes, and the command line: tiny specs, a few seconds each."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from cnn_explorer import data, jobs, runner, runs, zoo
from cnn_explorer.runspec import DataSpec, LayerSpec, ModelSpec, RunSpec, Settings

ROOT = Path(__file__).resolve().parent.parent

TINY = RunSpec(
    name="tiny",
    data=DataSpec(kind="shapes", size=16, count=48, val_split=0.25),
    model=ModelSpec(
        layers=(
            LayerSpec("conv", channels=4, padding=1),
            LayerSpec("relu"),
            LayerSpec("pool", kernel=2, stride=None),
            LayerSpec("conv", channels=4, padding=1),
            LayerSpec("relu"),
            LayerSpec("flatten"),
        )
    ),
    settings=Settings(epochs=2, batch_size=16),
)
# Long enough to be stopped or killed mid-epoch (it would train for minutes).
LONG = replace(TINY, name="long", data=replace(TINY.data, count=20000, val_split=0.05), settings=Settings(epochs=50))


def _wait(condition: Callable[[], object], timeout: float = 120.0, poll: bool = False) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if poll:
            jobs.poll()
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s; runs: {runs.list_runs()}")


def _status(run_id: str, *statuses: str) -> Callable[[], bool]:
    return lambda: runs.get_run(run_id).status in statuses


def _training(run_id: str) -> Callable[[], bool]:
    return lambda: (runs.read_progress(run_id) or {}).get("phase") == "training"


def _use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(home))


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _use_home(monkeypatch, tmp_path / "home")
    yield tmp_path / "home"
    for run in runs.list_runs(("running", "queued")):  # never leave a worker behind
        jobs.stop(run.id)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tiny run trained to the end by a real worker process: (its home, its id)."""
    home = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _use_home(monkeypatch, home)
        run_id = jobs.submit(TINY)
        _wait(_status(run_id, "done", "failed", "stopped"))
    return home, run_id


def test_a_submitted_run_trains_to_done_in_a_worker_process(finished, monkeypatch):
    home, run_id = finished
    _use_home(monkeypatch, home)
    run = runs.get_run(run_id)
    assert run.status == "done", run.message
    assert run.pid not in (None, os.getpid()) and run.started >= run.created and run.finished >= run.started
    metrics = runs.read_metrics(run_id)
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert run.best_val_accuracy == max((m for m in metrics if m["best"]), key=lambda m: m["epoch"])["val_accuracy"]
    files = {p.name for p in run.folder.iterdir()}
    assert {"spec.json", "model.json", "metrics.jsonl", "progress.json", "best.pt", "last.pt", "results.pt"} <= files
    assert {"worker.log", "timelapse"} <= files and "stop" not in files
    assert not [name for name in files if name.endswith(".tmp")]
    assert runs.read_progress(run_id)["phase"] == "done"
    assert "epoch 2/2" in (run.folder / "worker.log").read_text()


def test_the_time_lapse_has_a_frame_per_epoch_and_names_its_layers(finished, monkeypatch):
    home, run_id = finished
    _use_home(monkeypatch, home)
    frames = runs.read_timelapse(run_id)
    assert [f["epoch"] for f in frames] == [0, 1, 2]  # 0: before training
    info = runs.read_model_info(run_id)
    val = data.prepare(TINY.data, TINY.settings.seed).val
    for frame in frames:
        assert frame["probe_index"] == 0 and frame["label"] == val[0][1]
        # Grad-CAM at the last conv's rectified map (the CAMs' default since issue 14)
        assert (frame["filters_layer"], frame["features_layer"], frame["gradcam_layer"]) == ("conv1", "conv2", "relu2")
        assert frame["filters"].shape == (4, 3, 3, 3)
        assert frame["features"].shape == (4, 8, 8)
        assert frame["gradcam"].shape == (16, 16) and torch.isfinite(frame["gradcam"]).all()
        assert frame["probabilities"].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert info["timelapse"]["features_layer"] == "conv2"
    assert not torch.equal(frames[0]["filters"], frames[-1]["filters"])  # the filters learnt something


def test_results_match_the_best_checkpoint_and_the_zoo_model_predicts_the_same(finished, monkeypatch):
    home, run_id = finished
    _use_home(monkeypatch, home)
    name = f"run-{run_id}"
    assert name in zoo.available_models()
    entry = zoo.model_entry(name)
    run = runs.get_run(run_id)
    assert entry.family == "trained run" and entry.is_ready()
    assert entry.summary == f"tiny · CNN: 2 conv, 1 linear · 2,830 params · val acc {run.best_val_accuracy:.1%}"
    model = zoo.load_model(name)
    assert model.name == name and not model.module.training and model.input_size == (3, 16, 16)
    assert model.class_names == data.SHAPE_CLASSES and "tiny" in model.card

    results = runs.read_results(run_id)
    val = runner.validation_set(run_id)  # rebuilt from the spec, as the page does
    assert torch.equal(val[3][0], data.prepare(TINY.data, TINY.settings.seed).val[3][0])
    x = torch.stack([val[i][0] for i in range(len(val))])
    with torch.no_grad():
        probabilities = torch.softmax(model.module(x), dim=1)
    assert torch.equal(results["labels"], torch.tensor([val[i][1] for i in range(len(val))]))
    torch.testing.assert_close(probabilities, results["probabilities"], rtol=0, atol=1e-6)
    right = probabilities.argmax(1) == results["labels"]
    assert results["val_accuracy"] == pytest.approx(right.float().mean().item())
    assert results["val_accuracy"] == pytest.approx(run.best_val_accuracy)
    for c in range(len(model.class_names)):
        mine = results["labels"] == c
        if mine.any():
            assert results["per_class_accuracy"][c].item() == pytest.approx(right[mine].float().mean().item())
    # The zoo's preprocessing of a picture is what the worker trained on.
    picture = val.image(0)
    torch.testing.assert_close(model.preprocess(picture)[0], val[0][0], rtol=0, atol=1e-6)


def test_the_registry_rereads_the_store(finished, monkeypatch):
    home, run_id = finished
    _use_home(monkeypatch, home)
    assert f"run-{run_id}" in zoo.available_models()
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(home.parent / "empty-home"))
    assert not [n for n in zoo.available_models() if n.startswith("run-")]


def test_stop_ends_a_running_run_within_seconds(home):
    run_id = jobs.submit(LONG)
    queued = jobs.submit(TINY)
    assert runs.get_run(queued).status == "queued"  # one run at a time
    assert jobs.stop(queued).status == "stopped"  # a queued run is cancelled at once
    assert runs.get_run(queued).message == "Cancelled before it started."
    _wait(_training(run_id))
    pid = runs.get_run(run_id).pid
    started = time.monotonic()
    run = jobs.stop(run_id)
    elapsed = time.monotonic() - started
    assert run.status == "stopped" and run.message.startswith("Stopped after 0 complete epochs"), run.message
    assert elapsed < 5.0, f"stop took {elapsed:.1f} s"
    assert not jobs._alive(pid)
    assert runs.stop_requested(run_id) is None
    assert runs.get_run(queued).status == "stopped"  # the cancelled run did not start afterwards
    assert (run.folder / "model.json").exists() and not run.in_zoo  # no epoch finished: nothing to offer


def test_a_second_run_waits_for_the_first_and_the_worker_starts_it(home):
    first = jobs.submit(TINY)
    second = jobs.submit(replace(TINY, name="second"))
    assert runs.get_run(second).status == "queued"
    # No poll() here: the first worker starts the second run by itself, as with no page open.
    _wait(_status(second, "done", "failed", "stopped"), timeout=180)
    a, b = runs.get_run(first), runs.get_run(second)
    assert (a.status, b.status) == ("done", "done"), (a.message, b.message)
    assert b.started >= a.finished
    assert a.pid != b.pid


def test_a_crashing_run_fails_with_its_reason_and_the_app_carries_on(home, tmp_path):
    missing = tmp_path / "no-such-folder"
    run_id = jobs.submit(replace(TINY, name="broken", data=DataSpec(kind="folder", path=str(missing), size=16)))
    run = _wait(lambda: (r := runs.get_run(run_id)).status in runs.FINISHED and r)
    assert run.status == "failed"
    assert str(missing) in run.message
    assert "Traceback" not in run.message
    assert not run.in_zoo and f"run-{run_id}" not in zoo.available_models()
    assert jobs.poll() == []  # nothing else to repair
    next_id = jobs.submit(TINY)  # the app (this process) is fine and the queue still works
    _wait(_status(next_id, "done", "failed"))
    assert runs.get_run(next_id).status == "done"


def test_a_worker_killed_from_outside_is_marked_failed_by_poll(home):
    run_id = jobs.submit(LONG)
    _wait(_training(run_id))
    pid = runs.get_run(run_id).pid
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not jobs._alive(pid), timeout=10, poll=True)
    run = _wait(lambda: (r := runs.get_run(run_id)).status != "running" and r, timeout=10, poll=True)
    assert run.status == "failed"
    assert "exit code -9" in run.message


def test_a_worker_that_ignores_its_stop_is_terminated(home, monkeypatch):
    run_id = jobs.submit(LONG)
    _wait(_training(run_id))
    pid = runs.get_run(run_id).pid
    os.kill(pid, signal.SIGSTOP)  # frozen: it cannot see the stop flag
    try:
        started = time.monotonic()
        run = jobs.stop(run_id, timeout=1.0)
        assert time.monotonic() - started < 5.0
    finally:
        if jobs._alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert run.status == "stopped" and "terminated" in run.message
    _wait(lambda: not jobs._alive(pid), timeout=10)


def test_the_command_line_trains_a_preset_and_prints_json_last(home):
    out = subprocess.run(
        [sys.executable, "-m", "cnn_explorer", "train", "--preset", "lenet5-digits", "--epochs", "1", "--json"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert any(line.startswith("epoch 1/1") for line in lines[:-1])  # progress first
    metrics = json.loads(lines[-1])
    assert 0.0 <= metrics["val_accuracy"] <= 1.0 and metrics["status"] == "done" and metrics["epochs"] == 1
    run = runs.get_run(metrics["run_id"])  # recorded in the store
    assert run.status == "done" and run.name == "LeNet-5 on digits" and run.spec.settings.epochs == 1
    assert run.best_val_accuracy == pytest.approx(metrics["val_accuracy"])
    assert f"run-{run.id}" in zoo.available_models()


# ── the same code path in this process (the command line's), for what needs no second process ──────────────────


def test_a_transfer_run_trains_only_the_new_head_and_loads_in_the_zoo(home):
    spec = RunSpec(
        name="transfer",
        data=DataSpec(kind="shapes", size=64, count=30, val_split=0.3),
        model=ModelSpec(kind="transfer", base="tinyvgg-shapes", trainable="head"),
        settings=Settings(epochs=1, batch_size=15, lr=0.01),
    )
    outcome = jobs.train_foreground(spec)
    assert outcome.status == "done", outcome.message
    model = zoo.load_model(f"run-{outcome.run_id}")
    base = zoo.load_model("tinyvgg-shapes")
    trained, frozen = model.module.state_dict(), base.module.state_dict()
    for key, value in frozen.items():
        if not key.startswith("output"):
            assert torch.equal(trained[key], value), key
    assert not torch.equal(trained["output.weight"], frozen["output.weight"])
    results = runs.read_results(outcome.run_id)
    val = runner.validation_set(outcome.run_id)
    assert torch.equal(val[0][0], data.prepare(spec.data, 0, base_preprocess=base.preprocess).val[0][0])
    with torch.no_grad():
        probabilities = torch.softmax(model.module(torch.stack([val[i][0] for i in range(len(val))])), dim=1)
    torch.testing.assert_close(probabilities, results["probabilities"], rtol=0, atol=1e-6)
    assert "tinyvgg-shapes, new head (head trained)" in zoo.model_entry(model.name).summary


def test_a_diverging_run_fails_with_advice(home):
    spec = replace(TINY, name="too fast", settings=Settings(epochs=2, batch_size=16, lr=1e20, optimizer="sgd"))
    outcome = jobs.train_foreground(spec)
    run = runs.get_run(outcome.run_id)
    assert outcome.status == run.status == "failed"
    assert "Lower the learning rate" in run.message and "epoch 1, step" in run.message
    assert not run.has_checkpoint and f"run-{run.id}" not in zoo.available_models()
    assert runs.read_progress(run.id)["phase"] == "failed"


# ── the worker's share of the cores ─────────────────────────────────────────────────────────────────────────────


class _Machine:
    """A fake clock and CPU-time counters: ``spend(seconds, own=…, others=…)`` advances them."""

    def __init__(self) -> None:
        self.now = self.machine = self.own = 0.0
        self.readable = True
        self.threads: list[int] = []
        self.changes: list[tuple[int, float]] = []

    def spend(self, seconds: float, own: float, others: float) -> None:
        self.now += seconds
        self.own += own * seconds
        self.machine += (own + others) * seconds

    def share(self, cores: int) -> jobs.CoreShare:
        return jobs.CoreShare(
            cores,
            machine_cpu_seconds=lambda: self.machine if self.readable else None,
            clock=lambda: self.now,
            own_cpu_seconds=lambda: self.own,
            set_threads=self.threads.append,
            on_change=lambda threads, others: self.changes.append((threads, round(others, 6))),
        )


def test_the_worker_takes_every_core_while_the_machine_is_quiet_and_yields_one_when_it_is_not():
    machine = _Machine()
    share = machine.share(cores=2)
    assert machine.threads == [2]  # every core from the start: niced, it yields to the app anyway
    for _ in range(4):
        machine.spend(0.5, own=2.0, others=0.05)
        share.adjust()
    assert share.threads == 2 and machine.threads == [2]
    machine.spend(0.5, own=1.6, others=0.4)  # the app reruns a page
    share.adjust()
    assert share.threads == 1 and machine.threads == [2, 1]
    machine.spend(0.2, own=1.0, others=0.0)
    share.adjust()  # looked at most every 0.5 s
    machine.spend(0.5, own=1.0, others=0.0)
    share.adjust()
    assert share.threads == 1  # quiet again, but not for 2 s yet
    for _ in range(4):
        machine.spend(0.5, own=1.0, others=0.0)
        share.adjust()
    assert share.threads == 2 and machine.threads == [2, 1, 2]
    assert machine.changes == [(1, 0.4), (2, 0.0)]  # what the worker's log says, with the cause


def test_without_the_machines_cpu_time_or_a_second_core_the_worker_keeps_its_start():
    machine = _Machine()
    machine.readable = False
    blind = machine.share(cores=4)
    single = _Machine()
    alone = single.share(cores=1)
    for _ in range(10):
        machine.spend(0.5, own=3.0, others=0.0)
        single.spend(0.5, own=1.0, others=0.0)
        blind.adjust()
        alone.adjust()
    assert (blind.threads, machine.threads) == (3, [3])
    assert (alone.threads, single.threads) == (1, [1])


def _burn(seconds: float) -> int:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return os.getpid()


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="running children's CPU time is read from /proc")
def test_the_workers_own_cpu_time_includes_its_image_readers_while_they_run():
    before = jobs._own_cpu_seconds()
    with multiprocessing.get_context("fork").Pool(1) as pool:
        pool.map(_burn, [0.4])
        during = jobs._own_cpu_seconds()  # the reader is still alive: not yet in os.times
    assert during - before >= 0.35


def test_the_workers_own_cpu_time_includes_the_image_reading_processes_it_started():
    own_before, process_before = jobs._own_cpu_seconds(), time.process_time()
    burn = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert jobs._own_cpu_seconds() - own_before >= 0.35  # the child's 0.4 s, once it has ended
    assert time.process_time() - process_before < 0.2  # which this process's own clock does not see


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="the machine's CPU time is read from Linux's /proc/stat")
def test_the_machines_cpu_time_counts_this_process():
    before, own_before = jobs._machine_cpu_seconds(), time.process_time()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    spent = time.process_time() - own_before
    assert jobs._machine_cpu_seconds() - before >= spent - 0.05  # ticks are 10 ms


# ── diagnostics of a run that went wrong ────────────────────────────────────────────────────────────────────────


def _executed(spec: RunSpec) -> runner.Outcome:
    run = runs.create_run(spec)
    assert runs.claim_run(run.id, os.getpid())
    return runner.execute(run.id)


def test_sgd_at_a_learning_rate_of_1e4_ends_done_saying_the_rate_is_far_too_high():
    spec = replace(TINY, name="too fast", settings=Settings(epochs=2, batch_size=16, lr=1e4, optimizer="sgd"))
    outcome = _executed(spec)
    run = runs.get_run(outcome.run_id)
    assert run.status == "done"  # finite all along: no NaN stopped it
    assert "the learning rate 1e4 is far too high for SGD. Try 0.01 or lower." in run.message
    first = runs.read_metrics(run.id)[0]
    assert run.message.startswith(f"The loss grew from {first['first_loss']:.2g} to ")
    assert "Validation accuracy stayed at chance" in run.message
    card = zoo.load_model(run.model_name).card
    assert "**What went wrong in training**" in card
    assert "- The loss grew from" in card and "*Try 0.01 or lower.*" in card
    assert "Run:** done\n" in card  # the sentences are listed once, not repeated in the run's line


def test_a_healthy_run_ends_with_an_empty_message():
    spec = replace(
        TINY,
        name="healthy",
        data=DataSpec(kind="shapes", size=16, count=1000, val_split=0.2, fresh=False),
        settings=Settings(epochs=4, batch_size=32, lr=3e-3),
    )
    outcome = _executed(spec)
    assert outcome.status == "done" and outcome.message == ""
    assert outcome.best.val_accuracy > 0.1 + 0.064  # above chance: 10 %, ± 6.4 % on 200 images


class _Biased(nn.Module):
    """A conv of 4 channels, two of them biased to -100 (never positive), then a linear of 3 features, one biased
    to -100: 2 of 4 and 1 of 3 ReLU units are dead on any input in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 2 * 2, 3)
        self.relu_fc = nn.ReLU()
        with torch.no_grad():
            self.conv.weight.fill_(0.1)
            self.conv.bias.copy_(torch.tensor([-100.0, 0.0, -100.0, 0.5]))
            self.fc.weight.fill_(0.01)
            self.fc.bias.copy_(torch.tensor([0.5, -100.0, 0.5]))

    def forward(self, x):
        return self.relu_fc(self.fc(self.flatten(self.relu(self.conv(x)))))


def test_dead_relus_counts_the_units_never_active_on_the_images():
    model = zoo.LoadedModel(
        name="biased",
        module=_Biased().eval(),
        input_size=(1, 4, 4),
        class_names=("a", "b", "c"),
        preprocess=None,
        summary="",
        card="",
    )
    images = torch.utils.data.TensorDataset(torch.rand(70, 1, 4, 4), torch.zeros(70, dtype=torch.long))
    counts = runner.dead_relus(model, images, batch_size=16)
    assert counts == {"relu": [2, 4], "relu_fc": [1, 3]}
    # The channel of bias 0 fires on a positive patch only: on all-zero images it is dead too.
    zeros = torch.utils.data.TensorDataset(torch.zeros(5, 1, 4, 4), torch.zeros(5, dtype=torch.long))
    assert runner.dead_relus(model, zeros) == {"relu": [3, 4], "relu_fc": [1, 3]}
    assert not model.module._forward_hooks and not model.module.relu._forward_hooks  # hooks removed


def _autogroup_nice(pid: int) -> int:
    """The nice value of the scheduling group of process ``pid``'s session (``/autogroup-17 nice 10``). A session
    with no group of its own (the system's first session, where a container's processes often run) prints nothing:
    it is scheduled in the root group, whose weight is nice 0's and cannot be changed."""
    fields = Path(f"/proc/{pid}/autogroup").read_text().split()
    return int(fields[-1]) if fields else 0


def test_the_worker_yields_to_the_app_across_sessions_not_only_within_its_own():
    """Linux schedules sessions as groups (autogroup): a niced worker in a session of its own still took an equal
    share against the app, whose heavy work then took 4.3× its time alone. The worker's session group is niced too,
    every one of its threads is, and the app's session keeps its priority."""
    run_id = jobs.submit(LONG)
    _wait(_training(run_id))
    pid = runs.get_run(run_id).pid
    assert os.getsid(pid) == pid  # its own session: Ctrl-C on the app leaves it alone
    assert _autogroup_nice(pid) == jobs.WORKER_NICENESS
    threads = list(Path(f"/proc/{pid}/task").iterdir())
    assert threads and all(int((t / "stat").read_text().rsplit(")", 1)[1].split()[16]) == 10 for t in threads)
    assert _autogroup_nice(os.getpid()) == 0


def test_lowering_the_priority_outside_a_session_of_its_own_leaves_the_sessions_group_alone():
    """Only a session's leader lowers the session's group: a process sharing a terminal's session must not lower
    the terminal and everything else started from it."""
    code = "import os; from cnn_explorer import jobs; jobs.lower_priority(10); print(os.nice(0))"
    child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert child.stdout.split() == ["10"]
    assert _autogroup_nice(os.getpid()) == 0


def test_on_a_larger_machine_the_worker_leaves_the_app_the_cores_it_uses():
    """The app computes on half the cores while a run trains (``cores.app_threads``): on 4 cores the worker then
    keeps 2, and a light page rerun still costs it only one."""
    machine = _Machine()
    share = machine.share(cores=4)
    machine.spend(0.5, own=4.0, others=0.4)  # a page rerun
    share.adjust()
    assert share.threads == 3
    machine.spend(0.5, own=3.0, others=2.0)  # heavy work on the app's 2 threads
    share.adjust()
    assert share.threads == 2
    machine.spend(0.5, own=2.0, others=3.6)  # more than the app's share: the worker still trains
    share.adjust()
    assert share.threads == 1 and machine.threads == [4, 3, 2, 1]


def test_a_stop_asked_for_while_the_data_is_read_ends_the_run_before_training() -> None:
    """The stop is seen in the data's progress callback (inside ``data.load_all``) and reaches ``execute`` as
    :class:`~cnn_explorer.progress.Cancelled`, through the library code in between."""
    run = runs.create_run(TINY)
    assert runs.claim_run(run.id, os.getpid())
    looks = []

    def stop_after_the_first_look() -> bool:
        looks.append(runs.read_progress(run.id))
        return len(looks) > 1

    outcome = runner.execute(run.id, should_stop=stop_after_the_first_look)
    assert (outcome.status, outcome.message) == ("stopped", "Stopped before training began.")
    assert looks[1]["phase"] == "preparing data"  # stopped while the data was prepared, not before
    assert runs.get_run(run.id).status == "stopped"
