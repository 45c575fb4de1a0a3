"""Lineage records, the DuckDB database built from them and the Parquet outputs, its example queries and ``eemo sql``.

The fixture storage is the real demo's output (built once per module in a subprocess), plus small ``eemodb_qa``
and ``eemodb_assess`` files conforming to their contracts and pointing at the demo's images and generated texts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from eemo_pipeline import lineage
from eemo_pipeline.cli import format_table, main
from eemo_pipeline.contracts import table_contract
from eemo_pipeline.generation.templates import load_template
from eemo_pipeline.lineage import (
    EXAMPLE_QUERIES,
    MaterializationRecord,
    connect,
    database_path,
    file_data_version,
    query,
    record_materialization,
    refresh,
    write_lock,
)
from eemo_pipeline.sources import SOURCES
from eemo_pipeline.storage import asset_path, write_parquet
from eemo_pipeline_tests.conftest import DemoRun

REPO = Path(__file__).resolve().parents[1]
PARTITIONED = ("raw_annotations", "image_manifest", "mapped_labels", "vad_scores", "vad_validation",
               "image_descriptions", "emotion_reasoning", "descriptive_answers")
UNPARTITIONED = ("label_taxonomy", "emotic_vad_centroids", "vad_lexicon")


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo_storage(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's demo outputs (conftest.demo_run)."""
    assert demo_run.done.returncode == 0, demo_run.done.stdout + demo_run.done.stderr
    storage = tmp_path_factory.mktemp("lineage_demo") / "storage"
    shutil.copytree(demo_run.storage, storage)
    # These tests write their own records, databases and subset files: start from the outputs alone.
    shutil.rmtree(storage / "_lineage")
    (storage / "lineage.duckdb").unlink()
    for name in ("eemodb_qa", "eemodb_assess", "sft_dataset", "grpo_dataset"):
        (storage / f"{name}.parquet").unlink()
    return storage


def _qa_frames(storage: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Three QA rows and two Assess rows over real demo images; provenance names real generated_text keys."""
    raw = pl.read_parquet(storage / "raw_annotations" / "*.parquet")
    abstract_image = raw.filter(pl.col("source") == "abstract8").get_column("image_id").sort()[0]
    # Descriptions and reasoning are written for commented images only (Affection's), as the paper does.
    described = pl.read_parquet(storage / "image_descriptions" / "affection.parquet").get_column("image_id").sort()[0]
    oasis_image = raw.filter(pl.col("source") == "oasis").get_column("image_id").sort()[0]
    inputs = {"mapped_labels[emotion6]": "v-mapped", "descriptive_answers[affection]": "v-answers"}

    def provenance(*keys: str) -> str:
        generated = [{"key": k, "model": "eemo-offline-rules-v1", "template_version": "1"} for k in keys]
        return json.dumps({"inputs": inputs, "generated": generated})

    qa = pl.DataFrame([
        {"row_id": "qa00000000000001", "task": "description", "sub_task": "narrative", "template_id": "narrative@v1",
         "question": "Describe the feeling.", "options": None, "answer": "text",
         "image_paths": [f"affection/{described}"], "sources": ["affection"], "source_image_ids": [described],
         "provenance": provenance(f"affection/{described}/narrative", f"affection/{described}/describe")},
        {"row_id": "qa00000000000002", "task": "ranking", "sub_task": "comparative_identification",
         "template_id": "pair_ranking@v1", "question": "Which image is sadder?", "options": ["A", "B"], "answer": "B",
         "image_paths": ["emotion6/images/surprise/1.jpg", "emotion6/images/sadness/1.jpg"],
         "sources": ["emotion6", "emotion6"], "source_image_ids": ["surprise/1.jpg", "sadness/1.jpg"],
         "provenance": provenance("emotion6/surprise/1.jpg|sadness/1.jpg/pair_ranking")},
        {"row_id": "qa00000000000003", "task": "perception", "sub_task": "emotion_verification",
         "template_id": "verify@v1", "question": "Is this image sad?", "options": ["yes", "no"], "answer": "no",
         "image_paths": [f"abstract8/{abstract_image}"], "sources": ["abstract8"], "source_image_ids": [abstract_image],
         "provenance": provenance()},
    ])
    assess = pl.DataFrame([
        {"row_id": "as00000000000001", "task": "dominant_emotion", "sub_task": "dominant_emotion",
         "template_id": "dominant@v1", "question": "Which emotion?", "options": ["anger", "joy"], "answer": "A",
         "image_paths": ["emotion6/images/anger/1.jpg"], "sources": ["emotion6"], "source_image_ids": ["anger/1.jpg"],
         "provenance": provenance()},
        {"row_id": "as00000000000002", "task": "vad", "sub_task": "valence", "template_id": "vad@v1",
         "question": "Rate the valence.", "options": None, "answer": "0.4",
         "image_paths": [f"oasis/{oasis_image}"], "sources": ["oasis"], "source_image_ids": [oasis_image],
         "provenance": provenance()},
    ])
    return table_contract("eemodb_qa").conform(qa), table_contract("eemodb_assess").conform(assess)


@pytest.fixture(scope="module")
def subset_storage(demo_storage: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo storage with contract-conforming eemodb_qa / eemodb_assess and a built database."""
    storage = tmp_path_factory.mktemp("lineage_subsets") / "storage"
    shutil.copytree(demo_storage, storage)
    qa, assess = _qa_frames(storage)
    assert not table_contract("eemodb_qa").violations(qa)
    assert not table_contract("eemodb_assess").violations(assess)
    write_parquet(qa, asset_path(storage, "eemodb_qa"))
    write_parquet(assess, asset_path(storage, "eemodb_assess"))
    refresh(storage)
    return storage


@pytest.fixture
def storage(demo_storage: Path, tmp_path: Path) -> Path:
    """A private copy of the demo storage (tests that write records or rebuild the database)."""
    copy = tmp_path / "storage"
    shutil.copytree(demo_storage, copy)
    return copy


def _record(storage: Path, asset: str = "raw_annotations", partition: str | None = "emotion6", run_id: str = "run-1",
            **changes) -> MaterializationRecord:
    path = asset_path(storage, asset, partition)
    record = MaterializationRecord.for_output(
        storage, asset, partition, path, run_id=run_id, row_count=pl.read_parquet(path).height,
        code_version="1", input_data_versions={f"source_{partition}": "src-v1"} if partition else {},
    )
    return record if not changes else MaterializationRecord(**{**record.__dict__, **changes})


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )


