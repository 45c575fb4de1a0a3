"""The single writer of ``<storage>/lineage.duckdb``: a file lock, a build in a temporary file, a rename."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb

from eemo_pipeline.lineage.records import DATABASE_NAME, database_path, lineage_dir, parquet_problem, records_dir

LOCK_NAME = ".lock"
QUARANTINE_DIR = "quarantine"
DEFAULT_LOCK_TIMEOUT_S = 300.0

GENERATED_TEXT_ASSETS = ("image_descriptions", "emotion_reasoning", "descriptive_answers")
SUBSET_ASSETS = ("eemodb_qa", "eemodb_assess")
# Tables describing the build itself: the storage root its views read, and the files it left out.
INFO_TABLE, UNREADABLE_TABLE = "database_info", "unreadable_files"
# A write into the storage root that fails for these reasons means a read-only root (mount, permissions).
_READ_ONLY_ERRORS = (errno.EROFS, errno.EACCES, errno.EPERM)


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
        return _build(storage, database_path(storage))


def _is_current(storage: Path) -> bool:
    """The database exists, was built for this storage root (not for the folder it was copied or moved from), and
    no materialization record or Parquet output is newer than it."""
    target = database_path(storage)
    if not target.is_file():
        return False
    built = target.stat().st_mtime
    if any(mtime > built for mtime in _input_mtimes(storage)):
        return False
    try:
        return database_info(target).storage_root == storage.as_posix()
    except duckdb.Error:  # a database of an older layout (no database_info) or a damaged file
        return False


def _input_mtimes(storage: Path) -> Iterator[float]:
    """Modification times of what a build reads: the records and every Parquet file of the outputs."""
    folders = [records_dir(storage), *(storage / asset for asset, kind in discover_outputs(storage).items() if kind)]
    paths = [Path(entry.path) for folder in folders if folder.is_dir() for entry in os.scandir(folder)]
    paths += storage.glob("*.parquet")
    paths += (storage / QUARANTINE_DIR).rglob("*.parquet")
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # a writer's temporary file, renamed meanwhile
            yield path.lstat().st_mtime


def ensure_database(storage: Path, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Path:
    """``lineage.duckdb``, (re)built first when it is missing, older than the newest materialization record or
    Parquet output, or built for another storage root (a concurrent builder is waited for, not repeated)."""
    storage = Path(storage).resolve()
    target = database_path(storage)
    if _is_current(storage):
        return target
    with write_lock(storage, lock_timeout_s):
        return target if _is_current(storage) else _build(storage, target)


@dataclasses.dataclass(frozen=True)
class DatabaseInfo:
    path: Path
    storage_root: str  # the root its views read
    unreadable: tuple[tuple[str, str], ...]  # (storage-relative file, why) of every Parquet file left out
    unwritable: str | None = None  # why the storage root cannot be written, when the database is a temporary one


@contextlib.contextmanager
def current_database(storage: Path, refresh_first: bool = False,
                     lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[DatabaseInfo]:
    """An up-to-date lineage database for ``storage`` for the ``with`` block: ``<storage>/lineage.duckdb``
    (rebuilt first with ``refresh_first``, else when :func:`ensure_database` would), or, when the storage root cannot
    be written (a read-only mount or folder), one built in a temporary folder that is removed when the block ends."""
    storage = Path(storage).resolve()
    try:
        path = refresh(storage, lock_timeout_s) if refresh_first else ensure_database(storage, lock_timeout_s)
    except OSError as error:
        if error.errno not in _READ_ONLY_ERRORS:
            raise
        with tempfile.TemporaryDirectory(prefix="eemo-lineage-") as folder:
            info = database_info(_build(storage, Path(folder) / DATABASE_NAME))
            yield dataclasses.replace(info, unwritable=f"{error.strerror or error}: {error.filename or storage}")
        return
    yield database_info(path)


def database_info(path: Path) -> DatabaseInfo:
    """What a built database records about its build (``duckdb.Error`` for a file without those tables)."""
    con = duckdb.connect()  # attached, not opened: no cached instance of a file a refresh has since replaced
    try:
        con.execute(f"ATTACH {literal(str(path))} AS built (READ_ONLY)")
        (root,) = con.execute(f"SELECT storage_root FROM built.{INFO_TABLE}").fetchone()
        unreadable = tuple(con.execute(f"SELECT file, problem FROM built.{UNREADABLE_TABLE} ORDER BY file").fetchall())
    finally:
        con.close()
    return DatabaseInfo(Path(path), root, unreadable)


def _build(storage: Path, target: Path) -> Path:
    work = target.parent if target != database_path(storage) else lineage_dir(storage)
    work.mkdir(parents=True, exist_ok=True)
    partial = work / f".{DATABASE_NAME}.{os.getpid()}.{uuid.uuid4().hex}.partial"
    try:
        con = duckdb.connect(str(partial))
        try:
            _create_tables(con, storage)
            unreadable = _create_views(con, storage)
            con.execute(f"CREATE TABLE {INFO_TABLE} AS SELECT {literal(storage.as_posix())} AS storage_root, "
                        "now() AS built_at")
            con.execute(f"CREATE TABLE {UNREADABLE_TABLE} (file VARCHAR, problem VARCHAR)")
            if unreadable:
                con.executemany(f"INSERT INTO {UNREADABLE_TABLE} VALUES (?, ?)", unreadable)
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


def _readable(storage: Path, files: list[Path], unreadable: list[tuple[str, str]]) -> list[Path]:
    """``files`` that read as Parquet; the others are appended to ``unreadable`` as (storage-relative path, why)."""
    good = []
    for path in files:
        problem = parquet_problem(path)
        if problem is None:
            good.append(path)
        else:
            unreadable.append((path.relative_to(storage).as_posix(), problem))
    return good


def _source(pattern: Path, files: list[Path], good: list[Path], *extra: str) -> str | None:
    """``read_parquet`` over the glob ``pattern`` when every file it matches reads (a partition written later
    then shows up without a rebuild), else over the readable files by name; None when none reads."""
    if not good:
        return None
    paths = literal(pattern.as_posix()) if len(good) == len(files) else \
        "[" + ", ".join(literal(path.as_posix()) for path in good) + "]"
    return f"read_parquet({paths}, union_by_name = true{''.join(', ' + option for option in extra)})"


def _create_views(con: duckdb.DuckDBPyConnection, storage: Path) -> list[tuple[str, str]]:
    """One view per asset output, the combined views and the quarantine view; returns the Parquet files left out
    because they do not read (a damaged or foreign file, a FIFO), each with why."""
    unreadable: list[tuple[str, str]] = []
    outputs = discover_outputs(storage)
    reserved = {"materializations", "materialization_inputs", "generated_text", "subset_rows", QUARANTINE_DIR,
                INFO_TABLE, UNREADABLE_TABLE}
    viewed = []
    for asset, kind in outputs.items():
        if asset in reserved:
            continue
        pattern = (storage / asset / "*.parquet") if kind else (storage / f"{asset}.parquet")
        files = sorted(p for p in pattern.parent.glob(pattern.name) if not p.name.startswith("."))
        source = _source(pattern, files, _readable(storage, files, unreadable))
        if source is not None:
            con.execute(f"CREATE VIEW {ident(asset)} AS SELECT * FROM {source}")
            viewed.append(asset)
    _union_view(con, "generated_text", "asset", [a for a in GENERATED_TEXT_ASSETS if a in viewed])
    _union_view(con, "subset_rows", "subset", [a for a in SUBSET_ASSETS if a in viewed])

    quarantine = storage / QUARANTINE_DIR
    files = sorted(quarantine.rglob("*.parquet")) if quarantine.is_dir() else []
    source = _source(quarantine / "**" / "*.parquet", files, _readable(storage, files, unreadable), "filename = true")
    if source is not None:
        prefix = quarantine.as_posix() + "/"
        con.execute(f"""
            CREATE VIEW quarantine AS
            SELECT replace(split_part(_rel, '/', 1), '.parquet', '') AS asset,
                   CASE WHEN contains(_rel, '/') THEN replace(split_part(_rel, '/', 2), '.parquet', '') ELSE '' END
                       AS partition,
                   COLUMNS(lambda c: c NOT IN ('asset', 'partition', 'filename', '_rel'))
            FROM (SELECT *, substr(filename, {len(prefix) + 1}) AS _rel FROM {source})
        """)
    return unreadable


def _union_view(con: duckdb.DuckDBPyConnection, name: str, label: str, assets: list[str]) -> None:
    if assets:
        parts = [f"SELECT {literal(asset)} AS {ident(label)}, * FROM {ident(asset)}" for asset in assets]
        con.execute(f"CREATE VIEW {ident(name)} AS " + " UNION ALL BY NAME ".join(parts))


def literal(text: str) -> str:
    """A SQL string literal (only for names and paths from the storage folder, never for user input)."""
    return "'" + str(text).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
