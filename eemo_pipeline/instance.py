"""The project-local Dagster instance: a home folder (``Settings.dagster_home``) with this repository's
``dagster.yaml``, opened by path (no ``DAGSTER_HOME`` needs to be set in this process)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import multiprocessing
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from multiprocessing.connection import wait
from pathlib import Path

# Per-pool slot limits applied to a new instance (dagster.yaml only carries the default limit).
POOL_LIMITS = {"llm": 8, "gpu": 1}
# The repository's dagster.yaml, through the link beside this module (the wheel carries the file itself).
_REPO_CONFIG = Path(__file__).resolve().parent / "dagster.yaml"


def ensure_dagster_home(home: str | Path) -> Path:
    """Create ``home`` with the repository's dagster.yaml unless it has one; returns its absolute path. Safe when
    several processes do it at once: the file appears whole (a hard link of a complete copy), and never replaces
    one that is there."""
    path = Path(home).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists() and _REPO_CONFIG.is_file():
        partial = path / f".dagster.yaml.{os.getpid()}.{threading.get_ident()}.partial"
        try:
            shutil.copyfile(_REPO_CONFIG, partial)
            with contextlib.suppress(FileExistsError):
                os.link(partial, config)
        finally:
            partial.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<home>/.eemo-instance.lock`` (released however the process ends)."""
    fd = os.open(home / ".eemo-instance.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def instance_postgres_url(instance) -> str | None:
    """The SQLAlchemy URL of ``instance``'s run storage when that is PostgreSQL (dagster-postgres), else None."""
    url = getattr(instance.run_storage, "postgres_url", None)
    return url if isinstance(url, str) and url.startswith("postgresql") else None


def get_instance(home: str | Path):
    """The persistent instance in ``home`` (created when missing), with the pipeline's pool limits set once.
    Close it when done (it is a context manager). Processes that open a new home at once create its databases and
    set the limits one after the other (Dagster's read-then-insert of a limit row fails with ``UNIQUE constraint
    failed: concurrency_limits`` when two race)."""
    from dagster import DagsterInstance

    path = ensure_dagster_home(home)
    with _home_lock(path):  # the first opening also creates the SQLite databases
        instance = DagsterInstance.from_config(str(path))
        try:
            known = instance.event_log_storage.get_concurrency_keys()
            for pool, limit in POOL_LIMITS.items():
                if pool not in known:
                    instance.event_log_storage.set_concurrency_slots(pool, limit)
        except BaseException:
            instance.dispose()
            raise
    return instance


@functools.cache
def exit_with_parent_process() -> None:
    """Kill this process the moment the process that started it dies, when multiprocessing started it (once per
    process; a no-op in a main process, so in ``materialize`` and ``execute_in_process``).

    Called when a step sets up its resources: each step of a queued run runs in a process that the run worker
    spawns, and without this it outlives a run worker killed outright (SIGKILL, out of memory), still writing its
    partition after the run is marked failed and its pool slots are freed, beside the run's retry or the next
    run of that partition."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def kill_when_parent_exits() -> None:
        wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=kill_when_parent_exits, name="exit-with-parent", daemon=True).start()


# Tags of a run executed in an eemo process (the demo's runs): which process runs it, so a later command can tell a
# run whose process was killed (it stays STARTED for ever: no run worker or monitor reports it) from a live one.
PID_TAG, HOST_TAG, PROCESS_START_TAG = "eemo/pid", "eemo/host", "eemo/process_start"


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (None when there is none), to tell it from a later one given its id."""
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def process_tags() -> dict[str, str]:
    """Run tags naming this process: its id, host and start time."""
    import socket

    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(), PROCESS_START_TAG: _process_start(os.getpid()) or ""}


def fail_orphaned_runs(instance) -> list:
    """Report as failed every unfinished run tagged with a process of this host that no longer runs (killed mid-run:
    its run would stay STARTED); returns those runs. Runs of other hosts, or without the tags, are left alone."""
    import socket

    from dagster import DagsterRunStatus, RunsFilter

    host = socket.gethostname()
    unfinished = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    orphans = []
    for run in instance.get_runs(RunsFilter(statuses=unfinished, tags={HOST_TAG: host})):
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or _process_start(int(pid)) == run.tags.get(PROCESS_START_TAG):
            continue
        instance.report_run_failed(run, f"the process that ran it (pid {pid} on {host}) is gone: it was killed or "
                                        "crashed before the run ended")
        orphans.append(run)
    return orphans
