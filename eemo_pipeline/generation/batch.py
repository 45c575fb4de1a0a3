"""Run a stage's work items against an endpoint: cache first, bounded concurrency, validation.

Every accepted answer is written to the cache the moment it arrives, so a crash or a rerun never repeats a
paid call. Before its validator, every answer must be whole (not cut at ``max_tokens``: ``finish_reason``
``length``, unless the caller accepts cut answers), no longer than ``max_tokens`` tokens can be, and free of control
characters (terminal escapes, NUL) and lone surrogates (no UTF-8 file holds them). An answer that fails these checks or validation is retried once with a fresh
sample (another seed); a second failure, or a request that cannot be had at all (within the item's time budget), becomes a quarantine record
with the reason. Rejected answers are not cached: the next run asks again, until the item has been rejected in
``max_item_runs`` runs (counted in the cache), after which it is quarantined without a request and says so.
An answer from another model than the configured one is kept and recorded (``model_mismatches``, ``notes``), whether
it was asked now or read from the cache, under its name with control characters escaped.
An answer that cannot be cached (``CacheError``: a full disk, a refused write) stops the batch: no further request is
sent, the requests in flight are awaited (up to ``timeout_s``, then cancelled) and ``run_batch`` raises the error, which
names the cache file; what the cache already holds stays. Answers received but not stored (the one that failed and
those in flight, up to ``concurrency``) are not lost: they go to a JSON Lines file beside the cache
(``<cache>.unstored-<time>-<pid>.jsonl``, one object per answer with its cache key), or to stderr when that cannot be
written either, and the error says how many, where, and the OS cause when it can tell (the file size limit, a full
disk).
Nothing is dropped: ``len(items) == len(answers) + len(quarantine)``. ``raise_if_failed`` turns a batch where
every item, or more than a share of them, failed into ``BatchFailed`` with the endpoint's last error.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import resource
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from eemo_pipeline.generation.cache import CacheError, ResponseCache, cache_key
from eemo_pipeline.generation.client import ChatClient, GenerationError, ItemBudget, printable
from eemo_pipeline.generation.work import ChatAnswer, Validator, WorkItem
from eemo_pipeline.progress import progress as show_progress
from eemo_pipeline.settings import EndpointSettings

# Seeds of the first answer and of the one fresh sample after an invalid answer.
SAMPLE_SEEDS: tuple[int | None, ...] = (None, 1)
# A batch fails when more than this share of the items it asked failed (request errors or rejected answers).
MAX_FAILED_SHARE = 0.5
Progress = Callable[[int, int], None]
# C0 controls but tab, line feed and carriage return, DEL and C1: terminal escapes and NUL are no prose.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
LONE_SURROGATES = re.compile(r"[\ud800-\udfff]")
# No tokenizer's token is longer than this (runs of spaces or punctuation are the longest): an answer with more
# characters than max_tokens of them did not come from max_tokens tokens.
MAX_CHARS_PER_TOKEN = 32
# A cache file within this of the file size limit (RLIMIT_FSIZE) names the limit as the cause; a device with less
# free space than LOW_SPACE_BYTES names the full disk.
FSIZE_MARGIN = 1024 * 1024
LOW_SPACE_BYTES = 16 * 1024 * 1024


class BatchFailed(RuntimeError):
    """Every item, or more than the allowed share, failed. The message holds the counts and the endpoint's last
    error (already scrubbed of keys); ``transient``: that error may clear by itself (429, 5xx, timeouts)."""

    def __init__(self, message: str, transient: bool):
        self.transient = transient
        super().__init__(message)


@dataclass
class BatchResult:
    answers: dict[str, ChatAnswer] = field(default_factory=dict)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    # The endpoint's last request error and whether it was transient; the last rejected answer's reason.
    last_request_error: str | None = None
    last_error_transient: bool = False
    last_rejection: str | None = None
    # Models that answered instead of the configured one, with their answer counts; what the caller should know.
    other_models: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    @property
    def last_error(self) -> str | None:
        return self.last_request_error or self.last_rejection


class _NotAsked(Exception):
    """The item's answers were rejected in ``max_item_runs`` runs already."""


def answer_problem(answer: ChatAnswer, endpoint: EndpointSettings, accept_cut: bool = False) -> str | None:
    """Why an answer is not whole or not text, whatever it was asked for; None when it is."""
    if answer.finish_reason == "length" and not accept_cut:
        return f"cut at max_tokens {endpoint.max_tokens} (finish_reason length)"
    bound = endpoint.max_tokens * MAX_CHARS_PER_TOKEN
    if len(answer.text) > bound:
        return f"{len(answer.text):,} characters, more than {endpoint.max_tokens} tokens can hold ({bound:,})"
    if found := CONTROL_CHARACTERS.search(answer.text):
        return f"control character U+{ord(found.group()):04X} at character {found.start()}"
    if found := LONE_SURROGATES.search(answer.text):
        return f"lone surrogate U+{ord(found.group()):04X} at character {found.start()}"
    return None


