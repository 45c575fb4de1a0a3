from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from eemo_pipeline.cli import main
from eemo_pipeline.sources import SOURCES
from eemo_pipeline_tests.conftest import DemoRun

REPO = Path(__file__).resolve().parents[1]

EEMO = Path(sys.executable).with_name("eemo")


@pytest.mark.parametrize("command", [[], ["sample"], ["demo"], ["serve-offline"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: eemo" in capsys.readouterr().out


def test_sample_writes_every_source_in_its_native_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*SOURCES, "vad_lexicon"])
    assert (tmp_path / "emotion6" / "ground_truth.txt").read_text().startswith("[image_filename]\t[valence]")
    assert (tmp_path / "emotic" / "Annotations" / "Annotations.mat").read_bytes()[:6] == b"MATLAB"
    assert (tmp_path / "vad_lexicon" / "Ratings_Warriner_et_al.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert len(capsys.readouterr().out.splitlines()) == len(SOURCES) + 1


@pytest.mark.slow
def test_demo_materializes_every_partition_into_the_instance(demo_run: DemoRun) -> None:
    tmp_path, env, done = demo_run.root, demo_run.env, demo_run.done
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed runs" not in done.stdout
    for source in SOURCES:
        for asset in ("raw_annotations", "image_manifest", "mapped_labels", "vad_scores", "vad_validation",
                      "image_descriptions", "emotion_reasoning", "descriptive_answers"):
            assert (tmp_path / "storage" / asset / f"{source}.parquet").is_file()
    for asset in ("label_taxonomy", "emotic_vad_centroids", "vad_lexicon", "eemodb_qa", "eemodb_assess",
                  "sft_dataset", "grpo_dataset", "sft_checkpoint", "grpo_checkpoint", "benchmark_eemo_bench",
                  "benchmark_cross_domain", "benchmark_report"):
        assert (tmp_path / "storage" / f"{asset}.parquet").is_file()
    # Both stages trained the tiny offline model, and the report compares all three models with the paper.
    for stage in ("sft", "grpo"):
        [(adapter,)] = duckdb.sql(f"select checkpoint_path from '{tmp_path}/storage/{stage}_checkpoint.parquet'").fetchall()
        assert Path(tmp_path, "storage", adapter, "adapter_config.json").is_file()  # stored relative to the root
    report = (tmp_path / "storage" / "benchmark_report" / "report.md").read_text()
    assert all(name in report for name in ("base", "sft", "grpo", "published"))
    assert "vad_lexicon: 13915 rows" in done.stdout
    assert "eemo-offline-rules-v1 (offline rules, not a language model)" in done.stdout
    models = duckdb.sql(f"select distinct model from '{tmp_path}/storage/image_descriptions/*.parquet'").fetchall()
    assert models == [("eemo-offline-rules-v1",)]
    # Lineage: every materialization recorded, the database built, and `eemo sql` answering from it.
    lineage = subprocess.run(
        [str(EEMO), "sql", "select count(distinct asset) assets, count(*) records from materializations"],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert lineage.returncode == 0, lineage.stderr
    assert f"| 20     | {8 * len(SOURCES) + 12:<7} |" in lineage.stdout  # 8 partitioned assets x sources + 12
    from eemo_pipeline.demo import ui_command

    assert done.stdout.rstrip().splitlines()[-1].strip() == ui_command(tmp_path / "dagster_home", tmp_path / "storage")
    counts = duckdb.sql(
        f"select source, count(*) from '{tmp_path}/storage/raw_annotations/*.parquet' group by source"
    ).fetchall()
    assert {source for source, _ in counts} == set(SOURCES)

    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    with DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        for job in ("ingest_sources", "refine_sources", "generate_text"):
            runs = instance.get_runs(RunsFilter(job_name=job))
            assert len(runs) == len(SOURCES) and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
            assert {r.tags["dagster/partition"] for r in runs} == set(SOURCES)
        assert [r.status for r in instance.get_runs(RunsFilter(job_name="reference_tables"))] == [DagsterRunStatus.SUCCESS]
        assert instance.event_log_storage.get_concurrency_info("llm").slot_count == 8


def test_demo_folders_are_held_by_one_process_and_released_when_it_dies(tmp_path: Path) -> None:
    from eemo_pipeline.demo import FolderInUse, exclusive_folders

    folders = [tmp_path / "sample", tmp_path / "storage", tmp_path / "home"]
    code = ("import sys, time\nfrom pathlib import Path\nfrom eemo_pipeline.demo import exclusive_folders\n"
            "with exclusive_folders([Path(p) for p in sys.argv[1:]]):\n    print('held', flush=True)\n"
            "    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, *map(str, folders)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for folder in folders:
            with pytest.raises(FolderInUse, match=f"another eemo demo \\(process {holder.pid}\\) is using {folder}"):
                with exclusive_folders([tmp_path / "elsewhere", folder]):
                    pass
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops its locks
        holder.wait()
    with exclusive_folders(folders):
        assert (tmp_path / "home" / ".eemo-demo.lock").read_text() == f"{os.getpid()}\n"


@pytest.mark.slow
def test_a_second_demo_on_the_same_folder_or_dagster_home_refuses_and_the_first_completes(demo_run: DemoRun) -> None:
    """Issue 19: two `eemo demo` in one folder, or on one new Dagster home, ran into each other and one crashed
    (FileNotFoundError; `UNIQUE constraint failed: concurrency_limits`). The session's demo started two rivals
    once under way (``conftest.run_demo``): each refused at once, naming the folder, and the first completed."""
    assert len(demo_run.rivals) == 2, "the demo ended before its rivals could start:\n" + demo_run.done.stdout
    for second in demo_run.rivals:
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"eemo demo: another eemo demo (process {demo_run.pid}) is using" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr and second.stdout == ""
    # Refused before writing anything: no sample, no output.
    assert not (demo_run.rival_root / "sample").exists() and not list(demo_run.rival_root.rglob("*.parquet"))
    assert demo_run.done.returncode == 0, demo_run.done.stdout[-3000:] + demo_run.done.stderr[-3000:]
    assert "failed runs" not in demo_run.done.stdout


def test_bad_targets_fail_with_a_message_naming_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Hostile probe: each of these gave a traceback (or, for `;`, an empty table and exit 0)."""
    import socket

    for target in ("/dev/null", str(tmp_path / "a-file")):
        Path(tmp_path / "a-file").write_text("x")
        assert main(["sample", target]) == 2
        assert f"eemo sample: {target} is not a folder" in capsys.readouterr().err

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert main(["serve-offline", "--port", str(port)]) == 2
        assert f"eemo serve-offline: cannot listen on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err
        # The failed server left no signal blocked: every process started later from here would inherit it
        # (Dagster's compute-log `tail` then outlived each step by 60 s in the demos that followed).
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
    assert main(["serve-offline", "--port", "99999"]) == 2
    assert "port 99999 is not a TCP port" in capsys.readouterr().err

    missing = tmp_path / "no-such-corpus"
    assert main(["vad-bounds", "--corpus", str(missing)]) == 2
    assert f"reference corpus {missing} not found" in capsys.readouterr().err

    (tmp_path / "storage").mkdir()
    for sql in (";", " ; ;", "-- only a comment"):
        assert main(["sql", "--storage", str(tmp_path / "storage"), sql]) == 1
        assert "eemo sql: the query holds no SQL statement" in capsys.readouterr().err


def _poll(what: str, condition, timeout: float = 600, interval: float = 0.5):
    """Poll ``condition`` until it returns something true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(interval)
    return value


@pytest.mark.slow
def test_a_killed_demo_leaves_no_started_run_and_no_offline_server(tmp_path: Path) -> None:
    """Hostile probe: after `kill -9` of a demo its run stayed STARTED for ever (in `eemo status` and the UI) and its
    offline model server kept serving with parent 1."""
    import psutil
    from dagster import DagsterInstance, DagsterRunStatus

    from eemo_pipeline.instance import HOST_TAG, PID_TAG

    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    folders = ["--sample-dir", str(tmp_path / "sample"), "--storage", str(tmp_path / "storage"),
               "--dagster-home", str(home)]
    with open(tmp_path / "demo.log", "wb") as log:
        demo = subprocess.Popen([sys.executable, "-m", "eemo_pipeline.cli", "demo", *folders], cwd=tmp_path, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        def started_run() -> str | None:
            """A STARTED run of one partition (the demo's first run observes all sources), read from the run
            database read-only: a DagsterInstance opened here while the demo creates that database would race
            it to stamp the schema."""
            try:
                with contextlib.closing(sqlite3.connect(f"file:{home / 'history' / 'runs.db'}?mode=ro",
                                                        uri=True)) as db:
                    row = db.execute("SELECT runs.run_id FROM runs JOIN run_tags ON runs.run_id = run_tags.run_id "
                                     "WHERE runs.status = 'STARTED' AND run_tags.key = 'dagster/partition'").fetchone()
            except sqlite3.OperationalError:  # not created yet
                return None
            return row[0] if row else None

        run_id = _poll("a STARTED partition run of the demo", lambda: started_run() or demo.poll() is not None,
                       interval=0.2)
        assert demo.poll() is None, (tmp_path / "demo.log").read_text()
        [server] = [child for child in psutil.Process(demo.pid).children()
                    if "eemo_pipeline.generation.offline_server" in child.cmdline()]
    finally:
        demo.kill()  # SIGKILL to the demo alone: nothing of it runs any clean-up
        demo.wait()

    def server_gone() -> bool:
        try:
            return server.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    _poll("the offline server to end with the demo", server_gone, timeout=60)
    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
    assert run.status == DagsterRunStatus.STARTED and run.tags[PID_TAG] == str(demo.pid) and run.tags[HOST_TAG]

    done = subprocess.run([sys.executable, "-m", "eemo_pipeline.cli", "status", "--dagster-home", str(home),
                           "--storage", str(tmp_path / "storage")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert (f"eemo status: run {run.run_id[:8]} ({run.job_name}) was left STARTED by process {demo.pid}, which is "
            "gone: marked failed") in done.stderr
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    # The killed run's partition is failed for what it had not yet materialized.
    states = [line.split()[2] for line in done.stdout.splitlines()
              if len(line.split()) > 2 and line.split()[1] == run.tags["dagster/partition"]]
    assert "failed" in states, done.stdout
