"""Read-only queries over the lineage database: which statements may run (DuckDB's own parser decides), and the
connection they run on (read-only catalog, file access only under the storage root, no temporary files, a memory
and a time limit)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from eemo_pipeline.constants import QUERY_MEMORY_LIMIT, QUERY_TIMEOUT_S
from eemo_pipeline.lineage.database import ensure_database, literal

READ_ONLY_HINT = "eemo sql is read-only: it runs SELECT and EXPLAIN of a SELECT and reads only files under the storage root"


def connect(storage: Path, read_only: bool = True, memory_limit: str = QUERY_MEMORY_LIMIT,
            database: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection over the lineage database ``database`` (default: ``<storage>/lineage.duckdb``, built
    first when missing or out of date). Never takes the write lock.

    The file is attached read-only as catalog ``lineage`` to a private in-memory database, so every call opens
    the current ``lineage.duckdb`` (a plain ``duckdb.connect(path)`` would reuse an instance this process
    already has open, i.e. a database a refresh has since replaced). ``read_only=True`` makes ``lineage`` the
    default catalog: tables and views answer unqualified and any write fails. ``read_only=False`` leaves the
    in-memory catalog as the default (create scratch tables and macros there; nothing is written back, the
    file belongs to :func:`refresh`) with ``lineage`` on the search path, so unqualified names still find it.
    Either way the connection reaches no file outside the storage root (``enable_external_access`` off, the root
    the one allowed directory), writes no temporary file (no ``temp_directory``: a query over ``memory_limit``
    fails instead of spilling into ``.tmp/`` of the working directory), installs and loads no extension, and its
    configuration is locked.
    """
    path = database or ensure_database(storage)
    con = duckdb.connect(config={"temp_directory": "", "memory_limit": memory_limit})
    try:
        con.execute(f"ATTACH {literal(str(path))} AS lineage (READ_ONLY)")
        if read_only:
            con.execute("USE lineage")
        else:
            con.execute("SET search_path = 'memory.main,lineage.main'")
        root = Path(storage).resolve().as_posix().rstrip("/") + "/"
        con.execute(f"SET allowed_directories = [{literal(root)}]")
        for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions"):
            con.execute(f"SET {setting} = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise ``duckdb.PermissionException`` unless every statement of ``sql`` is a SELECT, or an EXPLAIN (ANALYZE
    included, which runs its statement) of a SELECT. DuckDB's parser splits and classifies the statements, so
    comments, string literals and several statements in one string cannot hide a write. A string without any
    statement (``;``, a comment) raises ``duckdb.InvalidInputException``."""
    statements = con.extract_statements(sql)
    if not statements:
        raise duckdb.InvalidInputException("the query holds no SQL statement")
    for statement in statements:
        kind = statement.type
        if kind == duckdb.StatementType.EXPLAIN:
            explained = _explained_statement(con, statement.query)
            if explained is None or explained.type != duckdb.StatementType.SELECT:
                inner = explained.type.name if explained is not None else "statement it cannot read"
                raise duckdb.PermissionException(f"{READ_ONLY_HINT}; refused an EXPLAIN of a {inner}")
        elif kind != duckdb.StatementType.SELECT:
            raise duckdb.PermissionException(f"{READ_ONLY_HINT}; refused a {kind.name} statement")


def _explained_statement(con: duckdb.DuckDBPyConnection, text: str):
    """The statement an ``EXPLAIN [ANALYZE] [(options)] statement`` explains, parsed by DuckDB (None when the text
    after EXPLAIN is not exactly one statement). Token offsets from ``duckdb.tokenize`` are byte offsets."""
    data = text.encode()
    tokens = [(start, kind) for start, kind in duckdb.tokenize(text) if kind != duckdb.token_type.comment]
    words = [(start, data[start:].split(maxsplit=1)[0].upper() if kind == duckdb.token_type.keyword else b"")
             for start, kind in tokens]
    position = 1 if words and words[0][1] == b"EXPLAIN" else None
    if position is None:
        return None
    if position < len(words) and words[position][1] in (b"ANALYZE", b"ANALYSE"):
        position += 1
    candidates = [position]
    if position < len(tokens) and data[tokens[position][0]:].startswith(b"("):
        # `(select 1)` is a statement, `(FORMAT json)` options: try the whole rest first, then after the options.
        depth = 0
        for index in range(position, len(tokens)):
            token = data[tokens[index][0]:tokens[index][0] + 1]
            depth += {b"(": 1, b")": -1}.get(token, 0) if tokens[index][1] == duckdb.token_type.operator else 0
            if depth == 0:
                candidates.append(index + 1)
                break
    for candidate in candidates:
        if candidate >= len(tokens):
            continue
        try:
            statements = con.extract_statements(data[tokens[candidate][0]:].decode())
        except duckdb.Error:
            continue
        if len(statements) == 1:
            return statements[0]
    return None


def query(storage: Path, sql: str, params: Mapping[str, Any] | list[Any] | None = None, *,
          timeout_s: float = QUERY_TIMEOUT_S, memory_limit: str = QUERY_MEMORY_LIMIT) -> pl.DataFrame:
    """Run ``sql`` read-only on the lineage database; ``params`` bind ``$name`` (a mapping) or ``?`` (a list).

    Only reads run (``check_read_only``); a file outside the storage root is refused; a query that needs more
    than ``memory_limit`` fails, and one still running after ``timeout_s`` is interrupted
    (``duckdb.InterruptException`` naming the limit).
    """
    return bounded_query(storage, sql, params, timeout_s=timeout_s, memory_limit=memory_limit).frame


@dataclass(frozen=True)
class QueryResult:
    frame: pl.DataFrame
    cut: str | None = None  # "max_rows" or "max_bytes" when the result had more rows than were fetched


def bounded_query(storage: Path, sql: str, params: Mapping[str, Any] | list[Any] | None = None, *,
                  max_rows: int | None = None, max_bytes: int | None = None, timeout_s: float = QUERY_TIMEOUT_S,
                  memory_limit: str = QUERY_MEMORY_LIMIT, database: Path | None = None) -> QueryResult:
    """:func:`query` (on ``database`` when given, see :func:`connect`), fetching at most ``max_rows`` rows and
    ``max_bytes`` bytes of Arrow data (the rest of the result is never read); ``cut`` says which limit stopped it."""
    con = connect(storage, read_only=True, memory_limit=memory_limit, database=database)
    try:
        check_read_only(con, sql)
        timer = threading.Timer(timeout_s, con.interrupt)
        timer.daemon = True
        timer.start()
        try:
            relation = con.sql(sql, params=dict(params) if isinstance(params, Mapping) else params)
            if relation is None:
                return QueryResult(pl.DataFrame())
            return fetch_bounded(relation, max_rows, max_bytes)
        except duckdb.PermissionException as error:
            raise duckdb.PermissionException(f"{READ_ONLY_HINT}: {error}") from error
        except duckdb.InterruptException as error:
            raise duckdb.InterruptException(f"the query ran past its time limit of {timeout_s:g} s and was "
                                            "stopped") from error
        finally:
            timer.cancel()
    finally:
        con.close()


def fetch_bounded(relation: duckdb.DuckDBPyRelation, max_rows: int | None = None,
                  max_bytes: int | None = None, batch_rows: int = 1024) -> QueryResult:
    """The first rows of ``relation`` that fit ``max_rows`` and ``max_bytes`` (Arrow bytes), read batch by batch."""
    import pyarrow as pa

    reader = relation.to_arrow_reader(batch_rows)
    batches, rows, size, cut = [], 0, 0, None
    try:
        for batch in reader:
            take = batch.num_rows if max_rows is None else min(batch.num_rows, max_rows - rows)
            limit = "max_rows"
            if max_bytes is not None and size + batch.slice(0, take).nbytes > max_bytes:
                low, high = 0, take  # the most rows whose bytes still fit
                while low < high:
                    middle = (low + high + 1) // 2
                    low, high = (middle, high) if size + batch.slice(0, middle).nbytes <= max_bytes else (low, middle - 1)
                take, limit = low, "max_bytes"
            batches.append(batch.slice(0, take))
            rows, size = rows + take, size + batches[-1].nbytes
            if take < batch.num_rows:
                cut = limit
                break
    finally:
        reader.close()
    return QueryResult(pl.from_arrow(pa.Table.from_batches(batches, schema=reader.schema)), cut)  # type: ignore[arg-type]


def run_query(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | list[Any] | None = None
) -> pl.DataFrame:
    relation = con.sql(sql, params=dict(params) if isinstance(params, Mapping) else params)
    if relation is None:
        return pl.DataFrame()
    return pl.from_arrow(relation.to_arrow_table())  # type: ignore[return-value]
