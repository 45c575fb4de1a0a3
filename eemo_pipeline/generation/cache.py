"""Durable response cache: one SQLite row per accepted answer, written as each answer arrives.

A crash or a rerun never repeats a paid call: the batch runner reads the cache before each request and
writes to it the moment an answer passes validation. A rejected answer is never stored (the item is asked
again on the next run); instead ``rejections`` counts, per item, the runs whose answers were all rejected, so
an item that is always rejected stops being asked after a bounded number of runs. SQLite in WAL mode keeps
concurrent readers (other runs) working while one process writes.

A cache file that is not a readable SQLite database (truncated, overwritten) or holds other tables than a response
cache's (another application's database) is moved aside to ``<name>.corrupt-<time>-<pid>`` (with its WAL files) and
an empty cache takes its place, when it is opened or when a read or write finds the damage; the run goes on, asking
again what the lost answers held. ``notes`` and the log say which file went where. A cache whose file another
process moved aside meanwhile notices it before its next read or write and opens the fresh file in its place.

Any other failure (a full disk, a write refused, a path that is a directory) raises ``CacheError`` naming the file:
the batch runner then sends no further request, since it could not keep the answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from eemo_pipeline.generation.work import ChatAnswer

log = logging.getLogger(__name__)
# SQLite's primary result codes for a damaged file: SQLITE_CORRUPT and SQLITE_NOTADB.
_DAMAGED = (11, 26)
# The tables of a response cache and their columns, as _SCHEMA creates them.
_COLUMNS = {
    "responses": ["key", "role", "model", "template", "text", "answered_by", "prompt_tokens", "completion_tokens",
                  "attempts", "created_at"],
    "rejections": ["key", "runs", "last_reason", "updated_at"],
}

_SCHEMA = """
create table if not exists responses (
    key text primary key,
    role text not null,
    model text not null,
    template text not null,
    text text not null,
    answered_by text not null,
    prompt_tokens integer not null,
    completion_tokens integer not null,
    attempts integer not null,
    created_at real not null
);
create table if not exists rejections (
    key text primary key,
    runs integer not null,
    last_reason text not null,
    updated_at real not null
)
"""


def cache_key(role: str, model: str, template_version: str, payload: dict[str, Any]) -> str:
    """sha256 of the role, configured model, template version and the canonical JSON of the payload."""
    canonical = json.dumps(
        {"role": role, "model": model, "template": template_version, "payload": payload},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class CacheError(RuntimeError):
    """The response cache cannot be read or written (a full disk, a refused write, a directory in its place); the
    message names the file."""


class _ForeignSchema(sqlite3.DatabaseError):
    """A readable SQLite database whose tables are not a response cache's."""


