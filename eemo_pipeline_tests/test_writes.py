"""Writes of an asset partition: data, quarantine and lineage record are replaced together or not at all
(``eemo_pipeline.storage.commit``), a full disk keeps the last good build whole, a crash between the renames is
finished by the next run, and an unpartitioned asset refuses to be written under a partition key."""

# No `from __future__ import annotations`: Dagster reads the assets' config and resource annotations live.

import contextlib
import errno
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetIn, Config, Definitions, StaticPartitionsDefinition, asset, define_asset_job, materialize

from eemo_pipeline.lineage import read_records
from eemo_pipeline.resources import ParquetIOManager, StorageResource
from eemo_pipeline.storage import COMMITS_DIR, asset_path, commit_key, quarantine_path, recover

PARTITIONS = StaticPartitionsDefinition(["a"])


class BuildConfig(Config):
    build: int = 1
    data_bytes: int = 0  # incompressible bytes added to the data
    quarantine_bytes: int = 0  # incompressible bytes added to the quarantine


def _noise(size: int) -> str:
    return os.urandom(size // 2).hex() if size else ""


@asset(partitions_def=PARTITIONS)
def scores(context, config: BuildConfig, storage: StorageResource) -> pl.DataFrame:
    storage.stage_quarantine("scores", context.partition_key, pl.DataFrame(
        {"file": ["in.csv"], "line": [config.build], "reason": [f"bad {config.build}"],
         "record": [_noise(config.quarantine_bytes)]}
    ))
    return pl.DataFrame({"build": [config.build], "blob": [_noise(config.data_bytes)]})


@asset(partitions_def=PARTITIONS, ins={"scores": AssetIn()})
def score_copy(scores: pl.DataFrame) -> pl.DataFrame:
    return scores


@asset
def lexicon(storage: StorageResource) -> pl.DataFrame:
    storage.stage_quarantine("lexicon", None, pl.DataFrame({"file": ["x"], "line": [1], "reason": ["r"], "record": [""]}))
    return pl.DataFrame({"word": ["calm"]})


@asset
def taxonomy() -> pl.DataFrame:  # touches no storage: only the IO manager can refuse it
    return pl.DataFrame({"label": ["calm"]})


def _resources(root: Path) -> dict[str, object]:
    store = StorageResource(root=str(root))
    return {"io_manager": ParquetIOManager(storage=store), "storage": store}


def _build(root: Path, build: int, **sizes: int):
    return materialize([scores], partition_key="a", resources=_resources(root), raise_on_error=False,
                       run_config={"ops": {"scores": {"config": {"build": build, **sizes}}}})


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (partition locks aside) by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".lock"}


def _leftovers(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.name.endswith(".partial") or p.suffix == ".journal"]


