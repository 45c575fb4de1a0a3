"""A writer process for the PostgreSQL response-cache test (a module of its own, so that a spawned writer imports
the cache and nothing of Dagster)."""

from __future__ import annotations

import multiprocessing

from eemo_pipeline.generation.postgres_cache import PostgresResponseCache
from eemo_pipeline.generation.work import ChatAnswer

KEYS_PER_WRITER, OVERLAP = 40, 10  # each writer shares OVERLAP keys with the next
SHARED_ITEM = "shared-item"


def answer(text: str) -> ChatAnswer:
    return ChatAnswer(text, "model-a", 3, 5, cached=False, attempts=1)


def write(url: str, index: int, ready: multiprocessing.Queue, start: multiprocessing.Event,
          counts: multiprocessing.Queue) -> None:
    """Connect, say so on ``ready``, wait for ``start``; then write this writer's answers, counting a rejection of
    one shared item after each, and put the counts it saw on ``counts``."""
    cache = PostgresResponseCache(url)
    ready.put(index)
    start.wait(300)
    seen = []
    first = index * (KEYS_PER_WRITER - OVERLAP)
    for n in range(first, first + KEYS_PER_WRITER):
        cache.put(f"key-{n}", "reasoner", "model-a", "reason@v1", answer(f"answer {n}"))
        seen.append(cache.record_rejection(SHARED_ITEM, f"rejected by writer {index}"))
    cache.close()
    counts.put(seen)
