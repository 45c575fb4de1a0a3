"""The single writer of ``<storage>/lineage.duckdb``: a file lock, a build in a temporary file, a rename."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb

from eemo_pipeline.lineage.records import DATABASE_NAME, database_path, lineage_dir, records_dir

LOCK_NAME = ".lock"
QUARANTINE_DIR = "quarantine"
DEFAULT_LOCK_TIMEOUT_S = 300.0

GENERATED_TEXT_ASSETS = ("image_descriptions", "emotion_reasoning", "descriptive_answers")
SUBSET_ASSETS = ("eemodb_qa", "eemodb_assess")


@contextlib.contextmanager
def write_lock(storage: Path, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Exclusive ``flock`` on ``<storage>/_lineage/.lock``, waited for up to ``timeout_s`` (TimeoutError after)."""
    path = lineage_dir(storage) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"another lineage refresh held {path} for more than {timeout_s:g} s") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def refresh(storage: Path, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Path:
    """(Re)build ``<storage>/lineage.duckdb`` from the records and the Parquet files present; returns its path.

    Serialized by :func:`write_lock`; the new database is built in a temporary file and renamed into place.
    """
    storage = Path(storage).resolve()
    with write_lock(storage, lock_timeout_s):
        return _build(storage)


def _is_current(storage: Path) -> bool:
    """The database exists and no materialization was recorded after it was built."""
    target = database_path(storage)
    if not target.is_file():
        return False
    built = target.stat().st_mtime
    records = records_dir(storage)
    if not records.is_dir():
        return True
    with os.scandir(records) as entries:
        return all(entry.stat().st_mtime <= built for entry in entries)


def ensure_database(storage: Path, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Path:
    """``lineage.duckdb``, (re)built first when it is missing or older than the newest materialization record
    (a concurrent builder is waited for, not repeated)."""
    storage = Path(storage).resolve()
    target = database_path(storage)
    if _is_current(storage):
        return target
    with write_lock(storage, lock_timeout_s):
        return target if _is_current(storage) else _build(storage)


def _build(storage: Path) -> Path:
    target = database_path(storage)
    work = lineage_dir(storage)
    work.mkdir(parents=True, exist_ok=True)
    partial = work / f".{DATABASE_NAME}.{os.getpid()}.{uuid.uuid4().hex}.partial"
    try:
        con = duckdb.connect(str(partial))
        try:
            _create_tables(con, storage)
            _create_views(con, storage)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
        Path(f"{partial}.wal").unlink(missing_ok=True)
    return target


_RECORD_COLUMNS = {
    "asset": "VARCHAR",
    "partition": "VARCHAR",
    "run_id": "VARCHAR",
    "code_version": "VARCHAR",
    "input_data_versions": "JSON",
    "parameters": "JSON",
    "data_version": "VARCHAR",
    "row_count": "BIGINT",
    "file": "VARCHAR",
    "materialized_at": "VARCHAR",
}


def _create_tables(con: duckdb.DuckDBPyConnection, storage: Path) -> None:
    directory = records_dir(storage)
    if directory.is_dir() and any(directory.glob("*.json")):
        columns = "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in _RECORD_COLUMNS.items()) + "}"
        source = (
            f"read_json({literal(directory.as_posix() + '/*.json')}, format = 'auto', columns = {columns}, "
            "filename = true, ignore_errors = true)"
        )
    else:
        source = "(SELECT " + ", ".join(f"NULL::{v} AS {k}" for k, v in _RECORD_COLUMNS.items())
        source += ", NULL::VARCHAR AS filename WHERE false)"
    con.execute(f"""
        CREATE TABLE materializations AS
        SELECT asset, partition, run_id, code_version, data_version, row_count, file,
               CAST(materialized_at AS TIMESTAMPTZ) AS materialized_at,
               input_data_versions, parameters, parse_filename(filename) AS record_file
        FROM {source}
        WHERE asset IS NOT NULL
        ORDER BY materialized_at, asset, partition
    """)
    con.execute("""
        CREATE TABLE materialization_inputs AS
        SELECT asset, partition, run_id, data_version, materialized_at, input_key,
               regexp_extract(input_key, '^([^\\[]+)', 1) AS input_asset,
               nullif(regexp_extract(input_key, '\\[(.*)\\]$', 1), '') AS input_partition,
               input_data_versions ->> input_key AS input_data_version
        FROM (
            SELECT *, unnest(json_keys(input_data_versions)) AS input_key
            FROM materializations
            WHERE input_data_versions IS NOT NULL
        )
        ORDER BY materialized_at, asset, partition, input_key
    """)


def discover_outputs(storage: Path) -> dict[str, str | None]:
    """Asset name -> ``"partitioned"`` (a folder of ``*.parquet``) or ``None`` (one ``<asset>.parquet``)."""
    found: dict[str, str | None] = {}
    storage = Path(storage)
    if not storage.is_dir():
        return found
    for entry in sorted(storage.iterdir()):
        name = entry.name
        if name.startswith((".", "_")) or name == QUARANTINE_DIR:
            continue
        if entry.is_dir() and any(p.is_file() and not p.name.startswith(".") for p in entry.glob("*.parquet")):
            found[name] = "partitioned"
        elif entry.is_file() and name.endswith(".parquet") and entry.stem not in found:
            found.setdefault(entry.stem, None)
    return found


def _create_views(con: duckdb.DuckDBPyConnection, storage: Path) -> None:
    outputs = discover_outputs(storage)
    reserved = {"materializations", "materialization_inputs", "generated_text", "subset_rows", QUARANTINE_DIR}
    for asset, kind in outputs.items():
        if asset in reserved:
            continue
        pattern = (storage / asset / "*.parquet") if kind else (storage / f"{asset}.parquet")
        con.execute(
            f"CREATE VIEW {ident(asset)} AS "
            f"SELECT * FROM read_parquet({literal(pattern.as_posix())}, union_by_name = true)"
        )
    _union_view(con, "generated_text", "asset", [a for a in GENERATED_TEXT_ASSETS if a in outputs])
    _union_view(con, "subset_rows", "subset", [a for a in SUBSET_ASSETS if a in outputs])

    quarantine = storage / QUARANTINE_DIR
    if quarantine.is_dir() and any(quarantine.rglob("*.parquet")):
        prefix = quarantine.as_posix() + "/"
        con.execute(f"""
            CREATE VIEW quarantine AS
            SELECT replace(split_part(_rel, '/', 1), '.parquet', '') AS asset,
                   CASE WHEN contains(_rel, '/') THEN replace(split_part(_rel, '/', 2), '.parquet', '') ELSE '' END
                       AS partition,
                   COLUMNS(lambda c: c NOT IN ('asset', 'partition', 'filename', '_rel'))
            FROM (
                SELECT *, substr(filename, {len(prefix) + 1}) AS _rel
                FROM read_parquet({literal(prefix + '**/*.parquet')}, union_by_name = true, filename = true)
            )
        """)


def _union_view(con: duckdb.DuckDBPyConnection, name: str, label: str, assets: list[str]) -> None:
    if assets:
        parts = [f"SELECT {literal(asset)} AS {ident(label)}, * FROM {ident(asset)}" for asset in assets]
        con.execute(f"CREATE VIEW {ident(name)} AS " + " UNION ALL BY NAME ".join(parts))


def literal(text: str) -> str:
    """A SQL string literal (only for names and paths from the storage folder, never for user input)."""
    return "'" + str(text).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
