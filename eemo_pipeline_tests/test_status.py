"""``eemo status`` against a real Dagster instance after small materializations of the sample."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from eemo_pipeline.cli import main
from eemo_pipeline.sample import write_sample
from eemo_pipeline.settings import root_variable
from eemo_pipeline.sources import SOURCES
from eemo_pipeline.status import collect_status, format_status

REPO = Path(__file__).resolve().parents[1]
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
ASSETS = ["raw_annotations", "image_manifest", "mapped_labels", "label_taxonomy"]


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("EEMO_STORAGE", str(tmp_path / "storage"))
    root = write_sample(tmp_path / "sample", ["emotion6"])["emotion6"]
    monkeypatch.setenv(root_variable("emotion6"), str(root))
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


def _ingest(instance, only_raw: bool = False, partition: str = "emotion6") -> bool:
    from eemo_pipeline.definitions import defs

    selection = [AssetKey("raw_annotations")] if only_raw else None
    result = defs.resolve_job_def("ingest_sources").execute_in_process(
        instance=instance, partition_key=partition, run_config=QUIET, asset_selection=selection, raise_on_error=False
    )
    return result.success


def _by_key(statuses):
    return {(s.asset, s.partition): s for s in statuses}


def test_status_reports_fresh_missing_stale_and_failed(instance, tmp_path: Path, monkeypatch) -> None:
    assert _ingest(instance)
    first = _by_key(collect_status(instance, tmp_path / "storage", assets=ASSETS))
    raw, manifest = first[("raw_annotations", "emotion6")], first[("image_manifest", "emotion6")]
    assert raw.state == "fresh" and raw.materialized_at and raw.run_id and len(raw.content_hash) == 64
    assert manifest.state == "fresh" and manifest.run_id == raw.run_id
    assert first[("raw_annotations", "oasis")].state == "missing"
    assert first[("mapped_labels", "emotion6")].state == "missing"
    assert first[("label_taxonomy", None)].state == "missing"
    assert len(first) == 3 * len(SOURCES) + 1  # every partition of the partitioned assets, one for label_taxonomy

    # Rewriting identical bytes upstream makes nothing stale; new content does.
    assert _ingest(instance, only_raw=True)
    assert _by_key(collect_status(instance, tmp_path / "storage", assets=ASSETS))[("image_manifest", "emotion6")].state == "fresh"
    truth = tmp_path / "sample" / "emotion6" / "ground_truth.txt"
    truth.write_text("".join(truth.read_text().splitlines(True)[:-1]))
    assert _ingest(instance, only_raw=True)
    changed = _by_key(collect_status(instance, tmp_path / "storage", assets=ASSETS))
    assert changed[("raw_annotations", "emotion6")].state == "fresh"
    stale = changed[("image_manifest", "emotion6")]
    assert stale.state == "stale"
    assert stale.stale_causes == ("raw_annotations[emotion6] has new content since it was read",)

    # A changed code version is stale through Dagster's data-version lineage.
    from dagster import Definitions

    from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations
    from eemo_pipeline.resources import default_resources

    bumped = raw_annotations.map_asset_specs(lambda spec: spec.replace_attributes(code_version="2"))
    defs = Definitions(assets=[bumped, image_manifest], resources=default_resources())
    recoded = _by_key(collect_status(instance, tmp_path / "storage", defs))
    assert recoded[("raw_annotations", "emotion6")].stale_causes == ("raw_annotations[emotion6]: has a new code version",)
    recoded = recoded[("raw_annotations", "emotion6")]
    assert recoded.state == "stale" and any("code version" in cause for cause in recoded.stale_causes)

    # A failed run shows, with its run id, while the last good materialization stays listed.
    monkeypatch.setenv(root_variable("emotion6"), str(tmp_path / "no-such-folder"))
    assert not _ingest(instance, only_raw=True)
    failed = _by_key(collect_status(instance, tmp_path / "storage", assets=ASSETS))[("raw_annotations", "emotion6")]
    assert failed.state == "failed" and failed.materialized_at == changed[("raw_annotations", "emotion6")].materialized_at
    assert len(failed.failures) == 1 and failed.failures[0].startswith("run ") and failed.failures[0].endswith("failure")

    table = format_status(collect_status(instance, tmp_path / "storage", assets=["raw_annotations"]))
    header, *rows = table.splitlines()
    assert header.split() == ["asset", "partition", "state", "materialized", "run", "details"]
    assert any(row.split()[:3] == ["raw_annotations", "emotion6", "failed"] for row in rows)
    assert table.endswith(f"{len(SOURCES)} asset partitions: 1 failed, {len(SOURCES) - 1} missing")


def test_status_command_json_and_table(instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ingest(instance, only_raw=True)
    capsys.readouterr()
    assert main(["status", "--json", "--asset", "raw_annotations", "--asset", "image_manifest"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {(r["asset"], r["partition"]) for r in records if r["state"] == "fresh"} == {("raw_annotations", "emotion6")}
    assert {r["asset"] for r in records} == {"raw_annotations", "image_manifest"} and len(records) == 2 * len(SOURCES)
    fresh = next(r for r in records if r["state"] == "fresh")
    assert fresh["materialized_at"].startswith("20") and fresh["failures"] == [] and fresh["stale_causes"] == []

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:3] == ["asset", "partition", "state"]
    assert ["raw_annotations", "emotion6", "fresh"] == next(row[:3] for row in rows if row[:2] == ["raw_annotations", "emotion6"])
    assert out.rstrip().endswith("missing, 1 fresh")

    assert main(["status", "--asset", "nope"]) == 2
    assert "unknown asset(s): nope" in capsys.readouterr().err
    assert main(["status", "--dagster-home", str(tmp_path / "absent")]) == 2
    assert "no Dagster instance at" in capsys.readouterr().err


def test_a_partition_file_deleted_by_hand_is_missing_for_status_and_sql(instance, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: with raw_annotations/emotion6.parquet deleted, `eemo status` said fresh and `eemo sql --refresh`
    left its rows out without a word. Both commands run as the user runs them, in subprocesses."""
    monkeypatch.setenv(root_variable("oasis"), str(write_sample(tmp_path / "sample", ["oasis"])["oasis"]))
    assert _ingest(instance, only_raw=True) and _ingest(instance, only_raw=True, partition="oasis")
    (tmp_path / "storage" / "raw_annotations" / "emotion6.parquet").unlink()
    eemo = str(Path(sys.executable).with_name("eemo"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([eemo, *args], cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)

    done = run("status", "--json", "--asset", "raw_annotations")
    assert done.returncode == 0, done.stderr
    records = {r["partition"]: r for r in json.loads(done.stdout)}
    assert records["emotion6"]["state"] == "missing" and records["emotion6"]["materialized_at"]
    assert records["emotion6"]["missing_file"] == "raw_annotations/emotion6.parquet"
    assert records["oasis"]["state"] == "fresh" and records["oasis"]["missing_file"] is None
    table = run("status", "--asset", "raw_annotations").stdout
    row = next(line for line in table.splitlines() if line.split()[:2] == ["raw_annotations", "emotion6"])
    assert row.split()[2] == "missing" and row.endswith("file raw_annotations/emotion6.parquet is gone")

    done = run("sql", "--refresh", "select source, count(*) as n from raw_annotations group by all order by 1")
    assert done.returncode == 0, done.stderr
    assert "raw_annotations[emotion6] is missing: its file raw_annotations/emotion6.parquet" in done.stderr
    assert [line.split("|")[1].strip() for line in done.stdout.splitlines()[2:-1]] == ["oasis"]


def _eemo(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`eemo` in a subprocess running this checkout's code."""
    return subprocess.run([sys.executable, "-m", "eemo_pipeline.cli", *args], cwd=cwd,
                          env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_a_partition_file_changed_by_hand_or_unreadable_is_stale(instance, tmp_path: Path) -> None:
    """Hostile probe: a partition file overwritten by hand (other rows) or with bytes that are no Parquet was
    reported fresh."""
    import polars as pl

    assert _ingest(instance, only_raw=True)
    storage, key = tmp_path / "storage", ("raw_annotations", "emotion6")
    target = storage / "raw_annotations" / "emotion6.parquet"
    assert _by_key(collect_status(instance, storage, assets=["raw_annotations"]))[key].state == "fresh"
    pl.read_parquet(target).head(2).write_parquet(target)
    changed = _by_key(collect_status(instance, storage, assets=["raw_annotations"]))[key]
    assert changed.state == "stale" and changed.stale_causes == (
        "file raw_annotations/emotion6.parquet was changed after it was written (its sha256 differs from the "
        "lineage record)",)
    target.write_bytes(b"not parquet at all")
    broken = _by_key(collect_status(instance, storage, assets=["raw_annotations"]))[key]
    assert broken.state == "stale"
    assert broken.stale_causes[0].startswith("file raw_annotations/emotion6.parquet is not a readable Parquet file")


def test_bumping_a_contract_version_makes_the_assets_that_read_it_stale(instance, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile probe: a new version of label_taxonomy.yaml or vad_bounds.yaml left every asset built from the old
    one fresh. Materialized on the repository's contracts, then `eemo status` over a copy with bumped versions."""
    from eemo_pipeline.contracts import contracts_dir, use_contracts_dir, with_contract_versions

    monkeypatch.setenv(root_variable("emotic"), str(write_sample(tmp_path / "sample", ["emotic"])["emotic"]))
    assert _ingest(instance, only_raw=True, partition="emotic")
    from eemo_pipeline.definitions import defs

    result = defs.resolve_job_def("reference_tables").execute_in_process(
        instance=instance, run_config=QUIET, raise_on_error=False,
        asset_selection=[AssetKey("label_taxonomy"), AssetKey("emotic_vad_centroids")])
    assert result.success
    contracts = tmp_path / "contracts"
    shutil.copytree(contracts_dir(), contracts)
    env = {**os.environ, "EEMO_CONTRACTS": str(contracts)}
    args = ("status", "--json", "--asset", "label_taxonomy", "--asset", "emotic_vad_centroids")
    done = _eemo(*args, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert {r["asset"]: r["state"] for r in json.loads(done.stdout)} == {"label_taxonomy": "fresh",
                                                                         "emotic_vad_centroids": "fresh"}
    for name in ("label_taxonomy", "vad_bounds"):
        path = contracts / f"{name}.yaml"
        path.write_text(path.read_text().replace("\nversion: 1\n", "\nversion: 2\n", 1))
    done = _eemo(*args, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for record in json.loads(done.stdout):
        assert record["state"] == "stale", record
        assert record["stale_causes"] == [f"{record['asset']}: has a new code version"]
    original = contracts_dir()
    use_contracts_dir(contracts)
    try:  # the assets reading vad_bounds.yaml carry its version the same way
        assert with_contract_versions("2", "vad_bounds") == "2+vad_bounds.v2"
    finally:
        use_contracts_dir(original)


def test_the_demo_observes_sources_first_so_a_later_observation_changes_nothing(instance, tmp_path: Path) -> None:
    """Hostile probe: the demo materialized without observing `source_files`, so the first observation after it
    (the daily schedule, or one from the UI) made every ingested partition stale: "source_files[...]: has a new
    data version" for every source. The demo's own stage runner, on the ingestion stage, then `observe_sources` again
    over the same roots."""
    from dataclasses import replace

    from eemo_pipeline.definitions import defs
    from eemo_pipeline.demo import _run_stages
    from eemo_pipeline.resources import resource_config
    from eemo_pipeline.settings import Settings

    roots = write_sample(tmp_path / "sample")
    settings = replace(Settings.from_env(), roots=roots)
    resources = resource_config(settings)
    failures: list[str] = []
    _run_stages(defs, (("ingest_sources", True),), instance, resources, failures, {}, [])
    assert failures == []
    assert defs.resolve_job_def("observe_sources").execute_in_process(
        instance=instance, run_config={**QUIET, **resources}).success  # the roots unchanged
    statuses = collect_status(instance, tmp_path / "storage", assets=["raw_annotations", "image_manifest"])
    assert {(s.asset, s.partition, s.state, s.stale_causes) for s in statuses} == {
        (asset, source, "fresh", ()) for asset in ("raw_annotations", "image_manifest") for source in SOURCES}

    # One source changed: exactly its partitions are stale, from the observation's new version.
    truth = roots["emotion6"] / "ground_truth.txt"
    truth.write_text("".join(truth.read_text().splitlines(True)[:-1]))
    assert defs.resolve_job_def("observe_sources").execute_in_process(
        instance=instance, run_config={**QUIET, **resources}).success
    stale = {(s.asset, s.partition): s.stale_causes for s in collect_status(
        instance, tmp_path / "storage", assets=["raw_annotations", "image_manifest"]) if s.state != "fresh"}
    assert stale == {("raw_annotations", "emotion6"): ("source_files[emotion6]: has a new data version",)}
