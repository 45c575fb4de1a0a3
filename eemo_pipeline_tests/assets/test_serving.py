"""Serving the describer beyond one process, in real Dagster runs of ``image_descriptions`` (issue 21), as
docs/deploy.md describes it: two replicas in ``EEMO_DESCRIBER_BASE_URL``, one stopped mid-run; a managed model
server (the offline server's command line) killed mid-run with SIGKILL to its process group, restarted, and gone
after the run; a command that never answers fails the step within its start timeout with the end of its log."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from dagster import DagsterEventType, instance_for_test, materialize

from eemo_pipeline.assets.generation import CACHE_FILE, image_descriptions
from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations
from eemo_pipeline.assets.labels import label_taxonomy, mapped_labels
from eemo_pipeline.assets.vad import vad_lexicon, vad_scores
from eemo_pipeline.generation.offline_server.chat_api import DEFAULT_MODEL
from eemo_pipeline.generation.offline_server.faults import FaultPlan
from eemo_pipeline.instance import ensure_dagster_home, get_instance
from eemo_pipeline.resources import (
    MODEL_SERVER_LOGS,
    InputPathsResource,
    LLMEndpointResource,
    ManagedModelServer,
    ParquetIOManager,
    StorageResource,
)
from eemo_pipeline.sample import SAMPLE_LEXICON, write_sample
from eemo_pipeline.settings import LEXICON_ENV, endpoint_variable, root_variable
from eemo_pipeline_tests.assets.conftest import generation_resources, materialize_generation_inputs
from eemo_pipeline_tests.generation.test_endpoint_faults import wait_for
from eemo_pipeline_tests.generation.test_replicas import Replica

SOURCE = "affection"
ASSETS = [raw_annotations, image_manifest, label_taxonomy, vad_lexicon, mapped_labels, vad_scores, image_descriptions]
# The offline server as a user's command line would start it; the shell records its pid (exec keeps it).
OFFLINE_SERVER = f"{sys.executable} -m eemo_pipeline.generation.offline_server --port {{port}} --latency 0.3"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """What ``image_descriptions`` reads, built once: its storage, and the variables that point at the sample."""
    work = tmp_path_factory.mktemp("upstream")
    roots = write_sample(work / "sample", [SOURCE, "emotic"])  # label_taxonomy reads emotic
    variables = {root_variable(source): str(root) for source, root in roots.items()}
    variables[LEXICON_ENV] = str(work / "sample" / SAMPLE_LEXICON)
    (work / "dagster_home").mkdir()
    with pytest.MonkeyPatch.context() as patch, instance_for_test(temp_dir=str(work / "dagster_home")) as instance:
        for name, value in variables.items():
            patch.setenv(name, value)
        resources = generation_resources(work / "storage")
        materialize_generation_inputs(ASSETS, roots, SOURCE, resources, instance)
    return work / "storage", variables


class Run:
    """One test's run of ``image_descriptions``: a copy of the upstream storage (its own response cache), its own
    Dagster home, the sample's variables set and no describer endpoint in the environment."""

    def __init__(self, upstream: tuple[Path, dict[str, str]], work: Path, patch: pytest.MonkeyPatch):
        storage, variables = upstream
        self.variables = variables
        self.storage = work / "storage"
        shutil.copytree(storage, self.storage)
        self.home = work / "dagster_home"
        self.home.mkdir()
        for name, value in variables.items():
            patch.setenv(name, value)
        for item in ("base_url", "model", "api_key"):
            patch.delenv(endpoint_variable("describer", item), raising=False)
        self.store = StorageResource(root=str(self.storage))
        self.logs: list[str] = []

    def server(self, command: str, **fields: object) -> ManagedModelServer:
        return ManagedModelServer(storage=self.store, command=command, **fields)

    def start(self, describer: LLMEndpointResource):
        """The run in a thread; ``finished()`` waits for it and gives its result and its seconds; ``logs`` then
        holds the messages of its event log."""
        out: dict[str, object] = {}
        resources = {"io_manager": ParquetIOManager(storage=self.store), "storage": self.store,
                     "input_paths": InputPathsResource(), "describer": describer}

        def run() -> None:
            started = time.monotonic()
            with instance_for_test(temp_dir=str(self.home)) as instance:
                result = materialize(ASSETS, selection=[image_descriptions], partition_key=SOURCE,
                                     resources=resources, instance=instance, raise_on_error=False)
                out["seconds"] = time.monotonic() - started
                self.logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
            out["result"] = result

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def finished():
            thread.join(300)
            assert not thread.is_alive(), "the run did not finish"
            return out["result"], out["seconds"]

        return finished

    def cached_answers(self) -> int:
        path = self.storage / CACHE_FILE
        if not path.exists():
            return 0
        try:
            with sqlite3.connect(path, timeout=30) as db:
                return db.execute("select count(*) from responses").fetchone()[0]
        except sqlite3.OperationalError:  # the step has not created the table yet
            return 0


