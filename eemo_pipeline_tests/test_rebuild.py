"""The same inputs give byte-identical data in any storage root (issue #14: sums in a fixed order, no wall-clock or
path in the data; lineage timestamps live in the lineage records only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eemo_pipeline_tests.conftest import DemoRun, run_demo


def _data_files(storage: Path) -> dict[str, bytes]:
    return {path.relative_to(storage).as_posix(): path.read_bytes() for path in sorted(storage.rglob("*.parquet"))}


@pytest.mark.slow
def test_the_demo_rebuilt_into_another_storage_root_is_byte_identical(demo_run: DemoRun, tmp_path: Path) -> None:
    assert demo_run.done.returncode == 0, demo_run.done.stdout + demo_run.done.stderr
    again = run_demo(tmp_path / "elsewhere", demo_run.root / "sample")
    assert again.done.returncode == 0, again.done.stdout + again.done.stderr
    first, second = _data_files(demo_run.storage), _data_files(again.storage)
    assert len(first) > 100 and sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
