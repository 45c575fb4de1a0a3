"""Durable response cache: one SQLite row per accepted answer, written as each answer arrives.

A crash or a rerun never repeats a paid call: the batch runner reads the cache before each request and
writes to it the moment an answer passes validation. A rejected answer is never stored (the item is asked
again on the next run); instead ``rejections`` counts, per item, the runs whose answers were all rejected, so
an item that is always rejected stops being asked after a bounded number of runs. SQLite in WAL mode keeps
concurrent readers (other runs) working while one process writes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from eemo_pipeline.generation.work import ChatAnswer

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


class ResponseCache:
    """SQLite-backed map from cache key to accepted answer; safe across threads and processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")
        self._db.executescript(_SCHEMA)

    def get(self, key: str) -> ChatAnswer | None:
        with self._lock:
            row = self._db.execute(
                "select text, answered_by, prompt_tokens, completion_tokens, attempts from responses where key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        text, model, prompt_tokens, completion_tokens, attempts = row
        return ChatAnswer(text, model, prompt_tokens, completion_tokens, cached=True, attempts=attempts)

    def put(self, key: str, role: str, model: str, template: str, answer: ChatAnswer) -> None:
        """Store an accepted answer (committed before returning)."""
        with self._lock:
            self._db.execute(
                "insert or replace into responses values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, role, model, template, answer.text, answer.model, answer.prompt_tokens,
                 answer.completion_tokens, answer.attempts, time.time()),
            )

    def rejected_runs(self, key: str) -> tuple[int, str | None]:
        """How many runs rejected every answer for ``key`` (the item's first cache key), and the last reason."""
        with self._lock:
            row = self._db.execute("select runs, last_reason from rejections where key = ?", (key,)).fetchone()
        return (row[0], row[1]) if row else (0, None)

    def record_rejection(self, key: str, reason: str) -> int:
        """Count one more run that rejected the item's answers; returns the runs counted so far."""
        with self._lock:
            self._db.execute(
                "insert into rejections values (?, 1, ?, ?) on conflict(key) do update set runs = runs + 1, "
                "last_reason = excluded.last_reason, updated_at = excluded.updated_at",
                (key, reason, time.time()),
            )
            return self._db.execute("select runs from rejections where key = ?", (key,)).fetchone()[0]

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("select count(*) from responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
