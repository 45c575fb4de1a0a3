"""``eemo status`` against a real Dagster instance after small materializations of the sample."""

from __future__ import annotations

import json
import shutil
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


def _ingest(instance, only_raw: bool = False) -> bool:
    from eemo_pipeline.definitions import defs

    selection = [AssetKey("raw_annotations")] if only_raw else None
    result = defs.resolve_job_def("ingest_sources").execute_in_process(
        instance=instance, partition_key="emotion6", run_config=QUIET, asset_selection=selection, raise_on_error=False
    )
    return result.success


def _by_key(statuses):
    return {(s.asset, s.partition): s for s in statuses}


def test_status_reports_fresh_missing_stale_and_failed(instance, tmp_path: Path, monkeypatch) -> None:
    assert _ingest(instance)
    first = _by_key(collect_status(instance, assets=ASSETS))
    raw, manifest = first[("raw_annotations", "emotion6")], first[("image_manifest", "emotion6")]
    assert raw.state == "fresh" and raw.materialized_at and raw.run_id and len(raw.content_hash) == 64
    assert manifest.state == "fresh" and manifest.run_id == raw.run_id
    assert first[("raw_annotations", "oasis")].state == "missing"
    assert first[("mapped_labels", "emotion6")].state == "missing"
    assert first[("label_taxonomy", None)].state == "missing"
    assert len(first) == 3 * len(SOURCES) + 1  # every partition of the partitioned assets, one for label_taxonomy

    # Rewriting identical bytes upstream makes nothing stale; new content does.
    assert _ingest(instance, only_raw=True)
    assert _by_key(collect_status(instance, assets=ASSETS))[("image_manifest", "emotion6")].state == "fresh"
    truth = tmp_path / "sample" / "emotion6" / "ground_truth.txt"
    truth.write_text("".join(truth.read_text().splitlines(True)[:-1]))
    assert _ingest(instance, only_raw=True)
    changed = _by_key(collect_status(instance, assets=ASSETS))
    assert changed[("raw_annotations", "emotion6")].state == "fresh"
    stale = changed[("image_manifest", "emotion6")]
    assert stale.state == "stale"
    assert stale.stale_causes == ("raw_annotations[emotion6] has new content since it was read",)

    # A changed code version is stale through Dagster's data-version lineage.
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

    from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations

    bumped = raw_annotations.map_asset_specs(lambda spec: spec.replace_attributes(code_version="2"))
    graph = AssetGraph.from_assets([bumped, image_manifest])
    recoded = _by_key(collect_status(instance, asset_graph=graph))[("raw_annotations", "emotion6")]
    assert recoded.state == "stale" and any("code version" in cause for cause in recoded.stale_causes)

    # A failed run shows, with its run id, while the last good materialization stays listed.
    monkeypatch.setenv(root_variable("emotion6"), str(tmp_path / "no-such-folder"))
    assert not _ingest(instance, only_raw=True)
    failed = _by_key(collect_status(instance, assets=ASSETS))[("raw_annotations", "emotion6")]
    assert failed.state == "failed" and failed.materialized_at == changed[("raw_annotations", "emotion6")].materialized_at
    assert len(failed.failures) == 1 and failed.failures[0].startswith("run ") and failed.failures[0].endswith("failure")

    table = format_status(collect_status(instance, assets=["raw_annotations"]))
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
