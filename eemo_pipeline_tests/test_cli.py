from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from eemo_pipeline.cli import main
from eemo_pipeline.sources import SOURCES
from eemo_pipeline_tests.conftest import DemoRun

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
    assert "dagster dev -w workspace.yaml -h 127.0.0.1" in done.stdout
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
