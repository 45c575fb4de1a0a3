"""Lineage: one JSON record per materialization, and a DuckDB database of lineage tables and Parquet views.

Writers never touch DuckDB. Every materialization drops one small JSON file under
``<storage>/_lineage/records/`` under a name no other writer can pick, so any number of concurrent runs record
without a lock: the IO manager stages it (:func:`stage_record`) and renames it in the same commit as the data and
quarantine it describes (``eemo_pipeline.storage.commit``), last, so a record never names data that is not in place.

:func:`refresh` is the single DuckDB writer. It takes an exclusive ``flock`` on ``<storage>/_lineage/.lock``
(so two refreshes wait for each other instead of failing on DuckDB's own file lock), builds a fresh database
in a temporary file and renames it over ``<storage>/lineage.duckdb``. Readers (:func:`connect`,
:func:`query`, ``eemo sql``) open that file read-only and never take the lock: a reader that opened the old
file keeps reading it, the next one opens the new one. Nothing ever writes into ``lineage.duckdb`` in place.

Database layout:

- ``materializations``: one row per record (asset, partition, run_id, code_version, data_version,
  row_count, file, materialized_at, input_data_versions as JSON, parameters as JSON, record_file);
  ``parameters`` holds what an asset computed from its data and applied to it (e.g. ``vad_scores``'
  normalisation bounds), so that a value can be traced back to the numbers that shaped it.
- ``materialization_inputs``: one row per input of a materialization (input_asset, input_partition,
  input_data_version), parsed from the ``"asset[partition]"`` keys.
- one view per asset over its Parquet output(s), named after the asset (``raw_annotations``,
  ``label_taxonomy``, ...): a partitioned asset is ``read_parquet('<abs>/<asset>/*.parquet',
  union_by_name=true)``, so a partition written after the refresh shows up without one.
- ``generated_text``: the generation stages (``image_descriptions``, ``emotion_reasoning``,
  ``descriptive_answers``) in one view, with an ``asset`` column.
- ``subset_rows``: ``eemodb_qa`` and ``eemodb_assess`` in one view, with a ``subset`` column.
- ``quarantine``: every quarantine file, with ``asset`` and ``partition`` taken from its path.

An asset without output files has no view (and a combined view lacks its part); a query naming it fails
with DuckDB's catalog error. Every view reads Parquet by absolute path, so the database works from any
working directory (but moves with the storage only after a refresh).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from eemo_pipeline.storage import glob_escape, partial_path, sweep_partials

DATABASE_NAME = "lineage.duckdb"
LINEAGE_DIR = "_lineage"
RECORDS_DIR = "records"
LOCK_NAME = ".lock"
QUARANTINE_DIR = "quarantine"
DEFAULT_LOCK_TIMEOUT_S = 300.0

GENERATED_TEXT_ASSETS = ("image_descriptions", "emotion_reasoning", "descriptive_answers")
SUBSET_ASSETS = ("eemodb_qa", "eemodb_assess")

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.=-]+")
_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------------- records


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


# ---------------------------------------------------------------------------------------------- the writer


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
        columns = "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in _RECORD_COLUMNS.items()) + "}"
        source = (
            f"read_json({_literal(directory.as_posix() + '/*.json')}, format = 'auto', columns = {columns}, "
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
            f"CREATE VIEW {_ident(asset)} AS "
            f"SELECT * FROM read_parquet({_literal(pattern.as_posix())}, union_by_name = true)"
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
                FROM read_parquet({_literal(prefix + '**/*.parquet')}, union_by_name = true, filename = true)
            )
        """)


def _union_view(con: duckdb.DuckDBPyConnection, name: str, label: str, assets: list[str]) -> None:
    if assets:
        parts = [f"SELECT {_literal(asset)} AS {_ident(label)}, * FROM {_ident(asset)}" for asset in assets]
        con.execute(f"CREATE VIEW {_ident(name)} AS " + " UNION ALL BY NAME ".join(parts))


def _literal(text: str) -> str:
    """A SQL string literal (only for names and paths from the storage folder, never for user input)."""
    return "'" + str(text).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------------------------------------- readers


