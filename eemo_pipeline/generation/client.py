"""One async client for any OpenAI-compatible chat endpoint (vLLM's ``vllm serve``, DeepSeek, others).

It takes an ``EndpointSettings`` (``eemo_pipeline.settings``: base URLs, model, concurrency, timeout, retry budget,
built once at an edge) and reads only the key, from its variable (``EEMO_<ROLE>_API_KEY``), when it is built; the
key is never stored in config, logs or metadata.

Replicas: an endpoint may list several base URLs serving the same model. Each request goes to the healthy replica
with the fewest requests in flight (ties in turn). A replica that does not answer (connection refused or reset,
502-504) is marked away and skipped; it is probed at ``GET /models`` right away and then every
``health_interval_s`` in the background, and takes requests again once it answers. Items wait only while every
replica is away, up to ``outage_wait_s`` (an endpoint none of whose replicas ever answered this client fails at
once instead); each outage or failover costs an item one attempt, not its time budget.

Retries: 429, 5xx, timeouts, dropped connections and malformed bodies, with exponential backoff and full jitter.
A 429's (or a 502-504's) ``Retry-After`` holds the requests to that replica until that time (the others take them
meanwhile); one beyond ``retry_after_cap_s`` fails the item at once, naming it, and so does a wait beyond the cap
when every healthy replica is held. Any other error is raised at once with the request's identity. An
``ItemBudget`` bounds the total time of one item's requests, retries and waits (not its wait for an outage). Every
text taken from a response or an exception (answers, model names, error reasons) is scrubbed of the configured
keys and of any token after ``Bearer `` (``settings.redact``) before it leaves the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import time
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any

from eemo_pipeline.generation.work import ChatAnswer
from eemo_pipeline.settings import EndpointSettings, read_secret, redact

SLOTS_PER_POOL = 32
# Statuses of a gateway whose backend is away (restarting, not yet listening): the endpoint is probed for health.
AWAY_STATUSES = frozenset({502, 503, 504})
HEALTH_PROBE_TIMEOUT_S = 10.0
# The largest count SQLite stores (a signed 64-bit integer): a usage block's larger count is unreadable.
MAX_TOKEN_COUNT = 2**63 - 1
# C0 and C1 controls, DEL and lone surrogates (no UTF-8 encoder writes them).
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class GenerationError(RuntimeError):
    """A request failed for good; names the item, never the key. ``transient``: the endpoint may answer later
    (429, 5xx, timeouts, dropped connections, malformed bodies, the time budget), unlike a 4xx refusal."""

    def __init__(self, item: str, reason: str, status: int | None = None, transient: bool = False):
        self.item, self.reason, self.status, self.transient = item, reason, status, transient
        super().__init__(f"{item}: {reason}" + (f" (HTTP {status})" if status else ""))


@dataclass
class ClientStats:
    calls: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Answers whose usage block held no readable token counts (counted as 0 tokens; the answer is kept).
    unreadable_usage: int = 0
    health_probes: int = 0
    # Times a replica was found away and taken out of rotation.
    replica_outages: int = 0
    # Seconds during which every replica was away (the items waited for one).
    outage_s: float = 0.0


class ItemBudget:
    """The time one item may take, counted from its first request (not from its wait for a slot)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._deadline: float | None = None

    def start(self) -> None:
        if self._deadline is None:
            self._deadline = time.monotonic() + self.seconds

    def extend(self, seconds: float) -> None:
        """Give back time the item spent waiting for an endpoint that was away."""
        if self._deadline is not None:
            self._deadline += seconds

    def left(self) -> float:
        return self.seconds if self._deadline is None else self._deadline - time.monotonic()


class _Fatal(Exception):
    def __init__(self, reason: str, status: int | None = None):
        self.reason, self.status = reason, status
        super().__init__(reason)


class _Retryable(Exception):
    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None,
                 retry_after_text: str = ""):
        self.reason, self.status, self.retry_after = reason, status, retry_after
        self.retry_after_text = retry_after_text  # the header as the server sent it, for the reason
        super().__init__(reason)