@contextlib.contextmanager
def _small_filesystem(size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("a full disk needs a small tmpfs: mounting one needs root")
    directory = Path(tempfile.mkdtemp(prefix="eemo-full-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                             capture_output=True, text=True)
    if mounted.returncode:
        directory.rmdir()
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)
        directory.rmdir()


@pytest.mark.parametrize("too_big", ["data_bytes", "quarantine_bytes"])
def test_disk_full_keeps_the_last_good_build_whole(too_big: str) -> None:
    with _small_filesystem("2m") as root:
        assert _build(root, 1).success
        before = _files(root)
        assert {"scores/a.parquet", "quarantine/scores/a.parquet"} <= set(before)

        result = _build(root, 2, **{too_big: 8 << 20})

        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert "No space left on device" in str(failure.step_failure_data.error)
        assert _files(root) == before  # data, quarantine and lineage record bytes unchanged
        assert _leftovers(root) == []
        assert _build(root, 3).success  # the disk is usable again once the big write is gone
        assert pl.read_parquet(root / "scores" / "a.parquet")["build"].to_list() == [3]


def test_disk_full_simulated_keeps_the_last_good_build_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same guarantee without root: the data write fails with ENOSPC after the quarantine was staged."""
    assert _build(tmp_path, 1).success
    before = _files(tmp_path)
    write = pl.DataFrame.write_parquet

    def full_disk(frame: pl.DataFrame, path, *args, **kwargs):
        if "build" in frame.columns:
            Path(path).write_bytes(b"PAR1 half a file")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(frame, path, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full_disk)
    assert not _build(tmp_path, 2).success
    assert _files(tmp_path) == before
    assert _leftovers(tmp_path) == []


def test_crash_between_renames_is_finished_by_the_next_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _build(tmp_path, 1).success
    renames = []
    replace = os.replace

    def crash_after_the_first_file(source, target):
        # The journal's own rename comes first; the crash hits after the quarantine, before the data.
        if Path(target).suffix != ".journal" and str(tmp_path) in str(target):
            renames.append(Path(target).relative_to(tmp_path).as_posix())
            if len(renames) > 1:
                raise OSError(errno.EIO, "simulated crash between renames")
        return replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", crash_after_the_first_file)
        assert not _build(tmp_path, 2).success
    assert renames == ["quarantine/scores/a.parquet", "scores/a.parquet"]
    # Cut off mid-commit: the new quarantine beside the old data, the journal says what is left to do.
    assert pl.read_parquet(quarantine_path(tmp_path, "scores", "a"))["line"].to_list() == [2]
    assert pl.read_parquet(asset_path(tmp_path, "scores", "a"))["build"].to_list() == [1]
    assert (tmp_path / COMMITS_DIR / f"{commit_key('scores', 'a')}.journal").is_file()
    assert [r.row_count for r in read_records(tmp_path)] == [1]

    # The next run reads the partition: the commit is finished first, so it sees build 2 whole.
    result = materialize([scores, score_copy], selection=[score_copy], partition_key="a",
                         resources=_resources(tmp_path))
    assert result.success
    assert pl.read_parquet(asset_path(tmp_path, "score_copy", "a"))["build"].to_list() == [2]
    assert pl.read_parquet(asset_path(tmp_path, "scores", "a"))["build"].to_list() == [2]
    records = [r for r in read_records(tmp_path) if r.asset == "scores"]
    assert len(records) == 2 and records[-1].file == "scores/a.parquet"
    assert _leftovers(tmp_path) == []
    recover(tmp_path, commit_key("scores", "a"))  # nothing left: a no-op
    assert pl.read_parquet(asset_path(tmp_path, "scores", "a"))["build"].to_list() == [2]


def test_a_killed_writers_partial_files_are_removed_by_the_next_commit(tmp_path: Path) -> None:
    assert _build(tmp_path, 1).success
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    left = [
        tmp_path / "scores" / f".a.parquet.{pid}.1.partial",
        tmp_path / "quarantine" / "scores" / f".a.parquet.{pid}.1.partial",
        tmp_path / "_lineage" / "records" / f".run__scores__a__0123.json.{pid}.1.partial",
    ]
    alive = tmp_path / "scores" / f".a.parquet.{os.getppid()}.1.partial"  # a live writer's file stays
    for path in [*left, alive]:
        path.write_bytes(b"half")
    assert _build(tmp_path, 2).success
    assert _leftovers(tmp_path) == [alive.relative_to(tmp_path).as_posix()]


def test_an_unpartitioned_asset_under_a_partition_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    """What `dagster asset materialize --select scores,lexicon,taxonomy --partition a` runs: `lexicon` fails when
    it asks the storage resource for its root (before it stages anything), `taxonomy` in the IO manager."""
    job = define_asset_job("mixed", selection=["scores", "lexicon", "taxonomy"])
    defs = Definitions(assets=[scores, lexicon, taxonomy], jobs=[job], resources=_resources(tmp_path))
    result = defs.resolve_job_def("mixed").execute_in_process(partition_key="a", raise_on_error=False)

    assert not result.success
    failures = {e.step_key: e.step_failure_data for e in result.all_events if e.is_step_failure}
    assert set(failures) == {"lexicon", "taxonomy"}
    for name, failure in failures.items():
        assert f"{name} is not partitioned, but this run is for partition 'a'" in failure.error.message
        assert failure.user_failure_data is not None  # a Failure: no retry
    records = [f"_lineage/records/{p.name}" for p in (tmp_path / "_lineage" / "records").iterdir()]
    assert sorted(_files(tmp_path)) == sorted(["quarantine/scores/a.parquet", "scores/a.parquet", *records])
    assert {r.asset for r in read_records(tmp_path)} == {"scores"}
    assert _leftovers(tmp_path) == []
