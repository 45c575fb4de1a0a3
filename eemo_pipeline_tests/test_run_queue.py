"""The run queue and run monitoring of the project's dagster.yaml, on a real daemon: a run worker killed while
its step holds an `llm` slot is failed and the slot freed within a minute; two runs of one partition queue
behind each other while another partition's run goes ahead. The runs come from run_queue_location.py (an asset
that takes an `llm` slot and sleeps), launched with `dagster job launch` as the UI or a sensor would queue them."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from eemo_pipeline.automation import WRITES_TAG
from eemo_pipeline.definitions import defs
from eemo_pipeline.instance import ensure_dagster_home, exit_with_parent_process, get_instance
from eemo_pipeline.jobs import PIPELINE_STAGES

REPO = Path(__file__).resolve().parents[1]
LOCATION = Path(__file__).with_name("run_queue_location.py")
BIN = Path(sys.executable).parent
ENDED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class Daemon:
    root: Path
    home: Path
    workspace: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """`dagster-daemon run` on a fresh home with the repository's dagster.yaml and the pipeline's pool limits."""
    root = tmp_path_factory.mktemp("run_queue")
    home = ensure_dagster_home(root / "dagster_home")
    get_instance(home).dispose()
    workspace = root / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - python_file: {LOCATION}\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    with open(root / "daemon.log", "wb") as log:
        process = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=root, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Daemon(root, home, workspace, env)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def instance(daemon: Daemon) -> Iterator[DagsterInstance]:
    with DagsterInstance.from_config(str(daemon.home)) as opened:
        yield opened


def launch(daemon: Daemon, partition: str, seconds: float, **tags: str) -> tuple[str, subprocess.Popen]:
    """Queue a run of `hold_llm` for ``partition`` that sleeps ``seconds``; returns its id and the launcher."""
    run_id = str(uuid.uuid4())
    config = {"ops": {"holds_llm_slot": {"config": {"seconds": seconds}}}}
    launcher = subprocess.Popen(
        [str(BIN / "dagster"), "job", "launch", "-w", str(daemon.workspace), "-j", "hold_llm", "--run-id", run_id,
         "--tags", json.dumps({"dagster/partition": partition, **tags}), "--config-json", json.dumps(config)],
        cwd=daemon.root, env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return run_id, launcher


def wait_for(what: str, condition: Callable[[], object], timeout: float, daemon: Daemon) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    log = (daemon.root / "daemon.log").read_text(errors="replace")[-3000:]
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; daemon log tail:\n{log}")


def pids(instance: DagsterInstance, run_id: str, kind: DagsterEventType, message_start: str) -> list[int]:
    """Process ids that the run's ``kind`` events starting with ``message_start`` name."""
    return [int(event.dagster_event.event_specific_data.metadata["pid"].value)
            for event in instance.all_logs(run_id, of_type=kind)
            if event.message and event.message.startswith(message_start)]


def slot_holders(instance: DagsterInstance) -> set[str]:
    return instance.event_log_storage.get_concurrency_info("llm").active_run_ids


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_runs_queue_per_partition_and_per_unpartitioned_output() -> None:
    limits = yaml.safe_load((REPO / "dagster.yaml").read_text())["concurrency"]["runs"]["tag_concurrency_limits"]
    per_value = {limit["key"] for limit in limits if limit == {"key": limit["key"], "limit": 1,
                                                             "value": {"applyLimitPerUniqueValue": True}}}
    assert per_value == {"dagster/partition", WRITES_TAG}
    written = {}
    for name, partitioned in PIPELINE_STAGES:
        job = defs.resolve_job_def(name)
        assert (job.partitions_def is not None) == partitioned
        if not partitioned:
            written[name] = job.tags[WRITES_TAG]
    assert len(set(written.values())) == len(written), written
    from eemo_pipeline.training.presets import TABLE4_PRESETS

    # Table 4's ablation jobs write the same checkpoints as train_models: they queue behind one another.
    assert {defs.resolve_job_def(p.job).tags[WRITES_TAG] for p in TABLE4_PRESETS} == {written["train_models"]}


