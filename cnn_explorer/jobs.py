"""Training in the background: one worker process per run, one run at a time, a queue that drains by itself.

A run executes in its own process, ``python -m cnn_explorer worker RUN_ID`` (``subprocess``, never
``multiprocessing``: under Streamlit, spawn would re-run the page script), so a crash, a memory blow-up or a stop
never touches the app. The run store decides who runs: :func:`kick` atomically claims the oldest queued run only
while none is running (``runs.claim_next``), and every worker kicks the queue when its run ends, so queued runs
start even with no page open. The app only reads the store; :func:`poll` repairs what a dead process left behind.

Cores: the worker runs at a lower priority than the app, its session's scheduling group included
(:func:`lower_priority`), and trains on every core while nothing else runs, fewer while the app works
(:class:`CoreShare`); while a run trains the app computes on half the cores (``cores``). So a page rerun never waits
on training, and heavy work in the app and training each keep about half the machine.

Stopping: :func:`stop` drops a flag file that the worker looks at every batch (at most every 0.1 s), which ends the
run as "stopped" within a second or two, checkpoints kept; a worker that does not end within ``STOP_GRACE_S`` is
terminated.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from cnn_explorer import cores, runner, runs
from cnn_explorer.runspec import RunSpec

__all__ = ["STOP_GRACE_S", "CoreShare", "kick", "lower_priority", "poll", "stop", "submit", "train_foreground", "work"]

STOP_GRACE_S = 5.0  # a worker still alive this long after a stop request is terminated
WORKER_START_GRACE_S = 60.0  # a claimed run whose process never showed up has failed after this long
_KILL_GRACE_S = 1.0  # after SIGTERM, before SIGKILL
_REAP_WAIT_S = 2.0  # a dead worker's last threads exit within this (then its exit code is known)
_LOG_TAIL_LINES = 6
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the worker imports this checkout, installed or not
_HAS_PROC = Path("/proc/self/stat").exists()
WORKER_NICENESS = 10  # the worker's scheduling priority below the app's

# Worker processes this process started: polled to reap them (no zombies) and to learn their exit codes.
_children: dict[int, subprocess.Popen] = {}  # by pid
_exit_codes: dict[int, int] = {}


def submit(spec: RunSpec) -> str:
    """Queue a run and start it at once if nothing else is running.

    Returns:
        The run's id (its model will be ``run-<id>``).
    """
    run = runs.create_run(spec)
    kick()
    return run.id


def kick() -> str | None:
    """Start a worker for the oldest queued run when no run is running.

    Returns:
        The id of the run started, or None.
    """
    _reap()
    return _start_next()


def poll() -> list[str]:
    """Repair the store after dead processes, enforce overdue stops, and start the next queued run.

    A "running" run whose process is gone (killed, out of memory, a crash outside the run's own error handling)
    becomes "failed" with the exit code and the last lines of its ``worker.log``. Cheap enough for every page
    refresh: one index query and a ``/proc`` look-up per running run.

    Returns:
        The ids of the runs it marked failed.
    """
    _enforce_stops()
    failed = _reap()
    _start_next()
    return failed


def stop(run_id: str | int, *, wait: bool = True, timeout: float = STOP_GRACE_S) -> runs.Run:
    """Stop a run: a queued run is cancelled, a running one asked to stop (its checkpoints are kept).

    Args:
        run_id: The run.
        wait: Return only once the worker has ended (terminating it after ``timeout`` seconds); otherwise return
            at once, and a later :func:`poll` terminates a worker that ignores the request.
        timeout: Seconds to wait before terminating.

    Returns:
        The run as it is now.
    """
    run = runs.get_run(run_id)
    if run.status == "queued" and runs.set_status(
        run.id, "stopped", message="Cancelled before it started.", expect="queued"
    ):
        return runs.get_run(run.id)
    run = runs.get_run(run.id)
    if run.status != "running":
        return run
    runs.request_stop(run.id)
    if not wait:
        return run
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap_children()
        run = runs.get_run(run.id)
        if run.status != "running" and (run.pid is None or not _alive(run.pid)):
            break
        time.sleep(0.05)
    else:
        _terminate(run.id, timeout)
    runs.clear_stop(run.id)  # the run may have ended by itself just before the flag was dropped
    kick()
    return runs.get_run(run.id)


def work(run_id: str | int) -> int:
    """The worker process's body (``python -m cnn_explorer worker RUN_ID``): train the claimed run, then start the
    next queued one. Returns the process exit code (0: the run ended, whatever its status)."""
    run = runs.get_run(run_id)
    try:
        if run.status != "running":  # cancelled or taken over while this process started
            print(f"run {run.id} is {run.status}; nothing to do", flush=True)
            return 0
        runs.set_pid(run.id, os.getpid())
        lower_priority(WORKER_NICENESS)  # when the app wants a core, the scheduler gives it the core at once
        share = CoreShare(
            cores.machine_cores(),
            on_change=lambda n, others: _print(f"torch threads: {n} (other processes used {others:.2f} cores)"),
        )
        runner.execute(run.id, log=_print, on_poll=share.adjust)
        return 0
    finally:
        kick()


def lower_priority(niceness: int) -> None:
    """Lower this process's scheduling priority by ``niceness``: this thread's and those it starts (``os.nice``), and
    its session's.

    Linux groups processes by session for scheduling (autogroup, on by default): two sessions busy on the same cores
    get equal shares whatever their threads' nice values, which only weigh within a session. The worker has a session
    of its own (``start_new_session``), so its nice alone left it an equal share against the app: the app's heavy
    work took 4.3× its time alone while a run trained. Lowering the session's group too (``/proc/self/autogroup``,
    where there is one) makes the app win a core as the niceness says. Only a session's leader does that: the
    group is the whole session's, and a process that shares its session (a terminal's) must not lower the others.
    """
    if hasattr(os, "nice"):
        os.nice(niceness)  # this thread, and the threads it starts from now on
        _lower_earlier_threads(os.getpriority(os.PRIO_PROCESS, 0))
    if hasattr(os, "getsid") and os.getsid(0) == os.getpid():
        with contextlib.suppress(OSError):  # no autogroup (other systems, kernels built without it)
            Path("/proc/self/autogroup").write_text(str(niceness))


def _lower_earlier_threads(niceness: int) -> None:
    """Give the threads this process started before (``import torch`` starts one) at least ``niceness``: on Linux a
    thread's priority is its own, and ``os.nice`` reaches only the calling thread and those it starts later."""
    with contextlib.suppress(OSError):  # no /proc: nothing to look at
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError, ValueError):  # a thread that ended meanwhile
                tid = int(task.name)
                os.setpriority(os.PRIO_PROCESS, tid, max(niceness, os.getpriority(os.PRIO_PROCESS, tid)))