def _finish(process: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, out + err
    return out


# ---------------------------------------------------------------------------------------------- records


def test_record_holds_the_output_hash_and_a_storage_relative_path(storage: Path) -> None:
    path = asset_path(storage, "raw_annotations", "emotion6")
    record = _record(storage)
    assert record.data_version == hashlib.sha256(path.read_bytes()).hexdigest() == file_data_version(path)
    assert record.file == "raw_annotations/emotion6.parquet"
    written = record_materialization(storage, record)
    assert written.parent == storage / "_lineage" / "records"
    assert written.name.startswith("run-1__raw_annotations__emotion6__") and written.suffix == ".json"
    raw = json.loads(written.read_text())
    assert raw["asset"] == "raw_annotations" and raw["partition"] == "emotion6" and raw["run_id"] == "run-1"
    assert raw["row_count"] == pl.read_parquet(path).height
    assert raw["input_data_versions"] == {"source_emotion6": "src-v1"}
    assert raw["materialized_at"].endswith("+00:00")
    assert not [p for p in written.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_records_from_concurrent_threads_and_processes_all_land(storage: Path) -> None:
    script = """
        import sys
        from pathlib import Path
        from eemo_pipeline.lineage import MaterializationRecord, record_materialization
        storage, tag = Path(sys.argv[1]), sys.argv[2]
        for i in range(40):
            record_materialization(storage, MaterializationRecord(
                asset="raw_annotations", partition="emotion6", run_id="same-run", data_version=f"{tag}-{i}",
                row_count=i, file="raw_annotations/emotion6.parquet"))
    """
    processes = [_python(script, str(storage), f"proc{n}") for n in range(2)]

    def write(tag: str) -> None:
        for i in range(40):
            record_materialization(storage, _record(storage, run_id="same-run", data_version=f"{tag}-{i}"))

    threads = [threading.Thread(target=write, args=(f"thread{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        _finish(process)

    files = sorted((storage / "_lineage" / "records").glob("same-run__*"))  # the demo's own records sit beside
    assert len(files) == 8 * 40 and len({f.name for f in files}) == 8 * 40
    versions = {json.loads(f.read_text())["data_version"] for f in files}
    assert len(versions) == 8 * 40
    refresh(storage)
    assert query(storage, "select count(*) n, count(distinct data_version) d from materializations "
                          "where run_id = 'same-run'").row(0) == (320, 320)


# ---------------------------------------------------------------------------------------------- database, locking


def test_refresh_builds_tables_from_records(storage: Path) -> None:
    record_materialization(storage, _record(storage))
    record_materialization(storage, _record(storage, "label_taxonomy", None))
    assert refresh(storage) == database_path(storage) == storage / "lineage.duckdb"
    rows = query(storage, "select asset, partition, run_id, row_count, file from materializations order by asset")
    assert rows.rows() == [
        ("label_taxonomy", None, "run-1", pl.read_parquet(storage / "label_taxonomy.parquet").height, "label_taxonomy.parquet"),
        ("raw_annotations", "emotion6", "run-1", pl.read_parquet(storage / "raw_annotations" / "emotion6.parquet").height,
         "raw_annotations/emotion6.parquet"),
    ]
    inputs = query(storage, "select asset, input_asset, input_partition, input_data_version from materialization_inputs")
    assert inputs.rows() == [("raw_annotations", "source_emotion6", None, "src-v1")]
    assert not list((storage / "_lineage").glob(".*partial*"))


def test_two_refreshes_at_once_both_succeed(storage: Path) -> None:
    record_materialization(storage, _record(storage))
    script = """
        import sys
        from pathlib import Path
        from eemo_pipeline.lineage import refresh
        print(refresh(Path(sys.argv[1])))
    """
    with write_lock(storage):  # hold the lock so that both processes are surely waiting at once
        processes = [_python(script, str(storage)) for _ in range(2)]
        time.sleep(1.5)
        assert all(p.poll() is None for p in processes), "a refresh finished while the lock was held"
        assert not database_path(storage).exists()
    outputs = [_finish(p) for p in processes]
    assert all(out.strip() == str(database_path(storage)) for out in outputs)
    assert query(storage, "select count(*) from materializations").item() == 1

    racing = [_python(script, str(storage)) for _ in range(3)]  # and without help: a plain race
    for process in racing:
        _finish(process)
    assert query(storage, "select count(*) from raw_annotations").item() > 0


def test_refresh_waits_for_the_lock_up_to_its_timeout(storage: Path) -> None:
    with write_lock(storage):
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="lineage refresh"):
            refresh(storage, lock_timeout_s=0.3)
        assert time.monotonic() - started >= 0.3
    assert refresh(storage, lock_timeout_s=0.3).is_file()


def test_readers_query_while_refreshes_run(storage: Path) -> None:
    record_materialization(storage, _record(storage))
    refresh(storage)
    held = connect(storage, read_only=True)  # a reader that keeps its handle across refreshes
    rows = held.execute("select count(*) from raw_annotations").fetchone()
    refresher = _python("""
        import sys
        from pathlib import Path
        from eemo_pipeline.lineage import MaterializationRecord, record_materialization, refresh
        storage = Path(sys.argv[1])
        for i in range(15):
            record_materialization(storage, MaterializationRecord(
                asset="raw_annotations", partition="oasis", run_id=f"run-{i}", data_version=str(i), row_count=i,
                file="raw_annotations/oasis.parquet"))
            refresh(storage)
    """, str(storage))
    seen: list[int] = []
    try:
        while refresher.poll() is None or len(seen) < 5:
            assert held.execute("select count(*) from materializations").fetchone() == (1,)  # its old file
            fresh = connect(storage, read_only=True)  # readers opening during the rebuilds
            try:
                assert fresh.execute("select count(*) from raw_annotations").fetchone() == rows
                seen.append(fresh.execute("select count(*) from materializations").fetchone()[0])
            finally:
                fresh.close()
            assert query(storage, "select count(*) from raw_annotations").item() == rows[0]
    finally:
        held.close()
    _finish(refresher)
    assert seen == sorted(seen) and 1 <= seen[0] and seen[-1] <= 16
    assert query(storage, "select count(*) from materializations").item() == 16


def test_read_only_connection_refuses_writes_and_scratch_connection_sees_views(subset_storage: Path) -> None:
    con = connect(subset_storage, read_only=True)
    try:
        with pytest.raises(duckdb.Error):
            con.execute("create table t as select 1")
    finally:
        con.close()
    scratch = connect(subset_storage, read_only=False)
    try:
        scratch.execute("create table mine as select row_id from eemodb_qa")
        assert scratch.execute("select count(*) from mine").fetchone() == (3,)
    finally:
        scratch.close()
    assert query(subset_storage, "select count(*) from duckdb_tables() where table_name = 'mine'").item() == 0


def test_connect_builds_a_missing_database(storage: Path) -> None:
    assert not database_path(storage).exists()
    con = connect(storage)
    try:
        assert con.execute("select count(*) from materializations").fetchone() == (0,)
    finally:
        con.close()
    assert database_path(storage).is_file()


# ---------------------------------------------------------------------------------------------- views


def _views(storage: Path) -> set[str]:
    return set(query(storage, "select view_name from duckdb_views() where not internal").get_column("view_name"))


def test_every_asset_present_has_a_view_that_unions_its_partitions(storage: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    refresh(storage)
    views = _views(storage)
    assert set(PARTITIONED) | set(UNPARTITIONED) | {"generated_text", "quarantine"} <= views
    assert not {"eemodb_qa", "eemodb_assess", "subset_rows"} & views  # not materialized: no view
    monkeypatch.chdir(tmp_path)  # absolute paths: works from any working directory
    for asset in PARTITIONED:
        expected = sum(pl.read_parquet(storage / asset / f"{s}.parquet").height for s in SOURCES)
        assert query(storage, f"select count(*) from {asset}").item() == expected, asset
    sources = query(storage, "select distinct source from raw_annotations order by 1").get_column("source").to_list()
    assert sources == sorted(SOURCES)
    assert query(storage, "select count(*) from label_taxonomy").item() == pl.read_parquet(
        storage / "label_taxonomy.parquet").height
    generated = query(storage, "select asset, count(*) n from generated_text group by 1").rows()
    assert {a for a, _ in generated} == {"image_descriptions", "emotion_reasoning", "descriptive_answers"}


def test_views_union_partitions_by_name_and_follow_new_assets(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    write_parquet(pl.DataFrame({"source": ["a"], "x": [1]}), asset_path(storage, "thing", "a"))
    write_parquet(pl.DataFrame({"y": ["only b"], "source": ["b"]}), asset_path(storage, "thing", "b"))
    refresh(storage)
    frame = query(storage, "select source, x, y from thing order by source")
    assert frame.rows() == [("a", 1, None), ("b", None, "only b")]
    assert "other" not in _views(storage)
    write_parquet(pl.DataFrame({"z": [1.5]}), asset_path(storage, "other"))
    write_parquet(pl.DataFrame({"source": ["c"], "x": [3]}), asset_path(storage, "thing", "c"))
    assert query(storage, "select count(*) from thing").item() == 3  # a new partition needs no refresh
    refresh(storage)
    assert query(storage, "select z from other").item() == 1.5


def test_quarantine_view_covers_every_quarantine_file(storage: Path) -> None:
    refresh(storage)
    files = sorted((storage / "quarantine").rglob("*.parquet"))
    expected = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    frame = query(storage, "select asset, partition, file, line, reason from quarantine")
    assert frame.height == expected.height > 0
    pairs = set(query(storage, "select distinct asset, partition from quarantine").rows())
    assert ("raw_annotations", "emotion6") in pairs
    assert set(expected.select("asset", "partition").unique().rows()) == pairs
    row = query(storage, "select file, line, reason from quarantine where asset = 'raw_annotations' "
                         "and partition = 'emotion6'").row(0)
    assert row[:2] == ("ground_truth.txt", 5) and "valence" in row[2]


# ---------------------------------------------------------------------------------------------- example queries


def _example(storage: Path, name: str, **params: str) -> pl.DataFrame:
    example = EXAMPLE_QUERIES[name]
    return query(storage, example.sql, example.bind(params))


def test_example_queries_are_described() -> None:
    assert set(EXAMPLE_QUERIES) == {"qa_row_lineage", "rows_from_source_file", "template_source_counts",
                                    "materialization_history"}
    for example in EXAMPLE_QUERIES.values():
        assert len(example.description) > 30
        for name in example.params:
            assert f"${name}" in example.sql


def test_qa_row_lineage_names_source_rows_and_model_calls(subset_storage: Path) -> None:
    frame = _example(subset_storage, "qa_row_lineage", row_id="qa00000000000001")
    described = pl.read_parquet(subset_storage / "image_descriptions" / "affection.parquet").get_column("image_id").sort()[0]
    raw = pl.read_parquet(subset_storage / "raw_annotations" / "affection.parquet")
    expected_rows = sorted(raw.filter(pl.col("image_id") == described).select("source_file", "source_line")
                           .unique().rows())
    assert expected_rows and all(file == "affection_raw_public_version_0.csv" for file, _ in expected_rows)
    source_rows = frame.filter(pl.col("kind") == "source_row")
    assert sorted(source_rows.select("source_file", "source_line").rows()) == expected_rows
    assert set(source_rows.get_column("image_id")) == {described}
    calls = frame.filter(pl.col("kind") == "model_call").sort("key")
    assert calls.select("key", "generated_asset", "model", "template_version").rows() == [
        (f"affection/{described}/describe", "image_descriptions", "eemo-offline-rules-v1", load_template("describe").version),
        (f"affection/{described}/narrative", "descriptive_answers", "eemo-offline-rules-v1", load_template("narrative").version),
    ]

    pair = _example(subset_storage, "qa_row_lineage", row_id="qa00000000000002")
    assert set(pair.filter(pl.col("kind") == "source_row").get_column("image_id")) == {"surprise/1.jpg", "sadness/1.jpg"}
    assert pair.filter(pl.col("kind") == "model_call").get_column("key").to_list() == [
        "emotion6/surprise/1.jpg|sadness/1.jpg/pair_ranking"]
    assert _example(subset_storage, "qa_row_lineage", row_id="no such row").is_empty()


def test_rows_from_source_file(subset_storage: Path) -> None:
    frame = _example(subset_storage, "rows_from_source_file", source="emotion6", source_file="ground_truth.txt")
    assert frame.select("subset", "row_id").rows() == [("eemodb_assess", "as00000000000001"), ("eemodb_qa", "qa00000000000002")]
    affection = _example(subset_storage, "rows_from_source_file", source="affection",
                         source_file="affection_raw_public_version_0.csv")
    assert affection.select("subset", "row_id").rows() == [("eemodb_qa", "qa00000000000001")]
    assert frame.filter(pl.col("row_id") == "qa00000000000002").get_column("image_ids").to_list() == [
        ["sadness/1.jpg", "surprise/1.jpg"]]
    assert _example(subset_storage, "rows_from_source_file", source="oasis", source_file="ground_truth.txt").is_empty()


def test_template_source_counts(subset_storage: Path) -> None:
    frame = _example(subset_storage, "template_source_counts")
    assert frame.rows() == [
        ("eemodb_assess", "dominant@v1", "emotion6", 1),
        ("eemodb_assess", "vad@v1", "oasis", 1),
        ("eemodb_qa", "narrative@v1", "affection", 1),
        ("eemodb_qa", "pair_ranking@v1", "emotion6", 1),
        ("eemodb_qa", "verify@v1", "abstract8", 1),
    ]


def test_materialization_history(storage: Path) -> None:
    first = _record(storage, run_id="run-a", materialized_at="2025-01-01T00:00:00+00:00")
    record_materialization(storage, first)
    record_materialization(storage, _record(storage, run_id="run-b", materialized_at="2025-01-02T00:00:00+00:00"))
    record_materialization(storage, _record(storage, run_id="run-c", materialized_at="2025-01-03T00:00:00+00:00",
                                            data_version="0" * 64, row_count=3))
    record_materialization(storage, _record(storage, partition="oasis", run_id="run-x"))
    record_materialization(storage, _record(storage, "label_taxonomy", None, run_id="run-t"))
    refresh(storage)
    frame = _example(storage, "materialization_history", asset="raw_annotations", partition="emotion6")
    assert frame.select("run_id", "row_count", "changed").rows() == [
        ("run-a", first.row_count, True), ("run-b", first.row_count, False), ("run-c", 3, True)]
    assert frame.get_column("data_version").to_list() == [first.data_version] * 2 + ["0" * 64]
    unpartitioned = _example(storage, "materialization_history", asset="label_taxonomy")
    assert unpartitioned.get_column("run_id").to_list() == ["run-t"]


def test_example_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="missing"):
        EXAMPLE_QUERIES["rows_from_source_file"].bind({"source": "emotion6"})
    with pytest.raises(ValueError, match="unknown"):
        EXAMPLE_QUERIES["template_source_counts"].bind({"x": "1"})


# ---------------------------------------------------------------------------------------------- eemo sql


def test_format_table_has_a_header_and_a_row_count() -> None:
    text = format_table(pl.DataFrame({"a": [1, None], "b": ["x|y", "long " * 30]}), max_width=20)
    lines = text.splitlines()
    assert lines[0].split() == ["|", "a", "|", "b", "|"] and set(lines[1]) <= {"|", "-"}
    assert "x\\|y" in lines[2] and "NULL" in lines[3] and lines[3].rstrip(" |").endswith("…")
    assert lines[-1] == "(2 rows)"


def test_eemo_sql_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sql", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: eemo sql" in out and "--example" in out and "--list-examples" in out


def test_eemo_sql_prints_a_table(subset_storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "--storage", str(subset_storage),
                 "select source, count(*) as n from raw_annotations group by source order by source"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].replace(" ", "") == "|source|n|" and set(lines[1]) <= {"|", "-"}
    assert lines[2].startswith("| abstract8") and lines[-1] == f"({len(SOURCES)} rows)"

    assert main(["sql", "--storage", str(subset_storage), "--example", "rows_from_source_file",
                 "--param", "source=emotion6", "--param", "source_file=ground_truth.txt"]) == 0
    out = capsys.readouterr().out
    assert "qa00000000000002" in out and "as00000000000001" in out and out.rstrip().endswith("(2 rows)")

    assert main(["sql", "--storage", str(subset_storage), "--list-examples"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXAMPLE_QUERIES)


def test_eemo_sql_builds_a_missing_or_stale_database_and_refreshes_on_request(
    storage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "--storage", str(storage), "select count(*) as n from materializations"]) == 0
    assert database_path(storage).is_file() and "| 0 " in capsys.readouterr().out
    built = database_path(storage).stat().st_mtime_ns
    assert main(["sql", "--storage", str(storage), "select count(*) as n from materializations"]) == 0
    assert database_path(storage).stat().st_mtime_ns == built  # current: not rebuilt
    capsys.readouterr()
    record_materialization(storage, _record(storage))
    assert main(["sql", "--storage", str(storage), "select count(*) as n from materializations"]) == 0
    assert "| 1 " in capsys.readouterr().out  # a record newer than the database: rebuilt first
    assert main(["sql", "--storage", str(storage), "--refresh", "select count(*) as n from materializations"]) == 0
    assert "| 1 " in capsys.readouterr().out


def test_eemo_sql_reports_errors(subset_storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "--storage", str(subset_storage), "select * from no_such_asset"]) == 1
    assert "no_such_asset" in capsys.readouterr().err
    assert main(["sql", "--storage", str(subset_storage), "--example", "qa_row_lineage"]) == 2
    assert "row_id" in capsys.readouterr().err
    assert main(["sql", "--storage", str(subset_storage), "--example", "nope"]) == 2
    assert main(["sql", "--storage", str(subset_storage), "--param", "novalue", "select 1"]) == 2
    assert main(["sql", "--storage", str(subset_storage / "missing"), "select 1"]) == 2
    assert not (subset_storage / "missing").exists()


def test_eemo_sql_is_read_only_in_fact(subset_storage: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("secret\n1\n")
    before = sorted(p.relative_to(subset_storage) for p in subset_storage.rglob("*"))
    refused = [
        f"COPY (select 1) TO '{tmp_path / 'out.csv'}'",
        f"COPY (select 1) TO '{subset_storage / 'inside.parquet'}'",        # not even inside the storage root
        f"ATTACH '{subset_storage / 'new.duckdb'}' AS extra",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "PRAGMA enable_profiling",
        "CREATE TABLE memory.main.t AS SELECT 1",
        f"select * from read_csv('{outside}')",                            # a file outside the storage root
        "select 1; COPY (select 1) TO 'x.csv'",                             # a write after a harmless query
    ]
    for sql in refused:
        assert main(["sql", "--storage", str(subset_storage), sql]) == 1, sql
        assert "eemo sql is read-only" in capsys.readouterr().err, sql
    assert not (tmp_path / "out.csv").exists() and not Path("x.csv").exists()
    assert sorted(p.relative_to(subset_storage) for p in subset_storage.rglob("*")) == before
    # What the house allows still works: views over Parquet in the storage root, the lineage tables, examples.
    assert main(["sql", "--storage", str(subset_storage), "explain select count(*) from eemodb_qa"]) == 0
    assert main(["sql", "--storage", str(subset_storage),
                 f"select count(*) n from read_parquet('{subset_storage / 'eemodb_qa.parquet'}')"]) == 0
    assert "| 3 " in capsys.readouterr().out
    assert main(["sql", "--storage", str(subset_storage), "--example", "qa_row_lineage",
                 "--param", "row_id=nope"]) == 0


def _eemo_sql(storage: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("eemo")), "sql", "--storage", str(storage), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def small_storage(tmp_path: Path) -> Path:
    """Two partitions of raw_annotations with their records and a built database, no demo needed."""
    storage = tmp_path / "storage"
    for source, rows in (("emotion6", 3), ("oasis", 2)):
        path = write_parquet(pl.DataFrame({"source": [source] * rows, "image_id": [f"{i}.jpg" for i in range(rows)]}),
                             asset_path(storage, "raw_annotations", source))
        record_materialization(storage, MaterializationRecord.for_output(
            storage, "raw_annotations", source, path, run_id=f"run-{source}", row_count=rows))
    refresh(storage)
    return storage


def test_eemo_sql_in_a_subprocess_refuses_every_write_and_keeps_its_limits(small_storage: Path, tmp_path: Path) -> None:
    """Issue 19: `EXPLAIN ANALYZE COPY ... TO` over a partition file used to run (an EXPLAIN passed the check and
    the storage root is an allowed directory): it rewrote the file and downstream runs built on it."""
    storage, cwd = small_storage, tmp_path / "cwd"
    cwd.mkdir()
    target = storage / "raw_annotations" / "emotion6.parquet"
    before = _tree(storage)
    refused = [
        f"EXPLAIN ANALYZE COPY (select 'forged' as source) TO '{target}' (FORMAT parquet)",
        f"EXPLAIN (ANALYZE) COPY (select 'forged' as source) TO '{target}'",
        f"EXPLAIN /* a comment */ ANALYZE -- another\n COPY (select 1) TO '{storage}/x.csv'",
        f"COPY (select 'forged' as source) TO '{target}'",
        f"select 1; EXPLAIN ANALYZE COPY (select 1) TO '{target}'",                 # a write after a read
        f"select ';' as s /* ; */; -- select\n COPY (select 1) TO '{storage}/y.csv'",  # comments and literals
        f"/* select 1; */ COPY (select 1) TO '{storage}/z.csv'",
        f"ATTACH '{storage}/new.duckdb' AS extra",
        "INSTALL httpfs",
        "LOAD parquet",
        "PRAGMA enable_profiling",
        "CALL pragma_version()",
        "SET memory_limit = '100GB'",
        "EXPLAIN SET temp_directory = '.tmp'",
    ]
    for sql in refused:
        done = _eemo_sql(storage, sql, cwd=cwd)
        assert done.returncode == 1 and "eemo sql is read-only" in done.stderr, (sql, done.stdout, done.stderr)
    assert _tree(storage) == before and list(cwd.iterdir()) == []

    # Reads run, EXPLAIN ANALYZE of a SELECT included; DuckDB's parser, not a prefix test, decides.
    for sql in ("select count(*) as n from raw_annotations", "EXPLAIN ANALYZE select count(*) from raw_annotations",
                "/* COPY */ select 'COPY (select 1) TO x' as text"):
        done = _eemo_sql(storage, sql, cwd=cwd)
        assert done.returncode == 0, (sql, done.stderr)
    assert "| 5 " in _eemo_sql(storage, "select count(*) as n from raw_annotations", cwd=cwd).stdout

    # Time: a query still running at its limit is interrupted (this one would run for hours).
    started = time.monotonic()
    done = _eemo_sql(storage, "--timeout", "2", "select sum(a.range * b.range) from range(100000000) a, "
                     "range(100000000) b", cwd=cwd)
    assert done.returncode == 1 and "time limit of 2 s" in done.stderr, done.stderr
    assert time.monotonic() - started < 240
    # Memory: over the limit the query fails; DuckDB writes no temporary file (it used to spill into ./.tmp/).
    done = _eemo_sql(storage, "--memory-limit", "64MB", "select max(r) from (select row_number() over "
                     "(order by hash(range)) r from range(20000000))", cwd=cwd)
    assert done.returncode == 1 and "Out of Memory" in done.stderr, done.stderr
    assert list(cwd.iterdir()) == [] and _tree(storage) == before


def _eemo_sql_here(storage: Path, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`eemo sql` in a subprocess running this checkout's code (the venv's `eemo` may point at another one)."""
    return subprocess.run([sys.executable, "-m", "eemo_pipeline.cli", "sql", "--storage", str(storage), *args],
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_eemo_sql_bounds_its_result_and_rejects_non_positive_limits(small_storage: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Hostile probe: the whole result was fetched into memory (only printing was cut) and `--max-rows 0`,
    `--max-rows -5` or `--timeout 0` were taken."""
    args = ["sql", "--storage", str(small_storage)]
    assert main([*args, "--max-rows", "7", "select range from range(1000000)"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["(7 rows)", "(cut: the result has more rows; --max-rows 7 stopped it)"]
    assert main([*args, "--max-bytes", "800", "select range, repeat('x', 100) s from range(1000)"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "(cut: the result has more rows; --max-bytes 800 stopped it)"
    assert 1 <= int(out[-2].strip("()").split()[0]) < 8  # each row holds at least 100 bytes
    assert main([*args, "--max-rows", "5", "select * from range(5)"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(5 rows)"  # exactly the limit: nothing was cut
    # The bound holds while fetching: a result far larger than memory_limit returns its first rows.
    frame_result = lineage.bounded_query(small_storage, "select repeat('x', 1000) from range(100000000)", max_rows=3,
                                         memory_limit="64MB")
    assert frame_result.frame.height == 3 and frame_result.cut == "max_rows"
    for flag, value in (("--max-rows", "0"), ("--max-rows", "-1"), ("--max-bytes", "0"), ("--timeout", "0"),
                        ("--timeout", "-2")):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, flag, value, "select 1"])
        assert exit_info.value.code == 2
        assert f"argument {flag}: must be above 0, got {value}" in capsys.readouterr().err
    # Hostile probe: `--timeout nan` was taken (no comparison with nan is true), then the query failed oddly.
    for value in ("nan", "NaN", "inf", "infinity"):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--timeout", value, "select 1"])
        assert exit_info.value.code == 2
        assert f"argument --timeout: must be a finite number above 0, got {value}" in capsys.readouterr().err


def test_eemo_sql_timeout_holds_on_a_fifo(small_storage: Path, tmp_path: Path) -> None:
    """Hostile probe: a query reading a FIFO under the storage root (here through a link, which DuckDB opens)
    blocks in the kernel where DuckDB's interrupt cannot reach; `--timeout 1` never ended it."""
    os.mkfifo(small_storage / "fifo")
    (small_storage / "data.csv").symlink_to(small_storage / "fifo")
    started = time.monotonic()
    done = _eemo_sql_here(small_storage, "--timeout", "1", f"select * from read_blob('{small_storage}/data.csv')",
                          cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "eemo sql: the query ran past its time limit of 1 s and did not stop when interrupted" in done.stderr
    print(f"FIFO query stopped after {elapsed:.1f} s (timeout 1 s + grace)")


def _counts(out: str) -> dict[str, int]:
    """``source -> n`` from an `eemo sql` table of those two columns."""
    rows = [line.split("|")[1:3] for line in out.splitlines()[2:] if line.startswith("| ")]
    return {source.strip(): int(n) for source, n in rows}


COUNT_BY_SOURCE = "select source, count(*) n from raw_annotations group by all order by 1"


def test_eemo_sql_refresh_skips_unreadable_parquet_and_follows_a_moved_root(small_storage: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Hostile probe: one damaged Parquet file failed the whole refresh (no view of the asset at all), and a
    storage root moved elsewhere kept a database whose views read the old place ("No files found")."""
    (small_storage / "raw_annotations" / "forged.parquet").write_bytes(b"PAR1 not really")
    good = (small_storage / "raw_annotations" / "oasis.parquet").read_bytes()
    (small_storage / "raw_annotations" / "cut.parquet").write_bytes(good[: len(good) // 2])
    assert main(["sql", "--storage", str(small_storage), "--refresh", COUNT_BY_SOURCE]) == 0
    captured = capsys.readouterr()
    assert _counts(captured.out) == {"emotion6": 3, "oasis": 2}
    for name in ("cut", "forged"):
        assert f"warning: raw_annotations/{name}.parquet is not a readable Parquet file" in captured.err

    moved = tmp_path / "moved"
    shutil.move(small_storage, moved)
    assert main(["sql", "--storage", str(moved), COUNT_BY_SOURCE]) == 0  # rebuilt: the database was for the old root
    assert _counts(capsys.readouterr().out) == {"emotion6": 3, "oasis": 2}
    assert lineage.database.database_info(database_path(moved)).storage_root == moved.as_posix()


def test_eemo_sql_on_read_only_storage_names_the_folder_and_answers(small_storage: Path, tmp_path: Path) -> None:
    """Hostile probe: on a read-only storage root `eemo sql --refresh` (or any query after a new output) failed with
    a traceback from the lock file. A tmpfs remounted read-only (root only, else skipped)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        shutil.copytree(small_storage, mount / "storage")
        (mount / "storage" / "lineage.duckdb").unlink()  # a query must build it: into the storage root it cannot
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        for args in ((), ("--refresh",)):
            done = _eemo_sql_here(mount / "storage", *args, COUNT_BY_SOURCE, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            assert _counts(done.stdout) == {"emotion6": 3, "oasis": 2}
            assert (f"note: the storage root {mount / 'storage'} cannot be written (Read-only file system"
                    in done.stderr), done.stderr
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("value", [
    "emotion6' OR '1'='1",
    "x'; DROP VIEW raw_annotations; --",
    "emotion6\"; select 1; --",
])
def test_sql_injection_through_param_is_data(subset_storage: Path, value: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "--storage", str(subset_storage), "--example", "rows_from_source_file",
                 "--param", f"source={value}", "--param", "source_file=ground_truth.txt"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("(0 rows)")
    assert main(["sql", "--storage", str(subset_storage), "--example", "qa_row_lineage", "--param", f"row_id={value}"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("(0 rows)")
    assert main(["sql", "--storage", str(subset_storage), "select count(*) as n from raw_annotations where source = $s",
                 "--param", f"s={value}"]) == 0
    assert "| 0 " in capsys.readouterr().out
    assert "raw_annotations" in _views(subset_storage)
    assert query(subset_storage, "select count(*) from raw_annotations").item() > 0


def test_lineage_module_imports_no_dagster() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, eemo_pipeline.lineage; print('dagster' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert done.stdout.strip() == "False", done.stderr
    assert lineage.__doc__ and "flock" in lineage.__doc__