def _armed_sleeper(pids: multiprocessing.Queue) -> None:
    exit_with_parent_process()
    pids.put(os.getpid())
    time.sleep(60)


def _parent_of_armed_sleeper(pids: multiprocessing.Queue) -> None:
    child = multiprocessing.get_context("spawn").Process(target=_armed_sleeper, args=(pids,))
    child.start()
    child.join()


def test_a_process_that_armed_exit_with_parent_process_dies_with_its_parent() -> None:
    exit_with_parent_process()  # pytest is no multiprocessing child: nothing to watch
    assert "exit-with-parent" not in {thread.name for thread in threading.enumerate()}
    context = multiprocessing.get_context("spawn")
    pids = context.Queue()
    parent = context.Process(target=_parent_of_armed_sleeper, args=(pids,))
    parent.start()
    child = pids.get(timeout=60)  # armed
    assert alive(child)
    parent.kill()
    parent.join()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)


@pytest.mark.slow
def test_killed_run_worker_is_failed_and_frees_its_llm_slot(daemon: Daemon, instance: DagsterInstance) -> None:
    # No automatic retry (dagster.yaml retries crashed runs), so that the next run below is launched here.
    run_id, launcher = launch(daemon, "emotion6", seconds=300, **{"dagster/max_retries": "0"})
    assert launcher.wait(60) == 0, launcher.stdout.read().decode()
    wait_for("the step to hold an llm slot", lambda: run_id in slot_holders(instance), 60, daemon)
    wait_for("the step to start", lambda: instance.get_records_for_run(
        run_id, of_type=DagsterEventType.STEP_START).records, 30, daemon)
    [worker] = pids(instance, run_id, DagsterEventType.ENGINE_EVENT, "Started process for run")
    [step] = pids(instance, run_id, DagsterEventType.STEP_WORKER_STARTED, "Executing step")
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()

    wait_for("the run to end", lambda: instance.get_run_by_id(run_id).status in ENDED, 60, daemon)
    marked = time.monotonic() - killed
    assert instance.get_run_by_id(run_id).status in {DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    wait_for("the llm slot to be freed", lambda: run_id not in slot_holders(instance), 60 - marked, daemon)
    freed = time.monotonic() - killed
    print(f"run marked failed {marked:.1f} s and its llm slot freed {freed:.1f} s after the SIGKILL")
    assert freed < 60
    assert not alive(step), "the killed run's step process still runs"

    # The next run of the same partition is not blocked by the dead one.
    next_id, launcher = launch(daemon, "emotion6", seconds=0.1)
    assert launcher.wait(60) == 0, launcher.stdout.read().decode()
    wait_for("the next run to end", lambda: instance.get_run_by_id(next_id).status in ENDED, 60, daemon)
    assert instance.get_run_by_id(next_id).status == DagsterRunStatus.SUCCESS


@pytest.mark.slow
def test_runs_of_one_partition_queue_and_other_partitions_go_ahead(daemon: Daemon,
                                                                    instance: DagsterInstance) -> None:
    launched = [launch(daemon, partition, seconds=8) for partition in ("emotion6", "emotion6", "oasis")]
    for _, launcher in launched:
        assert launcher.wait(60) == 0, launcher.stdout.read().decode()
    ids = [run_id for run_id, _ in launched]
    wait_for("all three runs to end", lambda: all(instance.get_run_by_id(i).status in ENDED for i in ids), 85, daemon)
    records = {record.dagster_run.run_id: record for record in instance.get_run_records()}
    assert all(records[i].dagster_run.status == DagsterRunStatus.SUCCESS for i in ids)

    first, second = sorted((records[i] for i in ids[:2]), key=lambda record: record.start_time)
    other = records[ids[2]]
    print("runs (start, end) from the first start: " + ", ".join(
        f"{name} ({record.start_time - first.start_time:.1f}, {record.end_time - first.start_time:.1f})"
        for name, record in (("emotion6", first), ("emotion6", second), ("oasis", other))))
    assert second.start_time >= first.end_time, "two runs of emotion6 overlapped"
    assert other.start_time < second.end_time and other.end_time > first.start_time, \
        "the oasis run waited for the emotion6 runs"