async def _run_item(item: WorkItem, client: ChatClient, cache: ResponseCache, validate: Validator,
                    counts: Counter[str], result: BatchResult, accept_cut: bool, unstored: list[dict[str, Any]]
                    ) -> tuple[ChatAnswer | None, str | None, int]:
    """The item's answer, else the reason; and the runs that rejected it so far."""
    config = client.endpoint
    base = cache_key(config.role, config.model, item.template_version, item.cache_payload)
    keys = [base if sample == 0 else f"{base}:sample{sample}" for sample in range(len(SAMPLE_SEEDS))]
    for key in keys:
        # Re-checked: a cache written before answers were checked on the way in may hold a rejected one (whether an
        # answer was cut is not kept, only accepted answers are).
        cached = cache.get(key)
        if cached is not None and answer_problem(cached, config, accept_cut=True) is None \
                and validate(cached.text, item) is None:
            counts["cache_hits"] += 1
            cached = replace(cached, model=printable(cached.model))  # a row written before names were escaped
            if cached.model != config.model:
                result.other_models[cached.model] += 1
                counts["cached_model_mismatches"] += 1
            return cached, None, 0
    runs, last_reason = cache.rejected_runs(base)
    if runs >= config.max_item_runs:
        counts["not_asked"] += 1
        raise _NotAsked(f"not asked again: its answers were rejected in {runs} runs (max_item_runs "
                        f"{config.max_item_runs}); last reason: {last_reason}")
    budget = ItemBudget(config.item_budget_s)
    reason = None
    for key, seed in zip(keys, SAMPLE_SEEDS):
        answer = await client.complete(item.key, item.messages, seed=seed, budget=budget)
        if answer.model != config.model:
            result.other_models[answer.model] += 1
        reason = answer_problem(answer, config, accept_cut) or validate(answer.text, item)
        if reason is None:
            try:
                cache.put(key, config.role, config.model, item.template_version, answer)
            except CacheError:  # a paid answer: kept aside, the batch stops
                unstored.append({"key": key, "role": config.role, "model": config.model,
                                 "template": item.template_version, "item": item.key, "text": answer.text,
                                 "answered_by": answer.model, "prompt_tokens": answer.prompt_tokens,
                                 "completion_tokens": answer.completion_tokens, "attempts": answer.attempts})
                raise
            return answer, None, runs
        counts["invalid_answers"] += 1
    reason = client.redact(f"answer rejected twice: {reason}")
    return None, reason, cache.record_rejection(base, reason)


async def run_batch(items: Sequence[WorkItem], config: EndpointSettings, cache: ResponseCache, validate: Validator,
                    progress: Progress | None = None, accept_cut: bool = False) -> BatchResult:
    """Answers for ``items`` (keyed by item key) and quarantine records for the ones that failed; ``accept_cut``
    keeps answers cut at ``max_tokens`` (a benchmark's reply limit) instead of resampling them."""
    client = ChatClient(config)
    counts: Counter[str] = Counter({"cache_hits": 0, "cached_model_mismatches": 0, "invalid_answers": 0,
                                    "not_asked": 0, "rejected_items": 0})
    result = BatchResult()
    unstored: list[dict[str, Any]] = []
    done = 0
    # On the terminal (or as periodic lines in logs) besides the caller's callback.
    shown = show_progress(len(items), f"{config.role} ({config.model})")

    async def one(item: WorkItem) -> None:
        nonlocal done
        runs = 0
        try:
            answer, reason, runs = await _run_item(item, client, cache, validate, counts, result, accept_cut,
                                                   unstored)
            if reason is not None:
                counts["rejected_items"] += 1
                result.last_rejection = f"{item.key}: {reason}"
        except _NotAsked as skipped:
            answer, reason = None, str(skipped)
        except CacheError as error:
            client.halted = error  # before any other item's request leaves
            raise
        except GenerationError as error:
            answer, reason = None, error.reason + (f" (HTTP {error.status})" if error.status else "")
            result.last_request_error, result.last_error_transient = str(error), error.transient
        if answer is not None:
            result.answers[item.key] = answer
        else:
            result.quarantine.append({"file": item.key, "line": None, "reason": reason,
                                      "record": {"template": item.template_version, "rejected_runs": runs,
                                                 **item.context}})
        done += 1
        shown.update(done)
        if progress and (done % 100 == 0 or done == len(items)):
            progress(done, len(items))

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    try:
        await asyncio.gather(*tasks)
    except CacheError as error:  # no answer could be kept: no request leaves now (client.halted)
        # The requests in flight are paid for: their answers are awaited (each within timeout_s) and kept aside.
        _, pending = await asyncio.wait(tasks, timeout=config.timeout_s + 1)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not unstored:
            raise
        raise CacheError(f"{error}; {_keep_unstored(unstored, getattr(cache, 'path', None))}") from error
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
        "unreadable_usage": client.stats.unreadable_usage,
        "model_mismatches": sum(result.other_models.values()),
        "health_probes": client.stats.health_probes,
        "outage_s": round(client.stats.outage_s),
        "replica_outages": client.stats.replica_outages,
        "requests_by_replica": client.requests_by_replica,
        **counts,
    }
    if result.other_models:
        cached = f" ({counts['cached_model_mismatches']} from the response cache)" \
            if counts["cached_model_mismatches"] else ""
        result.notes.append(f"{result.stats['model_mismatches']} answers came from another model than the configured "
                            f"{config.model!r}{cached}: "
                            + ", ".join(f"{m!r} ({n})" for m, n in result.other_models.items()))
    if client.stats.unreadable_usage:
        result.notes.append(f"{client.stats.unreadable_usage} answers had no readable token counts (usage); kept, "
                            "counted as 0 tokens")
    return result


