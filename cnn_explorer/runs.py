"""The run store: an SQLite index of training runs and one folder per run, under ``CNN_EXPLORER_HOME``.

Layout (``HOME`` is ``$CNN_EXPLORER_HOME``, default ``~/.cnn_explorer``, read at every call)::

    HOME/runs/index.sqlite          one row per run: id, name, status, times, spec JSON, best accuracy, message, pid
    HOME/runs/<id>/spec.json        the RunSpec as created
    HOME/runs/<id>/model.json       what the zoo needs: class names, input size, preprocessing, architecture
    HOME/runs/<id>/metrics.jsonl    one JSON line per completed epoch
    HOME/runs/<id>/progress.json    the latest batch progress (throttled), for the live bar
    HOME/runs/<id>/best.pt          state_dict of the epoch with the lowest validation loss
    HOME/runs/<id>/last.pt          state_dict at the end of the latest completed epoch
    HOME/runs/<id>/timelapse/epoch-NNN.pt   the probe image's filters, feature maps, Grad-CAM, probabilities
    HOME/runs/<id>/results.pt       validation labels, probabilities and per-class accuracy of best.pt
    HOME/runs/<id>/worker.log       the worker process's output
    HOME/runs/<id>/stop             present while a stop is requested

Every file is written atomically (a temporary file, then ``os.replace``), so a reader, or a run killed mid-write,
only ever sees a complete previous or complete new version. Several processes share the index (the app, the
worker, the command line): SQLite in WAL mode with a busy timeout, short transactions, and ``BEGIN IMMEDIATE``
where a read decides a write.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import sqlite3
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cnn_explorer.runspec import RunSpec

__all__ = [
    "FINISHED",
    "STATUSES",
    "Run",
    "RunError",
    "RunNotFound",
    "append_metrics",
    "claim_next",
    "claim_run",
    "clear_stop",
    "create_run",
    "delete_run",
    "export_run",
    "get_run",
    "home",
    "list_runs",
    "load_checkpoint",
    "model_card",
    "next_queued",
    "read_metrics",
    "read_model_info",
    "read_progress",
    "read_results",
    "read_timelapse",
    "rename_run",
    "request_stop",
    "run_dir",
    "runs_dir",
    "save_checkpoint",
    "save_results",
    "save_timelapse",
    "set_best_val_accuracy",
    "set_pid",
    "set_status",
    "stop_requested",
    "write_model_info",
    "write_progress",
]

#: A run's life: queued → running → done | failed | stopped (a queued run can also go straight to stopped).
STATUSES = ("queued", "running", "done", "failed", "stopped")
FINISHED = ("done", "failed", "stopped")
CHECKPOINTS = ("best", "last")

_DEFAULT_HOME = "~/.cnn_explorer"
_BUSY_TIMEOUT_S = 30.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'stopped')),
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    spec TEXT NOT NULL,
    best_val_accuracy REAL,
    message TEXT NOT NULL DEFAULT '',
    pid INTEGER
)
"""
_COLUMNS = "id, name, status, created, started, finished, spec, best_val_accuracy, message, pid"


class RunNotFound(KeyError):
    """No run has this id (never created, or deleted)."""

    def __str__(self) -> str:  # KeyError quotes its argument; the message is a sentence
        return str(self.args[0])


class RunError(ValueError):
    """The run store refused a change (deleting a running run, an empty name, an unknown status)."""