class _Away(_Retryable):
    """The endpoint did not answer at all (connection refused or reset) or its gateway said its backend is away."""


class _Unreachable(Exception):
    """No replica came back within ``outage_wait_s``, or none ever answered this client."""


class _Held(Exception):
    """The servers' last Retry-After holds every request longer than ``retry_after_cap_s``."""


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait, given as seconds or as an HTTP-date (RFC 9110; a date in the
    past is 0); None when there is none or it is neither."""
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            date = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = date.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _token_count(usage: Any, name: str) -> int | None:
    """A token count of a usage block: a whole number from 0 to ``MAX_TOKEN_COUNT`` (or its decimal string); None
    otherwise."""
    value = usage.get(name, 0) if isinstance(usage, dict) else None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return value if 0 <= value <= MAX_TOKEN_COUNT else None


def printable(text: str) -> str:
    """``text`` with control characters and lone surrogates written as escapes (``\\x1b``, ``\\ud800``): a name taken
    from a response that may be shown on a terminal and stored as UTF-8."""
    return UNPRINTABLE.sub(lambda found: f"\\x{ord(found.group()):02x}" if ord(found.group()) < 0x100
                           else f"\\u{ord(found.group()):04x}", text)


class _AllAway(Exception):
    """No replica is healthy: the item waits for one (``ChatClient._wait_for_replica``) without sending."""


class _Replica:
    """One base URL of the endpoint: its HTTP clients, requests in flight, its Retry-After hold and its health."""

    def __init__(self, url: str, clients: list[Any]):
        self.url = url
        self.clients = clients
        self.sent = 0  # requests sent to it (also picks its next connection pool)
        self.in_flight = 0
        self.not_before = 0.0  # monotonic: the latest Retry-After this replica asked for
        self.healthy = True
        self.answered = False  # whether it ever answered this client (any HTTP response)
        self.probed = False  # whether it was probed since it was last marked away
        self.problem = ""  # why it was last found away
        self.watcher: asyncio.Task[None] | None = None


class ChatClient:
    """Bounded-concurrency chat completions over the endpoint's replicas, with retries; ``stats`` counts calls,
    retries and tokens, ``requests_by_replica`` the requests each base URL was sent."""

    def __init__(self, endpoint: EndpointSettings):
        from openai import AsyncOpenAI

        self.endpoint = endpoint.require()
        self.stats = ClientStats()
        self._semaphore = asyncio.Semaphore(endpoint.concurrency)
        # One connection pool per SLOTS_PER_POOL concurrent requests (per replica, which may carry them all): the HTTP
        # client's pool scans all of its connections for every request, which costs more CPU than the request itself
        # at high concurrency. Our own retry loop (honouring Retry-After, counting retries), so the SDK's is off.
        key = endpoint.api_key or read_secret(endpoint.key_variable) or "EMPTY"
        self._secrets = (key, endpoint.api_key)
        pools = max(1, -(-endpoint.concurrency // SLOTS_PER_POOL))
        self._replicas = [
            _Replica(url, [AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=endpoint.timeout_s)
                           for _ in range(pools)])
            for url in endpoint.base_urls
        ]
        self._turn = 0  # the replica first in line among equally loaded ones (round robin)
        # Notified whenever a replica's health changes or a probe ends; items waiting for a replica wait on it.
        self._health = asyncio.Condition()
        self._all_away_since: float | None = None
        # Set by the caller when it can keep no further answer: every later request raises it instead of being sent.
        self.halted: Exception | None = None

    @property
    def requests_by_replica(self) -> dict[str, int]:
        return {replica.url: replica.sent for replica in self._replicas}

    def redact(self, text: str) -> str:
        """``text`` without this client's key, any other configured key or a ``Bearer`` token."""
        return redact(text, self._secrets)

    def _failed(self, item: str, reason: str, status: int | None, transient: bool) -> GenerationError:
        self.stats.failures += 1
        return GenerationError(item, self.redact(reason), status, transient)

    async def complete(self, item: str, messages: list[dict[str, Any]], seed: int | None = None,
                       budget: ItemBudget | None = None) -> ChatAnswer:
        """One answer for ``messages``; raises ``GenerationError`` naming ``item`` when it cannot be had, at the
        latest when ``budget`` (default: ``item_budget_s`` from now) runs out."""
        endpoint = self.endpoint
        budget = budget or ItemBudget(endpoint.item_budget_s)
        attempt = 0
        while True:
            try:
                async with self._semaphore:
                    if self.halted is not None:
                        raise self.halted
                    budget.start()
                    replica = await self._pick(budget)
                    if budget.left() <= 0:
                        raise TimeoutError
                    attempt += 1
                    self.stats.calls += 1
                    answer = await asyncio.wait_for(self._request(replica, messages, seed), budget.left())
                return replace(answer, attempts=attempt)
            except _AllAway:
                await self._wait_out_outage(item, budget, None)
                continue  # nothing was sent: no attempt spent
            except TimeoutError:
                raise self._failed(item, f"no answer within the item's time budget of {budget.seconds:g} s "
                                         f"({attempt} attempts)", None, True) from None
            except _Fatal as error:
                raise self._failed(item, error.reason, error.status, False) from None
            except _Held as held:
                raise self._failed(item, f"not sent: {held}", None, True) from None
            except _Retryable as error:
                if isinstance(error, _Away):
                    # The attempt counts, so a request that brings every replica down in turn is not sent for ever.
                    await self._wait_out_outage(item, budget, error.status)
                if error.retry_after is not None and error.retry_after > endpoint.retry_after_cap_s:
                    raise self._failed(item, f"{error.reason}; the server asked to retry after {error.retry_after:.0f} "
                                             f"s ({error.retry_after_text}), beyond retry_after_cap_s of "
                                             f"{endpoint.retry_after_cap_s:g} s", error.status, True) from None
                if attempt > endpoint.max_retries:
                    raise self._failed(item, f"gave up after {attempt} attempts: {error.reason}", error.status,
                                       True) from None
                self.stats.retries += 1
                backoff = random.uniform(0, min(endpoint.backoff_max_s, endpoint.backoff_base_s * 2 ** (attempt - 1)))
                if max(backoff, self._held_for()) >= budget.left():
                    raise self._failed(item, f"time budget of {budget.seconds:g} s spent after {attempt} attempts: "
                                             f"{error.reason}", error.status, True) from None
                await asyncio.sleep(backoff)

    async def _pick(self, budget: ItemBudget) -> _Replica:
        """The healthy replica with the fewest requests in flight that no Retry-After holds (ties in turn), waiting
        (holding the slot) for the first hold to pass when all are held: ``_Held`` when that is beyond the cap,
        ``TimeoutError`` when beyond the item's budget, ``_AllAway`` when no replica is healthy."""
        count = len(self._replicas)
        while True:
            healthy = [(index, replica) for index, replica in enumerate(self._replicas) if replica.healthy]
            if not healthy:
                raise _AllAway
            now = time.monotonic()
            free = [(index, replica) for index, replica in healthy if replica.not_before <= now]
            if free:
                index, replica = min(free, key=lambda pair: (pair[1].in_flight, (pair[0] - self._turn) % count))
                self._turn = (index + 1) % count
                return replica
            wait = min(replica.not_before for _, replica in healthy) - now
            if wait > self.endpoint.retry_after_cap_s:
                held = "every request" if count == 1 else f"every request (all {len(healthy)} healthy replicas)"
                raise _Held(f"the server's Retry-After holds {held} for another {wait:.0f} s, beyond "
                            f"retry_after_cap_s of {self.endpoint.retry_after_cap_s:g} s")
            if wait >= budget.left():
                raise TimeoutError
            await asyncio.sleep(wait)

    def _held_for(self) -> float:
        """Seconds until a healthy replica is free of its Retry-After (0 when one is, or when none is healthy)."""
        holds = [replica.not_before for replica in self._replicas if replica.healthy]
        return max(0.0, min(holds) - time.monotonic()) if holds else 0.0

    async def _wait_out_outage(self, item: str, budget: ItemBudget, status: int | None) -> None:
        """Wait (without a slot) until a replica is healthy; the wait is not the item's time. ``GenerationError``
        when the endpoint stays away beyond ``outage_wait_s`` or never answered this client."""
        waited = time.monotonic()
        try:
            await self._wait_for_replica()
        except _Unreachable as unreachable:
            raise self._failed(item, str(unreachable), status, True) from None
        budget.extend(time.monotonic() - waited)

    async def _wait_for_replica(self) -> None:
        """Return once a replica is healthy; ``_Unreachable`` when none ever answered this client (once each was
        probed) or all have been away ``outage_wait_s``."""
        endpoint = self.endpoint
        async with self._health:
            while not any(replica.healthy for replica in self._replicas):
                problems = self._problems()
                if not any(replica.answered for replica in self._replicas) and all(
                        replica.probed for replica in self._replicas):
                    raise _Unreachable(f"{self._where()} does not answer (GET /models: {problems})")
                away = time.monotonic() - (self._all_away_since or time.monotonic())
                if away >= endpoint.outage_wait_s:
                    raise _Unreachable(f"{self._where()} has been away for {away:.0f} s, beyond outage_wait_s of "
                                       f"{endpoint.outage_wait_s:g} s (GET /models: {problems})")
                try:
                    await asyncio.wait_for(self._health.wait(), endpoint.outage_wait_s - away)
                except TimeoutError:
                    pass

    def _where(self) -> str:
        if len(self._replicas) == 1:
            return f"the endpoint {self._replicas[0].url}"
        return f"every replica of the endpoint ({', '.join(replica.url for replica in self._replicas)})"

    def _problems(self) -> str:
        if len(self._replicas) == 1:
            return self._replicas[0].problem
        return "; ".join(f"{replica.url}: {replica.problem}" for replica in self._replicas)

    def _mark_away(self, replica: _Replica, problem: str) -> None:
        """Take ``replica`` out of rotation and probe it in the background until it answers."""
        replica.problem = problem
        if not replica.healthy:
            return
        replica.healthy, replica.probed = False, False
        self.stats.replica_outages += 1
        if not any(other.healthy for other in self._replicas):
            self._all_away_since = time.monotonic()
        replica.watcher = asyncio.create_task(self._watch(replica))

    async def _watch(self, replica: _Replica) -> None:
        """Probe ``replica`` at once and then every ``health_interval_s`` until it answers, then put it back."""
        while True:
            problem = await self._probe(replica)
            async with self._health:
                replica.probed = True
                if problem is None:
                    replica.answered = replica.healthy = True
                    if self._all_away_since is not None:
                        self.stats.outage_s += time.monotonic() - self._all_away_since
                        self._all_away_since = None
                else:
                    replica.problem = problem
                self._health.notify_all()
            if problem is None:
                return
            await asyncio.sleep(self.endpoint.health_interval_s)

    async def _probe(self, replica: _Replica) -> str | None:
        """None when ``GET /models`` answers 200, else what went wrong."""
        import httpx2
        import openai

        self.stats.health_probes += 1
        try:
            await replica.clients[0].get("/models", cast_to=httpx2.Response, options={
                "timeout": min(self.endpoint.timeout_s, HEALTH_PROBE_TIMEOUT_S)})
        except openai.APIStatusError as error:
            return f"HTTP {error.status_code}"
        except openai.APIConnectionError as error:
            return self.redact(_connection_problem(error))
        return None

    async def _request(self, replica: _Replica, messages: list[dict[str, Any]], seed: int | None) -> ChatAnswer:
        replica.in_flight += 1
        try:
            return await self._send(replica, messages, seed)
        except _Away as error:
            self._mark_away(replica, error.reason)
            raise
        finally:
            replica.in_flight -= 1

    async def _send(self, replica: _Replica, messages: list[dict[str, Any]], seed: int | None) -> ChatAnswer:
        import httpx2
        import openai
        from openai._constants import RAW_RESPONSE_HEADER

        endpoint = self.endpoint
        body: dict[str, Any] = {"model": endpoint.model, "messages": messages,
                                "temperature": endpoint.temperature, "max_tokens": endpoint.max_tokens}
        if seed is not None:
            body["seed"] = seed
        client = replica.clients[replica.sent % len(replica.clients)]
        replica.sent += 1
        try:
            # timeout_s bounds the whole request, not each read: a server that trickles bytes holds it no longer.
            async with asyncio.timeout(endpoint.timeout_s):
                # The SDK's low-level post (its auth, base URL and error types, without re-validating the body), its
                # body left unread: read here, at most max_response_bytes of it.
                response = await client.post("/chat/completions", body=body, cast_to=httpx2.Response,
                                             options={"headers": {RAW_RESPONSE_HEADER: "stream"}})
                try:
                    content = await _read_capped(response, endpoint.max_response_bytes)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise _Retryable(f"no whole answer within timeout_s of {endpoint.timeout_s:g} s") from None
        except openai.APIStatusError as error:
            status = error.status_code
            if status != 429 and status < 500:
                replica.answered = True
                raise _Fatal(_error_message(error), status) from error
            retry_after = retry_after_seconds(error.response.headers)
            if retry_after is not None:  # before the slot is given up: no other item sends to it before then
                replica.not_before = max(replica.not_before, time.monotonic() + retry_after)
            text = f"Retry-After: {printable(error.response.headers.get('retry-after', '')[:100])}"
            if status in AWAY_STATUSES:
                raise _Away(f"HTTP {status}: {_error_message(error)}", status, retry_after, text) from error
            replica.answered = True
            raise _Retryable(f"HTTP {status}: {_error_message(error)}", status, retry_after, text) from error
        except openai.APITimeoutError as error:
            raise _Retryable(type(error).__name__) from error
        except openai.APIConnectionError as error:
            raise _Away(self.redact(_connection_problem(error))) from error
        except httpx2.TransportError as error:  # the body broke off after the status line came
            raise _Retryable(self.redact(f"response body cut short ({type(error).__name__}: {error})")) from error
        replica.answered = True
        try:
            completion = json.loads(content)
            choice = completion["choices"][0]
            text = choice["message"]["content"]
        # RecursionError: a body nested deeper than the decoder's stack (``[`` * 100000); UnicodeDecodeError is a
        # ValueError. Either is a malformed body like any other: retried, then the item quarantined.
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as error:
            raise _Retryable(f"malformed response body ({type(error).__name__})") from error
        if not isinstance(text, str):
            raise _Retryable("malformed response body (no message content)")
        usage = completion.get("usage")
        prompt_tokens = _token_count(usage, "prompt_tokens")
        completion_tokens = _token_count(usage, "completion_tokens")
        if prompt_tokens is None or completion_tokens is None:  # the answer is kept; its tokens count as 0
            self.stats.unreadable_usage += 1
        self.stats.prompt_tokens += prompt_tokens or 0
        self.stats.completion_tokens += completion_tokens or 0
        model = completion.get("model")
        finish_reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        answered_by = printable(self.redact(model)) if isinstance(model, str) and model else endpoint.model
        return ChatAnswer(self.redact(text), answered_by, prompt_tokens or 0, completion_tokens or 0, cached=False,
                          attempts=1, finish_reason=finish_reason if isinstance(finish_reason, str) else None)

    async def aclose(self) -> None:
        for replica in self._replicas:
            if replica.watcher is not None and not replica.watcher.done():
                replica.watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await replica.watcher
            for client in replica.clients:
                await client.close()


async def _read_capped(response: Any, limit: int) -> bytes:
    """The body of ``response``, read in chunks; ``_Retryable`` once it passes ``limit`` bytes (the rest unread)."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _Retryable(f"response body over max_response_bytes of {limit:,} bytes: not read further")
        chunks.append(chunk)
    return b"".join(chunks)


def _connection_problem(error: BaseException) -> str:
    """What the HTTP layer said when no answer came (``ConnectError: ...``), rather than the SDK's wrapper."""
    cause = error.__cause__ or error
    return f"{type(cause).__name__}: {cause}"


def _error_message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        detail = body.get("error", body)
        message = detail.get("message") if isinstance(detail, dict) else detail
        if message:
            return str(message)[:300]
    return str(error)[:300]