def _keep_unstored(records: list[dict[str, Any]], cache_path: Path | None, stderr: TextIO | None = None) -> str:
    """Write answers the cache could not store to a JSON Lines file beside it (to stderr for those that do not fit
    there); say how many went where, and the OS cause when known."""
    stderr = stderr or sys.stderr
    lines = [json.dumps(record, ensure_ascii=True) + "\n" for record in records]
    written, where, problem = 0, None, None
    if cache_path is not None:
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S.%f")
        where = Path(cache_path).with_name(f"{Path(cache_path).name}.unstored-{stamp}-{os.getpid()}.jsonl")
        try:
            with open(where, "wb", buffering=0) as sidecar:
                good = 0
                for line in lines:
                    data = memoryview(line.encode("ascii"))
                    try:
                        while data:
                            data = data[sidecar.write(data):]
                    except OSError:
                        with contextlib.suppress(OSError):
                            os.ftruncate(sidecar.fileno(), good)  # no half line: that answer goes to stderr instead
                        raise
                    good += len(line)
                    written += 1
        except OSError as error:
            problem = error
    to_stderr = 0
    if written < len(lines):
        try:
            stderr.write("".join(lines[written:]))
            stderr.flush()
            to_stderr = len(lines) - written
        except (OSError, ValueError):
            pass
    places = []
    if written:
        places.append(f"{written} written to {where}")
    if to_stderr:
        places.append(f"{to_stderr} to stderr" + (f" (could not write {where}: {problem})" if where else ""))
    lost = len(lines) - written - to_stderr
    if lost:
        places.append(f"{lost} lost (" + (f"neither {where} nor stderr" if where else "stderr") + " could be written)")
    cause = _os_cause(cache_path, problem)
    return (f"{len(lines)} answers were received but could not be stored: " + "; ".join(places)
            + (f"; cause: {cause}" if cause else ""))


def _os_cause(cache_path: Path | None, problem: OSError | None) -> str | None:
    """Why the cache could not be written, as far as the OS tells: SQLite says only "disk I/O error"."""
    if problem is not None and problem.errno in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT):
        return f"{os.strerror(problem.errno).lower()} ({errno.errorcode[problem.errno]})"
    if cache_path is None:
        return None
    cache_path = Path(cache_path)
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if soft != resource.RLIM_INFINITY:
        sizes = {}
        for suffix in ("", "-wal", "-journal"):
            with contextlib.suppress(OSError):
                sizes[cache_path.name + suffix] = (cache_path.parent / (cache_path.name + suffix)).stat().st_size
        name, size = max(sizes.items(), key=lambda pair: pair[1], default=("", 0))
        if size and size + FSIZE_MARGIN >= soft:
            return (f"file too large: {name} is {size:,} bytes, near this process's file size limit of {soft:,} bytes "
                    "(ulimit -f)")
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(cache_path.parent).free
        if free < LOW_SPACE_BYTES:
            return f"no space left on the device ({free:,} bytes free)"
    return None


def run_batch_sync(items: Sequence[WorkItem], config: EndpointSettings, cache: ResponseCache, validate: Validator,
                   progress: Progress | None = None, accept_cut: bool = False) -> BatchResult:
    return asyncio.run(run_batch(items, config, cache, validate, progress, accept_cut))


def raise_if_failed(result: BatchResult, max_failed_share: float = MAX_FAILED_SHARE) -> None:
    """``BatchFailed`` when the batch had items and answered none, or when more than ``max_failed_share`` of the
    items it asked (not counting the ones no longer asked) failed; the message ends with the last error."""
    stats = result.stats
    asked = stats["items"] - stats["not_asked"]
    failed = stats["quarantined"] - stats["not_asked"]
    if stats["items"] and not result.answers:
        problem = f"none of {stats['items']} items answered"
    elif asked and failed / asked > max_failed_share:
        problem = f"{failed} of {asked} items failed, more than the allowed {max_failed_share:.0%}"
    else:
        return
    not_asked = f"; {stats['not_asked']} not asked again (rejected in too many runs)" if stats["not_asked"] else ""
    last = result.last_error or (result.quarantine[-1]["reason"] if result.quarantine else "none")
    raise BatchFailed(f"{problem}{not_asked}; last error: {last}", result.last_error_transient)