@pytest.fixture
def runs(upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    return Run(upstream, tmp_path, monkeypatch)


def metadata(result) -> dict[str, object]:
    (materialization,) = result.asset_materializations_for_node("image_descriptions")
    return {key: entry.value for key, entry in materialization.metadata.items()}


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def test_image_descriptions_over_two_replicas_one_stopped_mid_run(runs: Run, monkeypatch) -> None:
    first, stopped = Replica(faults=FaultPlan(latency_s=0.3)).start(), Replica(faults=FaultPlan(latency_s=0.3)).start()
    try:
        # As docs/deploy.md sets them: both replicas in the variable, the model beside it.
        monkeypatch.setenv(endpoint_variable("describer", "base_url"), f"{first.url},{stopped.url}")
        monkeypatch.setenv(endpoint_variable("describer", "model"), DEFAULT_MODEL)
        finished = runs.start(LLMEndpointResource(role="describer", concurrency=2, health_interval_s=0.2))
        wait_for(lambda: stopped.answered() >= 2, "two descriptions from the replica to stop", 120)
        stopped.stop()
        result, _ = finished()
    finally:
        first.stop()
        stopped.stop()
    assert result.success
    values = metadata(result)
    assert values["answered"] == values["items"] >= 8 and values["quarantined"] == 0
    assert values["endpoint"] == f"{first.url},{stopped.url}"
    by_replica = values["requests_by_replica"]
    assert set(by_replica) == {first.url, stopped.url} and by_replica[stopped.url] >= 2
    # The stopped replica was found away and skipped; the other one answered the rest.
    assert values["replica_outages"] >= 1 and values["health_probes"] >= 1
    assert first.answered() + stopped.answered() == values["answered"]
    assert by_replica[stopped.url] - stopped.answered() <= 2


def test_a_managed_server_killed_mid_run_is_restarted_and_gone_after_the_run(runs: Run, tmp_path: Path) -> None:
    pids = tmp_path / "server.pids"
    command = f"sh -c 'echo $$ >> {pids}; exec {OFFLINE_SERVER}'"
    server = runs.server(command, start_timeout_s=120, max_restarts=2, stop_grace_s=10)
    # No EEMO_DESCRIBER_BASE_URL or _MODEL: the URL and the model come from the managed server.
    finished = runs.start(LLMEndpointResource(role="describer", concurrency=2, health_interval_s=0.2, server=server))
    wait_for(lambda: runs.cached_answers() >= 2, "two descriptions from the managed server", 180)
    killed = int(pids.read_text().split()[0])
    os.killpg(killed, signal.SIGKILL)  # the whole process group, as the OOM killer or a crash would leave it
    wait_for(lambda: len(pids.read_text().split()) == 2, "the server started again", 180)
    result, _ = finished()
    assert result.success
    values = metadata(result)
    assert values["answered"] == values["items"] >= 8 and values["quarantined"] == 0
    assert values["model"] == DEFAULT_MODEL and values["endpoint"].startswith("http://127.0.0.1:")
    assert values["replica_outages"] >= 1  # the client saw it away and waited for it
    (log,) = (runs.storage / MODEL_SERVER_LOGS).glob("*.log")
    text = log.read_text()
    assert text.count(": start ") == 2 and "listening on " in text  # two starts, the server's own output
    warnings = [message for message in runs.logs if "restarting it on port" in message]
    assert len(warnings) == 1 and f"(pid {killed}) exited with code -9" in warnings[0]
    # After the run: neither process is left (the restarted one was stopped with the step).
    assert [gone(int(pid)) for pid in pids.read_text().split()] == [True, True]


def test_a_managed_server_that_never_answers_fails_the_step_within_its_start_timeout(runs: Run, tmp_path: Path) -> None:
    pids = tmp_path / "server.pids"
    command = f"sh -c 'echo $$ >> {pids}; echo loading the weights of /models/qwen; exec sleep 600'"
    server = runs.server(command, start_timeout_s=3, stop_grace_s=2)
    finished = runs.start(LLMEndpointResource(role="describer", server=server))
    result, seconds = finished()
    assert not result.success and seconds < 60
    # The step's resources fail to start (in a step process of its own, that is the step's failure).
    (failure,) = [event for event in result.all_events if event.event_type == DagsterEventType.RESOURCE_INIT_FAILURE]
    assert failure.step_key == "image_descriptions"
    message = failure.event_specific_data.error.to_string()
    assert "did not answer GET http://127.0.0.1:" in message and "/v1/models within 3 s (start_timeout_s)" in message
    assert "loading the weights of /models/qwen" in message  # the end of its log
    assert not (runs.storage / "image_descriptions").exists()
    (pid,) = pids.read_text().split()
    assert gone(int(pid))


# --- docs/deploy.md, followed as written: its `dagster asset materialize` lines through the real CLI -------------

REPO = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).with_name("dagster")
RUN_CONFIG = "deploy/managed-vllm-run-config.yaml"