@dataclass(frozen=True)
class Run:
    """One row of the index.

    Attributes:
        id: The run's id (a decimal number as text); its model is ``run-<id>`` in the zoo.
        name: Shown everywhere; starts as the spec's name, changed by :func:`rename_run`.
        status: One of :data:`STATUSES`.
        created: Unix time the run was queued.
        started: Unix time a worker took it (None while queued).
        finished: Unix time it ended (None until then).
        spec: What to train.
        best_val_accuracy: Validation accuracy of the best checkpoint so far (None before the first epoch).
        message: Why it failed or stopped, in words a user can act on ("" otherwise).
        pid: The process training it (None unless running, or after).
    """

    id: str
    name: str
    status: str
    created: float
    started: float | None
    finished: float | None
    spec: RunSpec
    best_val_accuracy: float | None
    message: str
    pid: int | None

    @property
    def folder(self) -> Path:
        return run_dir(self.id)

    @property
    def model_name(self) -> str:
        """The run's name in the model zoo."""
        return f"run-{self.id}"

    @property
    def has_checkpoint(self) -> bool:
        """A best checkpoint and the model description exist: the run can be loaded as a model."""
        return (self.folder / "best.pt").exists() and (self.folder / "model.json").exists()

    @property
    def in_zoo(self) -> bool:
        """Finished (done, or stopped/failed after at least one epoch) with a loadable best checkpoint."""
        return self.status in FINISHED and self.has_checkpoint


# ── locations ───────────────────────────────────────────────────────────────────────────────────────────────────


def home() -> Path:
    """The data directory: ``$CNN_EXPLORER_HOME`` or ``~/.cnn_explorer`` (read now, not at import)."""
    return Path(os.environ.get("CNN_EXPLORER_HOME") or _DEFAULT_HOME).expanduser()


def runs_dir() -> Path:
    return home() / "runs"


def run_dir(run_id: str | int) -> Path:
    """The folder of one run (it may not exist yet)."""
    return runs_dir() / _checked_id(run_id)


def _checked_id(run_id: str | int) -> str:
    text = str(run_id)
    if not text.isdecimal():  # ids become folder names: nothing else may reach the file system
        raise RunNotFound(f"{text!r} is not a run id: run ids are numbers.")
    return str(int(text))


# ── the index ───────────────────────────────────────────────────────────────────────────────────────────────────


@contextmanager
def _connect(create: bool = True) -> Iterator[sqlite3.Connection | None]:
    path = runs_dir() / "index.sqlite"
    if not create and not path.exists():
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    try:
        _prepare(connection)
        yield connection
    finally:
        connection.close()