def _damaged(error: sqlite3.DatabaseError) -> bool:
    return isinstance(error, _ForeignSchema) or (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _DAMAGED


def foreign_tables(db: sqlite3.Connection) -> list[str]:
    """The tables of ``db`` that a response cache does not have, or has with other columns."""
    tables = [name for (name,) in db.execute("select name from sqlite_master where type = 'table' "
                                             "and name not like 'sqlite%' order by name")]
    return [name for name in tables
            if [column[1] for column in db.execute(f'pragma table_info("{name}")')] != _COLUMNS.get(name)]


class ResponseCache:
    """SQLite-backed map from cache key to accepted answer; safe across threads and processes."""

    def __init__(self, path: Path, log_opening_notes: bool = True):
        """``log_opening_notes=False``: what opening it found (a damaged file moved aside) is only kept in ``notes``,
        for a caller that reports it itself (``eemo assess``), not also logged; later notes are logged as always."""
        self.path = Path(path)
        self.notes: list[str] = []  # a damaged file moved aside, in words
        self._lock = threading.Lock()
        self._log_notes = log_opening_notes
        try:
            if self.path.is_dir():
                raise CacheError(f"response cache {self.path} is a directory, not a file: give a file path")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except sqlite3.DatabaseError as error:
            if not _damaged(error):
                raise CacheError(f"response cache {self.path}: {error}") from error
            self._move_aside(error)
            self._open()
        except OSError as error:
            raise CacheError(f"response cache {self.path}: {error}") from error
        finally:
            self._log_notes = True

    def _open(self) -> None:
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        try:
            self._db.execute("pragma journal_mode=wal")
            self._db.execute("pragma synchronous=normal")
            if foreign := foreign_tables(self._db):
                raise _ForeignSchema(f"its tables are not a response cache's: {', '.join(foreign)}")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            self._db.close()
            raise
        self._identity = self._file_identity()

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def _move_aside(self, error: sqlite3.DatabaseError) -> None:
        """Rename the damaged file (and its WAL files) out of the way, unless another process did so already."""
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S.%f")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        moved = False
        for suffix in ("", "-wal", "-shm"):
            source = self.path.with_name(self.path.name + suffix)
            try:
                source.rename(aside.with_name(aside.name + suffix))
                moved = moved or suffix == ""
            except FileNotFoundError:
                pass
        what = "not a response cache" if isinstance(error, _ForeignSchema) else "not a readable SQLite database"
        note = (f"response cache {self.path} is {what} ({error}): "
                + (f"moved aside to {aside}; " if moved else "") + "continuing with an empty cache, so the answers "
                "it held are asked again")
        self.notes.append(note)
        if self._log_notes:
            log.warning(note)

    def _run(self, operation: Callable[[sqlite3.Connection], object]) -> object:
        """``operation(connection)`` under the lock, on the file now at the path: one another process moved aside
        is left and the fresh one opened. Damage found on the way moves the file aside once and runs it again on an
        empty cache (the file another process put in its place, if any); any other failure is a ``CacheError``."""
        with self._lock:
            try:
                if self._file_identity() != self._identity:
                    self._reopen_moved()
                try:
                    return operation(self._db)
                except sqlite3.DatabaseError as error:
                    if not _damaged(error):
                        raise
                    self._db.close()
                    if self._file_identity() == self._identity:  # not yet replaced by another process
                        self._move_aside(error)
                    self._open()
                    return operation(self._db)
            except (sqlite3.Error, OSError) as error:
                raise CacheError(f"response cache {self.path}: {error}") from error

    def _reopen_moved(self) -> None:
        self._db.close()
        self._open()
        note = (f"response cache {self.path} was moved aside or replaced by another process; continuing with the "
                "file now at that path")
        self.notes.append(note)
        log.warning(note)

    def get(self, key: str) -> ChatAnswer | None:
        row = self._run(lambda db: db.execute(
            "select text, answered_by, prompt_tokens, completion_tokens, attempts from responses where key = ?",
            (key,),
        ).fetchone())
        if row is None:
            return None
        text, model, prompt_tokens, completion_tokens, attempts = row
        return ChatAnswer(text, model, prompt_tokens, completion_tokens, cached=True, attempts=attempts)

    def put(self, key: str, role: str, model: str, template: str, answer: ChatAnswer) -> None:
        """Store an accepted answer (committed before returning)."""
        self._run(lambda db: db.execute(
            "insert or replace into responses values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, role, model, template, answer.text, answer.model, answer.prompt_tokens,
             answer.completion_tokens, answer.attempts, time.time()),
        ))

    def rejected_runs(self, key: str) -> tuple[int, str | None]:
        """How many runs rejected every answer for ``key`` (the item's first cache key), and the last reason."""
        row = self._run(lambda db: db.execute("select runs, last_reason from rejections where key = ?",
                                              (key,)).fetchone())
        return (row[0], row[1]) if row else (0, None)

    def record_rejection(self, key: str, reason: str) -> int:
        """Count one more run that rejected the item's answers; returns the runs counted so far."""
        def record(db: sqlite3.Connection) -> int:
            db.execute(
                "insert into rejections values (?, 1, ?, ?) on conflict(key) do update set runs = runs + 1, "
                "last_reason = excluded.last_reason, updated_at = excluded.updated_at",
                (key, reason, time.time()),
            )
            return db.execute("select runs from rejections where key = ?", (key,)).fetchone()[0]

        return self._run(record)  # type: ignore[return-value]

    def __len__(self) -> int:
        return self._run(lambda db: db.execute("select count(*) from responses").fetchone()[0])  # type: ignore[return-value]

    def close(self) -> None:
        with self._lock:
            self._db.close()