def documented_commands(section: str) -> list[list[str]]:
    """The ``dagster asset materialize`` command lines in the bash blocks of ``## <section>`` of docs/deploy.md."""
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in body.split("```bash\n")[1:]:
        for line in block.split("```", 1)[0].replace("\\\n", " ").splitlines():
            if line.startswith("dagster asset materialize "):
                commands.append(shlex.split(line))
    assert commands, f"no dagster asset materialize line under '## {section}' in docs/deploy.md"
    return commands


def run_cli(runs: Run, command: list[str], variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``command`` (a ``dagster ...`` line) in the repository with the run's storage, a Dagster home set up as the
    CLI's, the sample's variables and ``variables``."""
    home = ensure_dagster_home(runs.home / "cli")
    get_instance(home).dispose()
    env = {name: value for name, value in os.environ.items() if not name.startswith("EEMO_DESCRIBER_")}
    env |= {"DAGSTER_HOME": str(home), "EEMO_STORAGE": str(runs.storage), "PYTHONPATH": str(REPO),
            **runs.variables, **variables}
    return subprocess.run([str(DAGSTER), *command[1:]], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_the_documented_replicas_run(runs: Run) -> None:
    (command,) = documented_commands("Several vLLM replicas")
    assert command[-2:] == ["--partition", SOURCE]
    first, second = Replica().start(), Replica().start()
    try:  # two offline servers in place of the two `vllm serve` lines
        done = run_cli(runs, command, {endpoint_variable("describer", "base_url"): f"{first.url},{second.url}",
                                       endpoint_variable("describer", "model"): DEFAULT_MODEL})
    finally:
        first.stop()
        second.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr
    answered = first.answered() + second.answered()
    assert answered >= 8 and first.answered() >= answered // 4 and second.answered() >= answered // 4


@pytest.mark.slow
def test_the_documented_managed_server_run(runs: Run, tmp_path: Path) -> None:
    (command,) = documented_commands("A managed model server")
    assert command[-2:] == ["-c", RUN_CONFIG]
    config = yaml.safe_load((REPO / RUN_CONFIG).read_text())
    server = config["resources"]["describer_server"]["config"]
    assert server["command"].startswith("vllm serve ") and "--port {port}" in server["command"]
    pids = tmp_path / "server.pids"
    server["command"] = f"sh -c 'echo $$ >> {pids}; exec {OFFLINE_SERVER}'"  # the offline server in vLLM's place
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    done = run_cli(runs, [*command[:-1], str(tmp_path / "run.yaml")], {})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr and "model server at http://127.0.0.1:" in done.stderr
    (pid,) = pids.read_text().split()
    assert gone(int(pid))  # stopped with the step
    (log,) = (runs.storage / MODEL_SERVER_LOGS).glob("*.log")
    assert "listening on http://127.0.0.1:" in log.read_text()
    frame = pl.read_parquet(runs.storage / "image_descriptions" / f"{SOURCE}.parquet")
    assert frame.height >= 8 and set(frame["model"]) == {DEFAULT_MODEL}