def _prepare(connection: sqlite3.Connection) -> None:
    """WAL mode and the table, retried while another connection holds the file.

    SQLite answers "database is locked" at once, without waiting out the busy timeout, when a connection switches
    the journal mode while another is creating the file or recovering its WAL (seen: 1 in 40 races of a fresh index
    between threads and a process). Both statements are idempotent, so trying again is safe.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE``: the write lock is taken before the reads, so a read that decides a write stays true."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _row_to_run(row: Sequence[Any]) -> Run:
    id_, name, status, created, started, finished, spec, best, message, pid = row
    return Run(
        id=str(id_),
        name=name,
        status=status,
        created=created,
        started=started,
        finished=finished,
        spec=RunSpec.from_json(spec),
        best_val_accuracy=best,
        message=message,
        pid=pid,
    )


def create_run(spec: RunSpec) -> Run:
    """Add a queued run for ``spec`` and create its folder with ``spec.json``."""
    with _connect() as connection:
        cursor = connection.execute(
            "INSERT INTO runs (name, status, created, spec) VALUES (?, 'queued', ?, ?)",
            (spec.name, time.time(), spec.to_json()),
        )
        run_id = str(cursor.lastrowid)
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(folder / "spec.json", spec.to_json().encode())
    return get_run(run_id)


def get_run(run_id: str | int) -> Run:
    """The run with this id; :class:`RunNotFound` otherwise."""
    run_id = _checked_id(run_id)
    with _connect(create=False) as connection:
        row = None
        if connection is not None:
            row = connection.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ?", (int(run_id),)).fetchone()
    if row is None:
        raise RunNotFound(f"There is no run {run_id} in {runs_dir()} (deleted, or another CNN_EXPLORER_HOME).")
    return _row_to_run(row)


def list_runs(status: str | Sequence[str] | None = None) -> list[Run]:
    """Every run, newest first; only those with ``status`` (one or several) when given. Reading an empty home
    creates nothing."""
    statuses = (status,) if isinstance(status, str) else tuple(status or ())
    where = f" WHERE status IN ({', '.join('?' * len(statuses))})" if statuses else ""
    with _connect(create=False) as connection:
        if connection is None:
            return []
        rows = connection.execute(f"SELECT {_COLUMNS} FROM runs{where} ORDER BY id DESC", statuses).fetchall()
    return [_row_to_run(row) for row in rows]


def next_queued() -> Run | None:
    """The oldest queued run, the next to start."""
    with _connect(create=False) as connection:
        if connection is None:
            return None
        row = connection.execute(f"SELECT {_COLUMNS} FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
    return None if row is None else _row_to_run(row)


def rename_run(run_id: str | int, name: str) -> Run:
    """Give a run a new display name (the spec keeps the one it was created with)."""
    name = name.strip()
    if not name:
        raise RunError("A run name cannot be empty.")
    _update(run_id, "UPDATE runs SET name = ? WHERE id = ?", (name, int(_checked_id(run_id))))
    return get_run(run_id)


def delete_run(run_id: str | int) -> None:
    """Remove a run from the index and delete its folder. A running run is refused: stop it first."""
    run_id = _checked_id(run_id)
    with _connect() as connection, _transaction(connection):
        row = connection.execute("SELECT status FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise RunNotFound(f"There is no run {run_id} to delete.")
        if row[0] == "running":
            raise RunError(f"Run {run_id} is running: stop it first, then delete it.")
        connection.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))
    shutil.rmtree(run_dir(run_id), ignore_errors=True)


def set_status(
    run_id: str | int,
    status: str,
    *,
    message: str | None = None,
    pid: int | None = None,
    expect: str | Sequence[str] | None = None,
) -> bool:
    """Move a run to ``status``; ``started`` is stamped on entering "running", ``finished`` on a finished status.

    Args:
        run_id: The run.
        status: One of :data:`STATUSES`.
        message: Replaces the message when given.
        pid: Replaces the pid when given.
        expect: Change only if the current status is this one (or one of these): a race-free transition.

    Returns:
        Whether the run changed (False when ``expect`` did not match).
    """
    if status not in STATUSES:
        raise RunError(f"Unknown status {status!r}. Statuses: {', '.join(STATUSES)}.")
    run_id = _checked_id(run_id)
    now = time.time()
    sets, values = ["status = ?"], [status]
    if status == "running":
        sets.append("started = COALESCE(started, ?)")
        values.append(now)
    if status in FINISHED:
        sets.append("finished = ?")
        values.append(now)
    if message is not None:
        sets.append("message = ?")
        values.append(message)
    if pid is not None:
        sets.append("pid = ?")
        values.append(pid)
    where, where_values = "id = ?", [int(run_id)]
    if expect is not None:
        expected = (expect,) if isinstance(expect, str) else tuple(expect)
        where += f" AND status IN ({', '.join('?' * len(expected))})"
        where_values += expected
    return _update(run_id, f"UPDATE runs SET {', '.join(sets)} WHERE {where}", (*values, *where_values), strict=False)


def set_best_val_accuracy(run_id: str | int, accuracy: float) -> None:
    """Record the validation accuracy of the current best checkpoint."""
    _update(run_id, "UPDATE runs SET best_val_accuracy = ? WHERE id = ?", (accuracy, int(_checked_id(run_id))))


def claim_run(run_id: str | int, pid: int) -> bool:
    """Atomically take a queued run for the process ``pid`` (the command line's foreground run): it becomes
    "running" whatever else runs. False when the run is no longer queued."""
    run_id = _checked_id(run_id)
    with _connect() as connection:
        changed = connection.execute(
            "UPDATE runs SET status = 'running', started = ?, pid = ?, message = '' WHERE id = ? AND status = 'queued'",
            (time.time(), pid, int(run_id)),
        ).rowcount
    return changed > 0


def claim_next() -> Run | None:
    """Atomically take the oldest queued run when no run is running (one run at a time): it becomes "running"
    with no pid yet (the caller starts its process and records it with :func:`set_pid`). None when a run is
    already running or none is queued."""
    with _connect() as connection, _transaction(connection):
        if connection.execute("SELECT 1 FROM runs WHERE status = 'running' LIMIT 1").fetchone():
            return None
        row = connection.execute("SELECT id FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        connection.execute(
            "UPDATE runs SET status = 'running', started = ?, pid = NULL, message = '' WHERE id = ?",
            (time.time(), row[0]),
        )
    return get_run(row[0])


def set_pid(run_id: str | int, pid: int) -> bool:
    """Record the process of a running run; False when the run is no longer running."""
    with _connect() as connection:
        return (
            connection.execute(
                "UPDATE runs SET pid = ? WHERE id = ? AND status = 'running'", (pid, int(_checked_id(run_id)))
            ).rowcount
            > 0
        )


def _update(run_id: str | int, sql: str, values: Sequence[Any], strict: bool = True) -> bool:
    with _connect() as connection:
        changed = connection.execute(sql, values).rowcount > 0
    if strict and not changed:
        raise RunNotFound(f"There is no run {_checked_id(run_id)}.")
    return changed


# ── the run's files ─────────────────────────────────────────────────────────────────────────────────────────────


def _atomic_write(path: Path, content: bytes) -> None:
    # One fixed temporary name per file: a run killed mid-write leaves at most one stale temp file, overwritten by
    # the next write, and readers never look at it.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def _atomic_save(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as file:
        torch.save(value, file)
        file.flush()
        os.fsync(file.fileno())  # a checkpoint must survive a power cut, not just a killed process
    os.replace(tmp, path)


def _load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def append_metrics(run_id: str | int, record: dict[str, Any]) -> None:
    """Append one epoch's record to ``metrics.jsonl`` (one line, written in one call)."""
    with open(run_dir(run_id) / "metrics.jsonl", "a") as file:
        file.write(json.dumps(record) + "\n")


def read_metrics(run_id: str | int) -> list[dict[str, Any]]:
    """Every complete epoch record so far, oldest first (a line cut short by a killed process is skipped)."""
    path = run_dir(run_id) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def write_progress(run_id: str | int, progress: dict[str, Any]) -> None:
    """Replace ``progress.json`` (the worker throttles calls)."""
    _atomic_write(run_dir(run_id) / "progress.json", json.dumps({**progress, "updated": time.time()}).encode())


def read_progress(run_id: str | int) -> dict[str, Any] | None:
    """The latest progress (``phase``, ``epoch``, ``epochs``, ``batch``, ``batches``, ``images_per_second``,
    ``seconds_left``, ``loss``, ``updated``), or None before the first report."""
    try:
        return json.loads((run_dir(run_id) / "progress.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_model_info(run_id: str | int, info: dict[str, Any]) -> None:
    """Write ``model.json``: everything needed to rebuild the model and show it (see ``runner``)."""
    _atomic_write(run_dir(run_id) / "model.json", json.dumps(info, indent=2).encode())


def read_model_info(run_id: str | int) -> dict[str, Any]:
    """``model.json``; :class:`RunNotFound` when the run has none yet (it never got past preparing its data)."""
    path = run_dir(run_id) / "model.json"
    if not path.exists():
        raise RunNotFound(f"Run {_checked_id(run_id)} has no model yet: it ended before training began.")
    return json.loads(path.read_text())


def save_checkpoint(run_id: str | int, kind: str, state_dict: dict[str, Tensor]) -> None:
    """Write ``best.pt`` or ``last.pt`` atomically (a state_dict only)."""
    if kind not in CHECKPOINTS:
        raise RunError(f"Unknown checkpoint {kind!r}: use one of {', '.join(CHECKPOINTS)}.")
    _atomic_save(run_dir(run_id) / f"{kind}.pt", state_dict)


def load_checkpoint(run_id: str | int, kind: str = "best") -> dict[str, Tensor]:
    """A checkpoint's state_dict (``weights_only`` loading); :class:`RunNotFound` when there is none."""
    path = run_dir(run_id) / f"{kind}.pt"
    if kind not in CHECKPOINTS or not path.exists():
        raise RunNotFound(f"Run {_checked_id(run_id)} has no {kind} checkpoint.")
    return _load(path)


def save_timelapse(run_id: str | int, epoch: int, frame: dict[str, Any]) -> None:
    """Write one time-lapse frame, ``timelapse/epoch-NNN.pt`` (tensors, numbers and strings only)."""
    folder = run_dir(run_id) / "timelapse"
    folder.mkdir(exist_ok=True)
    _atomic_save(folder / f"epoch-{epoch:03d}.pt", frame)


def read_timelapse(run_id: str | int) -> list[dict[str, Any]]:
    """Every time-lapse frame, by epoch. Each holds ``epoch``, ``probe_index``, ``label``, ``filters`` (the first
    conv layer's weights ``[out, in, k, k]``), ``filters_layer``, ``features`` (``[C, h, w]`` of ``features_layer``
    for the probe), ``features_layer``, ``gradcam`` (``[H, W]`` for the probe's true class at ``gradcam_layer``)
    and ``probabilities`` ``[classes]``."""
    folder = run_dir(run_id) / "timelapse"
    return [_load(path) for path in sorted(folder.glob("epoch-*.pt"))] if folder.exists() else []


def save_results(run_id: str | int, results: dict[str, Any]) -> None:
    """Write ``results.pt`` (the best checkpoint's validation outputs)."""
    _atomic_save(run_dir(run_id) / "results.pt", results)


def read_results(run_id: str | int) -> dict[str, Any] | None:
    """``labels`` ``[N]``, ``probabilities`` ``[N, classes]``, ``per_class_accuracy`` ``[classes]``, ``class_names``,
    ``val_accuracy``, ``val_loss``, ``epoch`` (of the checkpoint); None before the run ends. Row ``i`` is image ``i``
    of the validation set ``data.prepare(spec.data, spec.settings.seed)`` rebuilds."""
    path = run_dir(run_id) / "results.pt"
    return _load(path) if path.exists() else None


def request_stop(run_id: str | int) -> None:
    """Ask the run's process to stop: it polls :func:`stop_requested` before every batch."""
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stop").touch()


def stop_requested(run_id: str | int) -> float | None:
    """Unix time a stop was requested, or None."""
    try:
        return (run_dir(run_id) / "stop").stat().st_mtime
    except FileNotFoundError:
        return None


def clear_stop(run_id: str | int) -> None:
    (run_dir(run_id) / "stop").unlink(missing_ok=True)


# ── the model card and export ───────────────────────────────────────────────────────────────────────────────────


def model_card(run_id: str | int) -> dict[str, Any]:
    """The run as a model card: ``model.json`` plus the spec, the run's outcome, the epochs and the per-class
    accuracy."""
    run = get_run(run_id)
    info = read_model_info(run.id)
    results = read_results(run.id)
    card = {
        "model": run.model_name,
        "name": run.name,
        "status": run.status,
        "message": run.message,
        "created": run.created,
        "finished": run.finished,
        "best_val_accuracy": run.best_val_accuracy,
        **info,
        "spec": run.spec.to_dict(),
        "metrics": read_metrics(run.id),
        "format": "state_dict.pt is a PyTorch state_dict: torch.load(path, weights_only=True).",
    }
    if results is not None:
        accuracies = [None if math.isnan(a) else a for a in results["per_class_accuracy"].tolist()]  # no images
        card["per_class_accuracy"] = dict(zip(results["class_names"], accuracies, strict=True))
    return card


def export_run(run_id: str | int) -> bytes:
    """A zip of the best checkpoint (``run-<id>/state_dict.pt``) and its model card (``run-<id>/model_card.json``)."""
    run = get_run(run_id)
    if not run.has_checkpoint:
        raise RunNotFound(f"Run {run.id} has no checkpoint to export yet: it has not completed an epoch.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(run.folder / "best.pt", f"{run.model_name}/state_dict.pt")
        card = json.dumps(model_card(run.id), indent=2, allow_nan=False)
        archive.writestr(f"{run.model_name}/model_card.json", card)
    return buffer.getvalue()