class CoreShare:
    """The worker's torch threads: every core while the rest of the machine is quiet, one fewer while other
    processes (the app rerunning a page) use CPU, as many fewer as the cores they use.

    On two cores neither fixed choice is good. One thread halves the training speed for good (the TinyVGG preset:
    ~120 s to 95 % instead of ~65 s). Two threads at the app's priority slow page reruns, and while the app holds
    a core the worker's two threads wait on each other at every operation: training itself ran at 40 % of its
    one-thread speed. So the worker runs niced (the app always wins a core at once), starts on every core, and
    :meth:`adjust`, called between batches, measures the CPU time the other processes used since its last look:
    above ``busy_cores`` it drops at once to one fewer thread, or to the cores the others leave where they use more
    (:meth:`busy_threads`); it takes every core again after ``quiet_s`` of
    quiet. Where the machine's CPU time cannot be read (no ``/proc/stat``) it keeps one core free.

    The float rounding of a training step depends on the thread count, so a run's last bits depend on what else
    ran meanwhile: a run the app left alone computes what the command line (``train``, ``--ship``) computes, bit
    for bit (it used to start on one thread, so every run from the page differed from the first batch).
    """

    def __init__(
        self,
        cores: int,
        *,
        interval_s: float = 0.5,
        busy_cores: float = 0.25,
        quiet_s: float = 2.0,
        machine_cpu_seconds: Callable[[], float | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        own_cpu_seconds: Callable[[], float] | None = None,
        set_threads: Callable[[int], None] = torch.set_num_threads,
        on_change: Callable[[int, float], None] | None = None,
    ) -> None:
        self.cores, self.interval_s, self.busy_cores, self.quiet_s = cores, interval_s, busy_cores, quiet_s
        self._machine = machine_cpu_seconds or _machine_cpu_seconds
        self._clock, self._set, self._on_change = clock, set_threads, on_change
        self._own = own_cpu_seconds or _own_cpu_seconds
        self._last = self._sample()
        # Every core from the start where the machine can be watched (niced, the worker yields to the app anyway):
        # a run then computes what the command line computes, bit for bit, unless the app was busy meanwhile.
        self.threads = cores if self._last[1] is not None else max(1, cores - 1)
        self._set(self.threads)
        self._quiet_since: float | None = None

    def adjust(self) -> None:
        """Look at the machine (at most every ``interval_s``) and set the thread count for the next batches."""
        now = self._clock()
        if self.cores < 2 or now - self._last[0] < self.interval_s:
            return
        sample = self._sample()
        (then, machine_then, own_then), (_, machine_now, own_now) = self._last, sample
        self._last = sample
        if machine_then is None or machine_now is None:
            return
        others = max(0.0, (machine_now - machine_then) - (own_now - own_then)) / (now - then)
        if others > self.busy_cores:
            self._quiet_since = None
            self._use(self.busy_threads(others), others)
        elif self.threads < self.cores:
            self._quiet_since = self._quiet_since if self._quiet_since is not None else then
            if now - self._quiet_since >= self.quiet_s:
                self._use(self.cores, others)

    def busy_threads(self, others: float) -> int:
        """The threads while other processes use ``others`` cores: one fewer than every core, and fewer still where
        the others use more (the app computing on half the cores of a larger machine, ``cores.app_threads``)."""
        return max(1, min(self.cores - 1, self.cores - round(others)))

    def _use(self, threads: int, others: float) -> None:
        if threads != self.threads:
            self.threads = threads
            self._set(threads)
            if self._on_change is not None:
                self._on_change(threads, others)

    def _sample(self) -> tuple[float, float | None, float]:
        return self._clock(), self._machine(), self._own()


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of its children: the processes that read a run's images are the worker's
    own work, not another process competing with it (counted as such, they sent the start of every run to one
    thread). Ended children are in ``os.times``; running ones are read from ``/proc`` where there is one."""
    times = os.times()
    seconds = times.user + times.system + times.children_user + times.children_system
    return seconds + sum(_process_cpu_seconds(child.pid) for child in mp.active_children() if child.pid)


def _process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used, from Linux's ``/proc/PID/stat``; 0 where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # after the command's name
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15
    except (OSError, IndexError, ValueError):
        return 0.0


def _machine_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has used since boot (Linux ``/proc/stat``); None elsewhere. Steal
    time is left out: it is another virtual machine's, not a process competing here."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def train_foreground(
    spec: RunSpec, *, log: Callable[[str], None] | None = None, should_stop: Callable[[], bool] | None = None
) -> runner.Outcome:
    """Run ``spec`` in this process (the command line's ``train``), recorded in the store like any run. It runs
    whatever else is running: the user asked for it explicitly. Queued runs start when it ends."""
    run = runs.create_run(spec)
    runs.claim_run(run.id, os.getpid())
    try:
        return runner.execute(run.id, log=log, should_stop=should_stop)
    finally:
        kick()


# ── processes ───────────────────────────────────────────────────────────────────────────────────────────────────


def _print(message: str) -> None:
    print(message, flush=True)


def _start_next() -> str | None:
    if runs.next_queued() is None:  # a plain read first: claiming takes the index's write lock
        return None
    run = runs.claim_next()
    if run is None:
        return None
    try:
        process = _spawn(run.id)
    except OSError as err:
        runs.set_status(run.id, "failed", message=f"The worker process could not start: {err}.", expect="running")
        return None
    runs.set_pid(run.id, process.pid)
    return run.id


def _spawn(run_id: str) -> subprocess.Popen:
    env = dict(os.environ)
    env["CNN_EXPLORER_HOME"] = str(runs.home().resolve())  # the worker's working directory differs from ours
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    folder = runs.run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "worker.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cnn_explorer", "worker", run_id],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=_PACKAGE_ROOT,
            env=env,
            start_new_session=True,  # not in the app's process group: Ctrl-C on the app leaves the run alone
        )
    _children[process.pid] = process
    return process


def _reap_children() -> None:
    for pid, process in list(_children.items()):
        code = process.poll()
        if code is not None:
            _exit_codes[pid] = code
            del _children[pid]


def _exit_code(pid: int) -> int | None:
    """The exit code of a dead worker we started (None: not ours). A killed multithreaded process shows as a zombie
    before its last threads have exited, and only then can it be reaped: wait for that (milliseconds)."""
    process = _children.get(pid)
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            _exit_codes[pid] = process.wait(timeout=_REAP_WAIT_S)
            del _children[pid]
    return _exit_codes.get(pid)


def _reap() -> list[str]:
    """Mark running runs whose process is gone as failed."""
    _reap_children()
    failed = []
    for run in runs.list_runs("running"):
        if run.pid is None:
            if time.time() - (run.started or run.created) < WORKER_START_GRACE_S:
                continue  # just claimed: its process is being started
            message = "The worker process never started."
        elif _alive(run.pid):
            continue
        else:
            code = _exit_code(run.pid)
            how = f"exit code {code}" if code is not None else f"process {run.pid}"
            message = f"The worker process ended without finishing the run ({how})."
            if tail := _log_tail(run.id):
                message += f" Last lines of its log:\n{tail}"
        if runs.set_status(run.id, "failed", message=message, expect="running"):
            runs.clear_stop(run.id)
            failed.append(run.id)
    return failed


def _enforce_stops() -> None:
    for run in runs.list_runs("running"):
        requested = runs.stop_requested(run.id)
        if requested is not None and time.time() - requested > STOP_GRACE_S:
            _terminate(run.id, STOP_GRACE_S)


def _terminate(run_id: str, waited: float) -> None:
    """End a worker that ignored its stop request; the run is recorded as stopped."""
    run = runs.get_run(run_id)
    if run.pid is not None and _alive(run.pid):
        _signal(run.pid, signal.SIGTERM)
        deadline = time.monotonic() + _KILL_GRACE_S
        while _alive(run.pid) and time.monotonic() < deadline:
            _reap_children()
            time.sleep(0.02)
        if _alive(run.pid):
            _signal(run.pid, signal.SIGKILL)
    runs.set_status(
        run.id,
        "stopped",
        message=f"Stopped: the worker did not respond within {waited:g} s and was terminated.",
        expect="running",
    )
    runs.clear_stop(run.id)
    _reap_children()


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child not yet reaped counts as dead)."""
    if not _HAS_PROC:  # macOS: signal 0 only tells that the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _log_tail(run_id: str) -> str:
    path = runs.run_dir(run_id) / "worker.log"
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(lines[-_LOG_TAIL_LINES:])
