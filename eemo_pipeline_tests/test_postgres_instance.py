"""docs/deploy.md's "Postgres instance storage" steps, followed as written against a real PostgreSQL server: the
instance from deploy/dagster-postgres.yaml with its settings from DAGSTER_PG_*, the pool limits set with the
documented commands, the pipeline's code location (workspace.yaml) served by `dagster-webserver` and
`dagster-daemon run`. Runs of `ingest_sources` for a partition, a duplicate of it, and two other partitions go in
through the webserver's GraphQL API; the duplicate waits in the queue until its twin has ended (dagster.yaml's
tag_concurrency_limits) while the other partitions, queued after it, go ahead; runs, events and pool limits are in
PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus

from eemo_pipeline_tests.postgres_server import PostgresServer

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "deploy.md"
BIN = Path(sys.executable).parent
# The documented steps, run here exactly so (the webserver on a free port instead of 3000).
CONNECTION_VARIABLES = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD",
                        "DAGSTER_PG_DB")
INSTALL = "pip install '.[postgres]'"
COPY_CONFIG = 'mkdir -p "$DAGSTER_HOME" && cp deploy/dagster-postgres.yaml "$DAGSTER_HOME/dagster.yaml"'
POOL_LIMITS = ("dagster instance concurrency set llm 8", "dagster instance concurrency set gpu 1")
WEBSERVER = "dagster-webserver -w workspace.yaml -h 127.0.0.1 -p {port}"
DAEMON = "dagster-daemon run -w workspace.yaml"
JOB, PARTITIONS = "ingest_sources", ("emotion6", "oasis", "gaped")
ENDED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
STARTUP_TIMEOUT_S, RUNS_TIMEOUT_S = 240, 420


def _postgres_section() -> str:
    text = DOC.read_text()
    start = text.index("## Postgres instance storage")
    return text[start:text.index("\n## ", start + 1)]


def test_the_deploy_doc_gives_the_steps_this_module_runs() -> None:
    section = _postgres_section()
    for step in (INSTALL, COPY_CONFIG, *POOL_LIMITS, WEBSERVER.format(port=3000), DAEMON):
        assert step in section, f"docs/deploy.md no longer says: {step}"
    [exported] = [line for line in section.splitlines() if line.startswith("export DAGSTER_PG_")]
    assert set(re.findall(r"(DAGSTER_PG_\w+)=", exported)) == set(CONNECTION_VARIABLES)


class Deployment:
    """The documented processes, each in its own process group with its log under ``work``."""

    def __init__(self, work: Path, env: dict[str, str], port: int):
        self.work, self.env, self.port = work, env, port
        self.url, self.home = f"http://127.0.0.1:{port}", Path(env["DAGSTER_HOME"])
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, step: str) -> None:
        with open(self.work / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                ["bash", "-c", f"exec {step}"], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}\n{self.log_tails()}")

    def log_tails(self) -> str:
        return "\n".join(f"--- {name}\n" + (self.work / f"{name}.log").read_text(errors="replace")[-2500:]
                         for name in self.processes)

    def stop(self) -> None:
        """SIGTERM to each process group (the code servers end with their webserver or daemon), then SIGKILL."""
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(what: str, condition: Callable[[], object], timeout_s: float, logs: Callable[[], str]) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{logs()}")


@pytest.fixture(scope="module")
def deployment(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("postgres_deployment")
    variables = {**postgres_server.environment(), "DAGSTER_PG_DB": postgres_server.create_database("instance"),
                 "DAGSTER_HOME": str(work / "dagster_home")}
    env = {name: value for name, value in os.environ.items() if not name.startswith(("EEMO_", "DAGSTER_"))}
    env |= {**variables, "PYTHONPATH": str(REPO), "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    started = time.monotonic()
    for step in (COPY_CONFIG, *POOL_LIMITS):
        done = subprocess.run(["bash", "-c", step], cwd=REPO, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=300)
        assert done.returncode == 0, f"{step}:\n{done.stdout}{done.stderr}"
    deployment = Deployment(work, env, _free_port())
    try:
        deployment.start("webserver", WEBSERVER.format(port=deployment.port))

        def serving() -> bool:
            deployment.check_alive()
            try:
                with urllib.request.urlopen(f"{deployment.url}/server_info", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        _wait("the webserver to serve", serving, STARTUP_TIMEOUT_S, deployment.log_tails)
        print(f"instance set up and webserver serving {time.monotonic() - started:.1f} s after the first step")
        with pytest.MonkeyPatch.context() as patch:  # this process opens the same instance
            for name, value in variables.items():
                patch.setenv(name, value)
            yield deployment
    finally:
        deployment.stop()


@pytest.fixture
def instance(deployment: Deployment) -> Iterator[DagsterInstance]:
    with DagsterInstance.get() as opened:
        yield opened


@pytest.mark.slow
def test_the_instance_is_postgres_with_the_documented_pool_limits(deployment: Deployment,
                                                                  instance: DagsterInstance) -> None:
    assert {type(storage).__name__ for storage in (instance.run_storage, instance.event_log_storage,
                                                   instance.schedule_storage)} == {
        "PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"}
    assert {pool: instance.event_log_storage.get_concurrency_info(pool).slot_count for pool in ("llm", "gpu")} == {
        "llm": 8, "gpu": 1}
    assert not list(deployment.home.rglob("*.db")), "an SQLite database appeared in the Postgres instance's home"


def _launched_at(instance: DagsterInstance, run_id: str) -> float:
    """When the daemon took the run off the queue and launched it (its RUN_STARTING event)."""
    [record] = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_STARTING).records
    return record.timestamp


@pytest.mark.slow
def test_partition_runs_queue_through_the_webserver_and_the_daemon(deployment: Deployment,
                                                                    instance: DagsterInstance) -> None:
    from dagster_graphql import DagsterGraphQLClient

    from eemo_pipeline.resources import resource_config
    from eemo_pipeline.sample import write_sample
    from eemo_pipeline.settings import Settings

    roots = write_sample(deployment.work / "sample", PARTITIONS)
    # Each run's steps in its run worker (no process per step): the queue is what is tested, and 2 cores are few.
    run_config = {**resource_config(Settings(storage=deployment.work / "storage", roots=roots)),
                  "execution": {"config": {"in_process": {}}}}
    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.port)
    # The duplicate is queued right behind its twin, before the other partitions: a queue that held runs back by
    # anything but their partition would launch it before them.
    twin, duplicate, *others = [
        client.submit_job_execution(JOB, run_config=run_config, tags={"dagster/partition": partition})
        for partition in (PARTITIONS[0], PARTITIONS[0], *PARTITIONS[1:])]
    ids = [twin, *others, duplicate]
    assert {instance.get_run_by_id(run_id).status for run_id in ids} == {DagsterRunStatus.QUEUED}
    # The daemon starts with all four in the queue, so that its first pass decides about all of them at once.
    started = time.monotonic()
    deployment.start("daemon", DAEMON)

    def all_ended() -> bool:
        deployment.check_alive()
        # The duplicate's status is read first: while its twin has not ended, it must still be queued.
        waiting = instance.get_run_by_id(duplicate).status
        if instance.get_run_by_id(twin).status not in ENDED:
            assert waiting == DagsterRunStatus.QUEUED, f"the duplicate left the queue ({waiting}) before its twin ended"
        return all(instance.get_run_by_id(run_id).status in ENDED for run_id in ids)

    _wait("the four runs to end", all_ended, RUNS_TIMEOUT_S, deployment.log_tails)
    seconds = time.monotonic() - started
    records = {record.dagster_run.run_id: record for record in instance.get_run_records()}
    assert [records[run_id].dagster_run.status for run_id in ids] == [DagsterRunStatus.SUCCESS] * 4, \
        deployment.log_tails()
    first = min(records[run_id].start_time for run_id in ids)
    print(f"four runs ended {seconds:.1f} s after the daemon started; (start, end) from the first start: " + ", ".join(
        f"{records[run_id].dagster_run.tags['dagster/partition']} ({records[run_id].start_time - first:.1f}, "
        f"{records[run_id].end_time - first:.1f})" for run_id in ids))
    assert records[duplicate].start_time >= records[twin].end_time, "two runs of one partition overlapped"
    assert _launched_at(instance, duplicate) >= records[twin].end_time
    for other in others:  # the other partitions went past the waiting duplicate
        assert _launched_at(instance, other) < _launched_at(instance, duplicate)
    # The runs' outputs are on the storage, and the runs and their events in PostgreSQL.
    assert all((deployment.work / "storage" / "raw_annotations" / f"{p}.parquet").is_file() for p in PARTITIONS)
    assert instance.get_materialized_partitions(AssetKey("raw_annotations")) == set(PARTITIONS)
