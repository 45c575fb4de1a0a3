"""The durable response cache in PostgreSQL, for a Dagster instance on PostgreSQL (several run workers on several
machines writing at once, where SQLite's WAL mode, which needs shared memory on one host, does not hold).

Same interface and rules as ``eemo_pipeline.generation.cache.ResponseCache`` (one row per accepted answer, written
as it arrives; a per-item count of runs that rejected every answer), in two tables of the instance's database.
Every write is a single upsert, so concurrent writers never lose a row or a rejection count.
"""

from __future__ import annotations

import time

import sqlalchemy
from sqlalchemy import text

from eemo_pipeline.generation.work import ChatAnswer

RESPONSES_TABLE = "eemo_llm_responses"
REJECTIONS_TABLE = "eemo_llm_rejections"
# Serializes table creation across processes (two concurrent `create table if not exists` can collide in
# PostgreSQL's catalog); any fixed 64-bit number unique to this use.
_SCHEMA_LOCK = 0x45454D4F_43414348  # "EEMOCACH"
_SCHEMA = (
    f"""create table if not exists {RESPONSES_TABLE} (
        key text primary key,
        role text not null,
        model text not null,
        template text not null,
        text text not null,
        answered_by text not null,
        prompt_tokens integer not null,
        completion_tokens integer not null,
        attempts integer not null,
        created_at double precision not null
    )""",
    f"""create table if not exists {REJECTIONS_TABLE} (
        key text primary key,
        runs integer not null,
        last_reason text not null,
        updated_at double precision not null
    )""",
)


class PostgresResponseCache:
    """PostgreSQL-backed map from cache key to accepted answer; safe across threads, processes and machines."""

    def __init__(self, url: str):
        """``url``: a SQLAlchemy URL of the database (with its driver, e.g. ``postgresql+psycopg2://``)."""
        self.notes: list[str] = []  # as ResponseCache's; a database is never moved aside, so it stays empty
        # A small pool: the batch runner calls the cache from one event-loop thread.
        self._engine = sqlalchemy.create_engine(url, pool_size=1, max_overflow=4, pool_pre_ping=True)
        with self._engine.begin() as db:
            db.execute(text("select pg_advisory_xact_lock(:lock)"), {"lock": _SCHEMA_LOCK})
            for statement in _SCHEMA:
                db.execute(text(statement))

    def get(self, key: str) -> ChatAnswer | None:
        with self._engine.connect() as db:
            row = db.execute(
                text(f"select text, answered_by, prompt_tokens, completion_tokens, attempts from {RESPONSES_TABLE} "
                     "where key = :key"), {"key": key},
            ).first()
        if row is None:
            return None
        answer_text, model, prompt_tokens, completion_tokens, attempts = row
        return ChatAnswer(answer_text, model, prompt_tokens, completion_tokens, cached=True, attempts=attempts)

    def put(self, key: str, role: str, model: str, template: str, answer: ChatAnswer) -> None:
        """Store an accepted answer (committed before returning); a later answer for the key replaces it."""
        with self._engine.begin() as db:
            db.execute(
                text(f"insert into {RESPONSES_TABLE} values (:key, :role, :model, :template, :text, :answered_by, "
                     ":prompt_tokens, :completion_tokens, :attempts, :created_at) on conflict (key) do update set "
                     "role = excluded.role, model = excluded.model, template = excluded.template, "
                     "text = excluded.text, answered_by = excluded.answered_by, "
                     "prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens, "
                     "attempts = excluded.attempts, created_at = excluded.created_at"),
                {"key": key, "role": role, "model": model, "template": template, "text": answer.text,
                 "answered_by": answer.model, "prompt_tokens": answer.prompt_tokens,
                 "completion_tokens": answer.completion_tokens, "attempts": answer.attempts,
                 "created_at": time.time()},
            )

    def rejected_runs(self, key: str) -> tuple[int, str | None]:
        """How many runs rejected every answer for ``key`` (the item's first cache key), and the last reason."""
        with self._engine.connect() as db:
            row = db.execute(text(f"select runs, last_reason from {REJECTIONS_TABLE} where key = :key"),
                             {"key": key}).first()
        return (row[0], row[1]) if row else (0, None)

    def record_rejection(self, key: str, reason: str) -> int:
        """Count one more run that rejected the item's answers; returns the runs counted so far."""
        with self._engine.begin() as db:
            return db.execute(
                text(f"insert into {REJECTIONS_TABLE} values (:key, 1, :reason, :now) on conflict (key) do update "
                     f"set runs = {REJECTIONS_TABLE}.runs + 1, last_reason = excluded.last_reason, "
                     "updated_at = excluded.updated_at returning runs"),
                {"key": key, "reason": reason, "now": time.time()},
            ).scalar_one()

    def __len__(self) -> int:
        with self._engine.connect() as db:
            return db.execute(text(f"select count(*) from {RESPONSES_TABLE}")).scalar_one()

    def close(self) -> None:
        self._engine.dispose()
