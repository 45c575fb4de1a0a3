from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, instance_for_test, materialize

from eemo_pipeline.assets import ingestion
from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations
from eemo_pipeline.resources import InputPathsResource, ParquetIOManager, StorageResource
from eemo_pipeline.sample import write_sample
from eemo_pipeline.settings import root_variable
from eemo_pipeline.sources import SOURCES
from eemo_pipeline.sources.base import CUT_REASON


@pytest.fixture(scope="module")
def sample_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_sample(tmp_path_factory.mktemp("sample"))


def _resources(storage: Path) -> dict[str, object]:
    store = StorageResource(root=str(storage))
    return {"io_manager": ParquetIOManager(storage=store), "storage": store, "input_paths": InputPathsResource()}


@pytest.mark.parametrize("source", SOURCES)
def test_every_partition_materializes_on_the_sample(
    source: str, sample_roots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(root_variable(source), str(sample_roots[source]))
    result = materialize([raw_annotations, image_manifest], partition_key=source, resources=_resources(tmp_path))
    assert result.success
    contract_checks = [c for c in result.get_asset_check_evaluations() if c.check_name == "contract"]
    assert len(contract_checks) == 2 and all(c.passed for c in contract_checks)

    annotations = pl.read_parquet(tmp_path / "raw_annotations" / f"{source}.parquet")
    manifest = pl.read_parquet(tmp_path / "image_manifest" / f"{source}.parquet")
    quarantine = pl.read_parquet(tmp_path / "quarantine" / "raw_annotations" / f"{source}.parquet")
    assert annotations.height > 0 and set(annotations["source"]) == {source}
    assert set(manifest["image_id"]) == set(annotations["image_id"])
    assert set(quarantine["partition"]) <= {source} and set(quarantine["asset"]) <= {"raw_annotations"}

    metadata = result.asset_materializations_for_node("raw_annotations")[0].metadata
    assert metadata["dagster/row_count"].value == annotations.height
    assert metadata["rows_read"].value == annotations.height + quarantine.height
    assert metadata["rows_quarantined"].value == quarantine.height
    assert [c.name for c in metadata["dagster/column_schema"].value.columns] == annotations.columns


def test_sample_quarantines_its_planted_bad_rows_and_images(sample_roots: dict[str, Path], tmp_path: Path) -> None:
    config = {"ops": {name: {"config": {"root": str(sample_roots["emotion6"])}} for name in ("raw_annotations", "image_manifest")}}
    result = materialize(
        [raw_annotations, image_manifest], partition_key="emotion6", resources=_resources(tmp_path), run_config=config
    )
    assert result.success
    rows = pl.read_parquet(tmp_path / "quarantine" / "raw_annotations" / "emotion6.parquet")
    images = pl.read_parquet(tmp_path / "quarantine" / "image_manifest" / "emotion6.parquet")
    assert rows.select("file", "line").row(0) == ("ground_truth.txt", 5)
    assert images["file"].to_list() == ["images/neutral/1.jpg"]
    assert "does not decode" in images["reason"][0]
    share = {c.check_name: c for c in result.get_asset_check_evaluations()}["decodable_share"]
    assert not share.passed  # 1 of 10 sample images is corrupt: above the default 5% limit, a warning only


def test_failing_contract_check_blocks_downstream(
    sample_roots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(root_variable("gaped"), str(sample_roots["gaped"]))
    monkeypatch.setattr(ingestion, "contract_violations", lambda frame, source: ["3 rows: planted violation"])
    result = materialize(
        [raw_annotations, image_manifest], partition_key="gaped", resources=_resources(tmp_path), raise_on_error=False
    )
    assert not result.success
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "contract")
    assert not check.passed and check.description == "3 rows: planted violation"
    assert result.asset_materializations_for_node("image_manifest") == []
    assert not (tmp_path / "image_manifest" / "gaped.parquet").exists()


def test_unconfigured_root_fails_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(root_variable("oasis"), raising=False)
    result = materialize([raw_annotations], partition_key="oasis", resources=_resources(tmp_path), raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "set EEMO_OASIS_ROOT or the asset's run config 'root'" in failure.to_string()


def test_a_rebuild_that_loses_most_rows_is_held_back(sample_roots: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "emotion6"
    shutil.copytree(sample_roots["emotion6"], root)
    instance = DagsterInstance.ephemeral()
    config = {"ops": {"raw_annotations": {"config": {"root": str(root)}}}}

    def build(**options: object):
        run_config = {"ops": {"raw_annotations": {"config": {**config["ops"]["raw_annotations"]["config"], **options}}}}
        result = materialize([raw_annotations], partition_key="emotion6", resources=_resources(tmp_path / "store"),
                             run_config=run_config, instance=instance, raise_on_error=False)
        check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "rebuild_share")
        return result, check, result.asset_materializations_for_node("raw_annotations")[0].metadata

    result, check, metadata = build()
    assert result.success and check.passed and metadata["last_good_rows"].value == 89
    truth = root / "ground_truth.txt"
    truth.write_text("".join(truth.read_text().splitlines(keepends=True)[:3]))  # two of ten images left
    result, check, metadata = build()
    assert not result.success and not check.passed
    assert check.description.startswith("kept 18 rows where the last good build kept 89 (under 50%")
    assert metadata["last_good_rows"].value == 89  # the baseline stays the last good build
    result, check, metadata = build()
    assert not check.passed  # still held back against the good build, not the damaged one
    result, check, metadata = build(accept_shrink=True)
    assert result.success and check.passed and metadata["last_good_rows"].value == 18


def test_a_damaged_file_fails_at_once_without_retries(sample_roots: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "emotion6"
    shutil.copytree(sample_roots["emotion6"], root)
    truth = root / "ground_truth.txt"
    truth.write_text(truth.read_text().splitlines()[0].replace("[arousal]", "[valence ]") + "\n")
    config = {"ops": {"raw_annotations": {"config": {"root": str(root)}}}}
    result = materialize([raw_annotations], partition_key="emotion6", resources=_resources(tmp_path / "store"),
                         run_config=config, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "ground_truth.txt: columns 2 [[valence]] and 3 [[valence ]] both read as 'valence'" in failure
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_the_files_read_before_tell_a_cut_file_from_a_missing_final_newline(
    sample_roots: dict[str, Path], tmp_path: Path
) -> None:
    """GAPED declares no record counts and the sample has no twin files: the last build's files are the evidence."""
    root = tmp_path / "gaped"
    shutil.copytree(sample_roots["gaped"], root)
    instance = DagsterInstance.ephemeral()
    config = {"ops": {"raw_annotations": {"config": {"root": str(root)}}}}

    def build():
        result = materialize([raw_annotations], partition_key="gaped", resources=_resources(tmp_path / "store"),
                             run_config=config, instance=instance)
        quarantine = pl.read_parquet(tmp_path / "store" / "quarantine" / "raw_annotations" / "gaped.parquet")
        return result.asset_materializations_for_node("raw_annotations")[0].metadata, quarantine

    path = root / "N.txt"
    data = path.read_bytes()
    path.write_bytes(data.rstrip(b"\n"))  # the first build sees it without its final newline: nothing to compare
    metadata, quarantine = build()
    assert metadata["dagster/row_count"].value == 31 and metadata["unchecked_last_records"].value == ["N.txt"]
    assert "N.txt: ends without a line break, and no earlier version" in metadata["file_endings"].value
    assert set(metadata["files_read"].value) == {"A.txt", "H.txt", "N.txt", "P.txt", "Sn.txt", "Sp_with SD.txt"}
    assert metadata["files_read"].value["N.txt"]["bytes"] == len(data) - 1

    path.write_bytes(data)  # the whole file: what later builds compare with
    metadata, _ = build()
    assert metadata["dagster/row_count"].value == 31 and metadata["unchecked_last_records"].value == []
    path.write_bytes(data[:-3])  # 18.74 cut to 18.
    metadata, quarantine = build()
    assert metadata["dagster/row_count"].value == 29 and metadata["unchecked_last_records"].value == []
    assert quarantine.filter(pl.col("file") == "N.txt").select("line", "reason").rows() == [(3, CUT_REASON)]
    assert "N.txt: holds the first" in metadata["file_endings"].value


def test_an_overlong_line_fails_at_once_with_a_short_message(sample_roots: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "emotion6"
    shutil.copytree(sample_roots["emotion6"], root)
    truth = root / "ground_truth.txt"
    truth.write_bytes(truth.read_bytes().split(b"\n")[0] + b"\n" + b"y" * (3 << 20) + b"\n")
    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        result = materialize([raw_annotations], partition_key="emotion6", resources=_resources(tmp_path / "store"),
                             run_config={"ops": {"raw_annotations": {"config": {"root": str(root)}}}},
                             instance=instance, raise_on_error=False)
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error
        assert "ground_truth.txt: line 2 is 3,145,728 bytes long, over the limit" in failure.message
        assert len(failure.to_string()) < 5000
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    stored = sum(f.stat().st_size for f in home.rglob("*") if f.is_file())
    assert stored < 3 << 20  # the line is in no event, log or message


_OBSERVE = """
from dagster import DagsterInstance
from eemo_pipeline.definitions import defs
instance = DagsterInstance.ephemeral()
result = defs.resolve_job_def("observe_sources").execute_in_process(instance=instance)
print(result.success)
print("\\n".join(e.user_message for e in instance.all_logs(result.run_id) if "skipped" in e.user_message))
"""


def test_a_fifo_in_a_source_root_does_not_hang_the_daily_observation(
    sample_roots: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "gaped"
    shutil.copytree(sample_roots["gaped"], root)
    os.mkfifo(root / "A" / "A003.bmp")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), root_variable("gaped"): str(root),
           "EEMO_STORAGE": str(tmp_path / "store")}
    done = subprocess.run([sys.executable, "-c", _OBSERVE], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "True", "gaped: skipped 1 entries that are no files (FIFO, socket or device): A/A003.bmp"
    ]
