"""Run a stage's work items against an endpoint: cache first, bounded concurrency, validation.

Every answer is written to the cache the moment it arrives, so a crash or a rerun never repeats a paid
call. An answer that fails validation is retried once with a fresh sample (another seed); a second failure,
or a request that cannot be had at all, becomes a quarantine record with the reason. Nothing is dropped:
``len(items) == len(answers) + len(quarantine)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eemo_pipeline.generation.cache import ResponseCache, cache_key
from eemo_pipeline.generation.client import ChatClient, EndpointConfig, GenerationError
from eemo_pipeline.generation.work import ChatAnswer, Validator, WorkItem
from eemo_pipeline.progress import progress as show_progress

# Seeds of the first answer and of the one fresh sample after an invalid answer.
SAMPLE_SEEDS: tuple[int | None, ...] = (None, 1)
Progress = Callable[[int, int], None]


@dataclass
class BatchResult:
    answers: dict[str, ChatAnswer] = field(default_factory=dict)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


async def _run_item(item: WorkItem, client: ChatClient, cache: ResponseCache, validate: Validator,
                    counts: dict[str, int]) -> tuple[ChatAnswer | None, str | None]:
    config = client.config
    base = cache_key(config.role, config.model, item.template_version, item.cache_payload)
    reason = None
    for sample, seed in enumerate(SAMPLE_SEEDS):
        key = base if sample == 0 else f"{base}:sample{sample}"
        answer = cache.get(key)
        if answer is None:
            answer = await client.complete(item.key, item.messages, seed=seed)
            cache.put(key, config.role, config.model, item.template_version, answer)
        else:
            counts["cache_hits"] += 1
        reason = validate(answer.text, item)
        if reason is None:
            return answer, None
        counts["invalid_answers"] += 1
    return None, f"answer rejected twice: {reason}"


async def run_batch(items: Sequence[WorkItem], config: EndpointConfig, cache: ResponseCache, validate: Validator,
                    progress: Progress | None = None) -> BatchResult:
    """Answers for ``items`` (keyed by item key) and quarantine records for the ones that failed."""
    client = ChatClient(config)
    counts = {"cache_hits": 0, "invalid_answers": 0}
    result = BatchResult()
    done = 0
    # On the terminal (or as periodic lines in logs) besides the caller's callback.
    shown = show_progress(len(items), f"{config.role} ({config.model})")

    async def one(item: WorkItem) -> None:
        nonlocal done
        try:
            answer, reason = await _run_item(item, client, cache, validate, counts)
        except GenerationError as error:
            answer, reason = None, error.reason + (f" (HTTP {error.status})" if error.status else "")
        if answer is not None:
            result.answers[item.key] = answer
        else:
            result.quarantine.append({"file": item.key, "line": None, "reason": reason,
                                      "record": {"template": item.template_version, **item.context}})
        done += 1
        shown.update(done)
        if progress and (done % 100 == 0 or done == len(items)):
            progress(done, len(items))

    try:
        await asyncio.gather(*(one(item) for item in items))
    finally:
        shown.close()
        await client.aclose()
    result.stats = {
        "items": len(items),
        "answered": len(result.answers),
        "quarantined": len(result.quarantine),
        "calls": client.stats.calls,
        "retries": client.stats.retries,
        "request_failures": client.stats.failures,
        "prompt_tokens": client.stats.prompt_tokens,
        "completion_tokens": client.stats.completion_tokens,
        **counts,
    }
    return result


def run_batch_sync(items: Sequence[WorkItem], config: EndpointConfig, cache: ResponseCache, validate: Validator,
                   progress: Progress | None = None) -> BatchResult:
    return asyncio.run(run_batch(items, config, cache, validate, progress))
