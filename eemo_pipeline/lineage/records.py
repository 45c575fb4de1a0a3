"""Materialization records: one JSON file per output under ``<storage>/_lineage/records/``, written lock-free."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eemo_pipeline.storage import glob_escape, partial_path, sweep_partials

DATABASE_NAME = "lineage.duckdb"
LINEAGE_DIR = "_lineage"
RECORDS_DIR = "records"

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.=-]+")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class MaterializationRecord:
    """What one materialization of one asset partition wrote, and what it read."""

    asset: str
    partition: str | None
    run_id: str
    data_version: str
    row_count: int
    file: str
    code_version: str | None = None
    input_data_versions: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    materialized_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @classmethod
    def for_output(
        cls,
        storage: Path,
        asset: str,
        partition: str | None,
        path: Path,
        *,
        run_id: str,
        row_count: int,
        code_version: str | None = None,
        input_data_versions: Mapping[str, str] | None = None,
        parameters: Mapping[str, Any] | None = None,
        content: Path | None = None,
    ) -> MaterializationRecord:
        """The record of a Parquet file written at ``path``: hashes it (or ``content``, the same bytes under their
        temporary name before a commit) and stores its storage-relative path."""
        path = Path(path).resolve()
        root = Path(storage).resolve()
        try:
            relative = path.relative_to(root).as_posix()
        except ValueError:
            relative = path.as_posix()
        return cls(
            asset=asset,
            partition=partition or None,
            run_id=run_id,
            data_version=file_data_version(content or path),
            row_count=int(row_count),
            file=relative,
            code_version=code_version,
            input_data_versions=dict(input_data_versions or {}),
            parameters=dict(parameters or {}),
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, ensure_ascii=False)

    def output_path(self, storage: Path) -> Path:
        """Where the output lies: ``file`` under the storage root (or as stored, when absolute)."""
        path = Path(self.file)
        return path if path.is_absolute() else Path(storage) / path


def input_key(asset: str, partition: str | None = None) -> str:
    """Key of an input in ``input_data_versions`` (and in a subset row's provenance): ``asset[partition]``."""
    return f"{asset}[{partition}]" if partition else asset


def file_data_version(path: Path) -> str:
    """sha256 (hex) of the file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def parquet_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as Parquet (not a regular file, or its footer does not parse), else None. Reads
    only the footer; never opens a FIFO, socket or device (it would block or consume)."""
    import stat

    import pyarrow.parquet as pq

    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    try:
        pq.read_metadata(path)
    except Exception as error:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError and others for damaged files
        return f"is not a readable Parquet file ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
    return None


def output_problem(record: MaterializationRecord, storage: Path) -> str | None:
    """Why the file ``record`` names no longer holds what was written (it does not read as Parquet, or its bytes
    differ from the record's content hash: changed by hand), else None; a file that is gone is
    :func:`missing_outputs`' business."""
    path = record.output_path(storage)
    problem = parquet_problem(path)
    if problem is None and file_data_version(path) != record.data_version:
        problem = "was changed after it was written (its sha256 differs from the lineage record)"
    return problem


def lineage_dir(storage: Path) -> Path:
    return Path(storage) / LINEAGE_DIR


def records_dir(storage: Path) -> Path:
    return lineage_dir(storage) / RECORDS_DIR


def database_path(storage: Path) -> Path:
    return Path(storage) / DATABASE_NAME


def record_materialization(storage: Path, record: MaterializationRecord) -> Path:
    """Write ``record`` as ``<storage>/_lineage/records/<run>__<asset>__<partition>__<uuid>.json``; returns it.

    Lock-free and safe from any number of threads and processes: the name carries a fresh uuid4 and the file
    appears by ``os.replace`` of a hidden temporary file, so a reader sees either no file or the whole record.
    """
    partial, path = stage_record(storage, record)
    try:
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def stage_record(storage: Path, record: MaterializationRecord) -> tuple[Path, Path]:
    """Write ``record`` under its temporary name, fsynced; returns ``(temporary, final)`` for the caller to rename
    (the IO manager renames it in the commit of the partition's files). A failed write removes it and raises."""
    directory = records_dir(storage)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_record_stem(record.run_id or 'run', record.asset, record.partition)}__{uuid.uuid4().hex}.json"
    partial = partial_path(path)
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(record.to_json())
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial, path


def sweep_record_partials(storage: Path, asset: str, partition: str | None) -> None:
    """Remove temporary records of ``asset``'s ``partition`` (any run) left by writers that no longer run."""
    directory = records_dir(storage)
    if directory.is_dir():
        sweep_partials(directory, f".*__{glob_escape(_record_stem(asset, partition))}__*.json.*.partial")


def _record_stem(*parts: str | None) -> str:
    return "__".join(_SAFE_NAME.sub("_", part or "-")[:80] for part in parts)


def read_records(storage: Path) -> list[MaterializationRecord]:
    """Every record under ``storage``, oldest first (for tests and tools; the database reads the files itself)."""
    records = []
    for path in sorted(records_dir(storage).glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        records.append(MaterializationRecord(**{f.name: raw.get(f.name) for f in dataclasses.fields(MaterializationRecord)}))
    return sorted(records, key=lambda r: r.materialized_at)


def latest_records(storage: Path) -> dict[tuple[str, str | None], MaterializationRecord]:
    """The newest record of every asset partition: ``(asset, partition) -> record``."""
    return {(record.asset, record.partition): record for record in read_records(storage)}


def missing_outputs(storage: Path) -> list[MaterializationRecord]:
    """The newest record of every asset partition whose file is no longer there (deleted by hand, say): its rows
    are in no view, and ``eemo status`` calls it missing."""
    return [record for record in latest_records(storage).values() if not record.output_path(storage).is_file()]