# What a read-only query may be: anything else (COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, CALL, CREATE, ...) is refused.
READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")
READ_ONLY_HINT = "eemo sql is read-only: it runs SELECT and EXPLAIN and reads only files under the storage root"


def connect(storage: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection over the lineage database (built first when missing). Never takes the write lock.

    The file is attached read-only as catalog ``lineage`` to a private in-memory database, so every call opens
    the current ``lineage.duckdb`` (a plain ``duckdb.connect(path)`` would reuse an instance this process
    already has open, i.e. a database a refresh has since replaced). ``read_only=True`` makes ``lineage`` the
    default catalog: tables and views answer unqualified and any write fails. ``read_only=False`` leaves the
    in-memory catalog as the default (create scratch tables and macros there; nothing is written back, the
    file belongs to :func:`refresh`) with ``lineage`` on the search path, so unqualified names still find it.
    Either way the connection reaches no file outside the storage root (``enable_external_access`` off, the root
    the one allowed directory), installs and loads no extension, and its configuration is locked.
    """
    path = ensure_database(storage)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {_literal(str(path))} AS lineage (READ_ONLY)")
        if read_only:
            con.execute("USE lineage")
        else:
            con.execute("SET search_path = 'memory.main,lineage.main'")
        root = Path(storage).resolve().as_posix().rstrip("/") + "/"
        con.execute(f"SET allowed_directories = [{_literal(root)}]")
        for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions"):
            con.execute(f"SET {setting} = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise ``duckdb.PermissionException`` unless every statement of ``sql`` is a SELECT or an EXPLAIN."""
    for statement in con.extract_statements(sql):
        kind = statement.type.name
        if kind not in READ_ONLY_STATEMENTS:
            raise duckdb.PermissionException(f"{READ_ONLY_HINT}; refused a {kind} statement")


def query(storage: Path, sql: str, params: Mapping[str, Any] | list[Any] | None = None) -> pl.DataFrame:
    """Run ``sql`` read-only on the lineage database; ``params`` bind ``$name`` (a mapping) or ``?`` (a list).

    Only SELECT and EXPLAIN statements run (``check_read_only``); a file outside the storage root is refused.
    """
    con = connect(storage, read_only=True)
    try:
        check_read_only(con, sql)
        try:
            return run_query(con, sql, params)
        except duckdb.PermissionException as error:
            raise duckdb.PermissionException(f"{READ_ONLY_HINT}: {error}") from error
    finally:
        con.close()


def run_query(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | list[Any] | None = None
) -> pl.DataFrame:
    relation = con.sql(sql, params=dict(params) if isinstance(params, Mapping) else params)
    if relation is None:
        return pl.DataFrame()
    return pl.from_arrow(relation.to_arrow_table())  # type: ignore[return-value]


def format_table(frame: pl.DataFrame, max_rows: int | None = None, max_width: int = 80) -> str:
    """A Markdown table (header row, rule, one line per row) and the row count; cells cut at ``max_width``."""
    shown = frame if max_rows is None or max_rows < 0 else frame.head(max_rows)
    header = [str(name) for name in frame.columns]
    body = [[_cell(value, max_width) for value in row] for row in shown.iter_rows()]
    widths = [max([len(h), 3, *(len(row[i]) for row in body)]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    lines = [line(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|", *map(line, body)]
    more = f", {frame.height - shown.height} not shown" if shown.height < frame.height else ""
    lines.append(f"({frame.height} row{'s' if frame.height != 1 else ''}{more})")
    return "\n".join(lines)


def _cell(value: Any, max_width: int) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    text = text.replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


# ---------------------------------------------------------------------------------------------- examples


@dataclass(frozen=True)
class ExampleQuery:
    description: str
    sql: str
    params: dict[str, str | None]  # parameter -> default (None: required)

    def bind(self, given: Mapping[str, str]) -> dict[str, str | None]:
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; this query takes {sorted(self.params)}")
        bound = {name: given.get(name, default) for name, default in self.params.items()}
        missing = sorted(name for name, value in bound.items() if value is None)
        if missing:
            raise ValueError(f"missing parameter(s) {missing}: pass --param NAME=VALUE")
        return bound


QA_ROW_LINEAGE = """
-- Source rows (raw_annotations) and model calls (generated_text) behind one QA or Assess row.
WITH target AS (
    SELECT subset, row_id, template_id, sources, source_image_ids, provenance
    FROM subset_rows WHERE row_id = $row_id
),
images AS (
    SELECT subset, row_id, UNNEST(sources) AS source, UNNEST(source_image_ids) AS image_id FROM target
),
calls AS (
    SELECT subset, row_id, g.key, g.model, g.template_version
    FROM target, UNNEST(CAST(json_extract(provenance, '$.generated')
        AS STRUCT("key" VARCHAR, model VARCHAR, template_version VARCHAR)[])) AS t(g)
)
SELECT 'source_row' AS kind, i.subset, i.row_id, i.source, i.image_id, r.source_file, r.source_line,
       NULL::VARCHAR AS generated_asset, NULL::VARCHAR AS "key", NULL::VARCHAR AS model,
       NULL::VARCHAR AS template_version
FROM images i JOIN raw_annotations r ON r.source = i.source AND r.image_id = i.image_id
GROUP BY ALL
UNION ALL
SELECT 'model_call', c.subset, c.row_id, g.source, g.image_id, NULL, NULL, g.asset, c.key,
       coalesce(g.model, c.model), coalesce(g.template_version, c.template_version)
FROM calls c LEFT JOIN generated_text g ON g.key = c.key
ORDER BY kind DESC, source, image_id, source_file, source_line, "key"
"""

ROWS_FROM_SOURCE_FILE = """
-- QA and Assess rows with at least one image annotated in the given file of the given source.
WITH images AS (
    SELECT DISTINCT source, image_id FROM raw_annotations WHERE source = $source AND source_file = $source_file
),
row_images AS (
    SELECT subset, row_id, task, sub_task, template_id,
           UNNEST(sources) AS source, UNNEST(source_image_ids) AS image_id
    FROM subset_rows
)
SELECT subset, row_id, task, sub_task, template_id, list_sort(list_distinct(list(image_id))) AS image_ids
FROM row_images JOIN images USING (source, image_id)
GROUP BY ALL
ORDER BY subset, row_id
"""

TEMPLATE_SOURCE_COUNTS = """
-- Rows per subset, template and source (a row with images of two sources counts for both).
SELECT subset, template_id, source, count(DISTINCT row_id) AS "rows"
FROM (SELECT subset, row_id, template_id, UNNEST(list_distinct(sources)) AS source FROM subset_rows)
GROUP BY ALL
ORDER BY subset, template_id, source
"""

MATERIALIZATION_HISTORY = """
-- Every recorded materialization of one asset partition, oldest first ($partition '' = unpartitioned).
SELECT materialized_at, run_id, code_version, row_count, data_version,
       data_version IS DISTINCT FROM lag(data_version) OVER (ORDER BY materialized_at) AS changed,
       file, input_data_versions
FROM materializations
WHERE asset = $asset AND coalesce(partition, '') = coalesce($partition, '')
ORDER BY materialized_at
"""

EXAMPLE_QUERIES: dict[str, ExampleQuery] = {
    "qa_row_lineage": ExampleQuery(
        "Which source rows (raw_annotations source_file, source_line) and which model calls (generated_text key, "
        "model, template_version) produced a QA or Assess row. Parameter: row_id.",
        QA_ROW_LINEAGE,
        {"row_id": None},
    ),
    "rows_from_source_file": ExampleQuery(
        "Which QA and Assess rows depend on a source file, e.g. source=emotion6 source_file=ground_truth.txt. "
        "Parameters: source, source_file (relative to the source root, as in raw_annotations).",
        ROWS_FROM_SOURCE_FILE,
        {"source": None, "source_file": None},
    ),
    "template_source_counts": ExampleQuery(
        "How many rows each template and source contributed to QA and Assess.",
        TEMPLATE_SOURCE_COUNTS,
        {},
    ),
    "materialization_history": ExampleQuery(
        "Materialization history of an asset partition: runs, row counts, data versions and whether the data "
        "changed. Parameters: asset, partition (empty or omitted for an unpartitioned asset).",
        MATERIALIZATION_HISTORY,
        {"asset": None, "partition": ""},
    ),
}
