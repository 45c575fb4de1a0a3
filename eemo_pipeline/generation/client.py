"""One async client for any OpenAI-compatible chat endpoint (vLLM's ``vllm serve``, DeepSeek, others).

It takes an ``EndpointSettings`` (``eemo_pipeline.settings``: base URL, model, concurrency, timeout, retry budget,
built once at an edge) and reads only the key, from its variable (``EEMO_<ROLE>_API_KEY``), when it is built; the
key is never stored in config, logs or metadata.

Retries: 429, 5xx, timeouts, dropped connections and malformed bodies, with exponential backoff and full jitter.
A 429's ``Retry-After`` holds every request of this client until that time; one beyond ``retry_after_cap_s`` fails
the item at once, naming it. An endpoint that stops answering (connection refused or reset, 502-504) is probed
at ``GET /models`` every ``health_interval_s`` while items wait for it, up to ``outage_wait_s`` (an endpoint that
never answered this client fails at once instead); each outage costs an item one attempt, not its time budget.
Any other error is raised at once with the request's identity. An ``ItemBudget`` bounds the total time of one
item's requests, retries and waits (not its wait for an outage). Every text taken from a response or an exception
(answers, model names, error reasons) is scrubbed of the configured keys and of any token after ``Bearer ``
(``settings.redact``) before it leaves the client.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass, replace
from typing import Any

from eemo_pipeline.generation.work import ChatAnswer
from eemo_pipeline.settings import EndpointSettings, read_secret, redact

SLOTS_PER_POOL = 32
# Statuses of a gateway whose backend is away (restarting, not yet listening): the endpoint is probed for health.
AWAY_STATUSES = frozenset({502, 503, 504})
HEALTH_PROBE_TIMEOUT_S = 10.0


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
    # Seconds during which the endpoint was away and the items waited for it.
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
    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        self.reason, self.status, self.retry_after = reason, status, retry_after
        super().__init__(reason)


class _Away(_Retryable):
    """The endpoint did not answer at all (connection refused or reset) or its gateway said its backend is away."""


class _Unreachable(Exception):
    """The endpoint did not come back within ``outage_wait_s``, or never answered this client."""


class _Held(Exception):
    """The server's last Retry-After holds every request longer than ``retry_after_cap_s``."""


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return max(0.0, seconds) if seconds is not None and math.isfinite(seconds) else None


def _token_count(usage: Any, name: str) -> int | None:
    """A token count of a usage block: a non-negative whole number (or its decimal string); None otherwise."""
    value = usage.get(name, 0) if isinstance(usage, dict) else None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) and value >= 0 and value == int(value) else None


class ChatClient:
    """Bounded-concurrency chat completions with retries; ``stats`` counts calls, retries and tokens."""

    def __init__(self, endpoint: EndpointSettings):
        from openai import AsyncOpenAI

        self.endpoint = endpoint.require()
        self.stats = ClientStats()
        self._semaphore = asyncio.Semaphore(endpoint.concurrency)
        # One connection pool per SLOTS_PER_POOL concurrent requests: the HTTP client's pool scans all of
        # its connections for every request, which costs more CPU than the request itself at high concurrency.
        # Our own retry loop (honouring Retry-After, counting retries), so the SDK's is off.
        key = endpoint.api_key or read_secret(endpoint.key_variable) or "EMPTY"
        self._secrets = (key, endpoint.api_key)
        self._clients = [
            AsyncOpenAI(base_url=endpoint.base_url, api_key=key, max_retries=0, timeout=endpoint.timeout_s)
            for _ in range(max(1, -(-endpoint.concurrency // SLOTS_PER_POOL)))
        ]
        self._next = 0
        # No request leaves before this time (monotonic): the latest Retry-After the server asked for.
        self._not_before = 0.0
        # Whether the endpoint ever answered this client, when it last passed its health probe, when it last came
        # back after being away, and since when it has been away (None while it answers); one item probes at a
        # time, the others take its verdict.
        self._answered = False
        self._healthy_at = self._back_at = -math.inf
        self._away_since: float | None = None
        self._probe_lock = asyncio.Lock()

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
            attempt += 1
            try:
                async with self._semaphore:
                    budget.start()
                    await self._hold_for_retry_after(budget)
                    if budget.left() <= 0:
                        raise TimeoutError
                    self.stats.calls += 1
                    answer = await asyncio.wait_for(self._request(messages, seed), budget.left())
                return replace(answer, attempts=attempt)
            except TimeoutError:
                raise self._failed(item, f"no answer within the item's time budget of {budget.seconds:g} s "
                                         f"({attempt} attempts)", None, True) from None
            except _Fatal as error:
                raise self._failed(item, error.reason, error.status, False) from None
            except _Held as held:
                raise self._failed(item, f"not sent: {held}", None, True) from None
            except _Retryable as error:
                if isinstance(error, _Away):
                    waited = time.monotonic()
                    try:
                        # Away and back: the wait is not the item's time. The attempt still counts, so a request
                        # that brings the endpoint down each time is not sent for ever.
                        if await self._wait_for_endpoint():
                            budget.extend(time.monotonic() - waited)
                    except _Unreachable as unreachable:
                        raise self._failed(item, str(unreachable), error.status, True) from None
                if error.retry_after is not None and error.retry_after > endpoint.retry_after_cap_s:
                    raise self._failed(item, f"{error.reason}; the server asked to retry after {error.retry_after:g} "
                                             f"s (Retry-After), beyond retry_after_cap_s of "
                                             f"{endpoint.retry_after_cap_s:g} s", error.status, True) from None
                if attempt > endpoint.max_retries:
                    raise self._failed(item, f"gave up after {attempt} attempts: {error.reason}", error.status,
                                       True) from None
                self.stats.retries += 1
                backoff = random.uniform(0, min(endpoint.backoff_max_s, endpoint.backoff_base_s * 2 ** (attempt - 1)))
                if max(backoff, self._not_before - time.monotonic()) >= budget.left():
                    raise self._failed(item, f"time budget of {budget.seconds:g} s spent after {attempt} attempts: "
                                             f"{error.reason}", error.status, True) from None
                await asyncio.sleep(backoff)

    async def _hold_for_retry_after(self, budget: ItemBudget) -> None:
        """Wait (holding the slot) until the server's last Retry-After has passed; ``_Held`` when that is beyond the
        cap, ``TimeoutError`` when beyond the item's budget."""
        while (wait := self._not_before - time.monotonic()) > 0:
            if wait > self.endpoint.retry_after_cap_s:
                raise _Held(f"the server's Retry-After holds every request for another {wait:.0f} s, beyond "
                            f"retry_after_cap_s of {self.endpoint.retry_after_cap_s:g} s")
            if wait >= budget.left():
                raise TimeoutError
            await asyncio.sleep(wait)

    async def _wait_for_endpoint(self) -> bool:
        """After a request the endpoint did not answer: whether it was away (and is back now). Probes ``GET /models``
        every ``health_interval_s``; raises ``_Unreachable`` when the endpoint never answered this client or stays
        away ``outage_wait_s``. One item probes at a time; the others take its verdict."""
        endpoint = self.endpoint
        asked = time.monotonic()
        async with self._probe_lock:
            # Another item's probe while this one queued for the lock: its verdict holds.
            if self._back_at >= asked:
                return True
            if self._healthy_at >= asked:
                return False
            while True:
                problem = await self._probe()
                now = time.monotonic()
                if problem is None:
                    self._answered = True
                    self._healthy_at = now
                    if self._away_since is None:
                        return False  # it answers: the failure was the request's own
                    self.stats.outage_s += now - self._away_since
                    self._away_since = None
                    self._back_at = now
                    return True
                if not self._answered:
                    raise _Unreachable(f"the endpoint {endpoint.base_url} does not answer (GET /models: {problem})")
                self._away_since = self._away_since or now
                if now - self._away_since >= endpoint.outage_wait_s:
                    raise _Unreachable(f"the endpoint {endpoint.base_url} has been away for "
                                       f"{now - self._away_since:.0f} s, beyond outage_wait_s of "
                                       f"{endpoint.outage_wait_s:g} s (GET /models: {problem})")
                await asyncio.sleep(endpoint.health_interval_s)

    async def _probe(self) -> str | None:
        """None when ``GET /models`` answers 200, else what went wrong."""
        import httpx2
        import openai

        self.stats.health_probes += 1
        try:
            await self._clients[0].get("/models", cast_to=httpx2.Response, options={
                "timeout": min(self.endpoint.timeout_s, HEALTH_PROBE_TIMEOUT_S)})
        except openai.APIStatusError as error:
            return f"HTTP {error.status_code}"
        except openai.APIConnectionError as error:
            return self.redact(_connection_problem(error))
        return None

    async def _request(self, messages: list[dict[str, Any]], seed: int | None) -> ChatAnswer:
        import httpx2
        import openai

        endpoint = self.endpoint
        body: dict[str, Any] = {"model": endpoint.model, "messages": messages,
                                "temperature": endpoint.temperature, "max_tokens": endpoint.max_tokens}
        if seed is not None:
            body["seed"] = seed
        client = self._clients[self._next % len(self._clients)]
        self._next += 1
        try:
            # The SDK's low-level post: its auth, base URL and error types, without re-validating the body.
            response = await client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        except openai.APIStatusError as error:
            status = error.status_code
            if status != 429 and status < 500:
                self._answered = True
                raise _Fatal(_error_message(error), status) from error
            retry_after = _retry_after(error.response.headers)
            if retry_after is not None:  # before the slot is given up: no other item sends before then
                self._not_before = max(self._not_before, time.monotonic() + retry_after)
            if status in AWAY_STATUSES:
                raise _Away(f"HTTP {status}: {_error_message(error)}", status, retry_after) from error
            self._answered = True
            raise _Retryable(f"HTTP {status}: {_error_message(error)}", status, retry_after) from error
        except openai.APITimeoutError as error:
            raise _Retryable(type(error).__name__) from error
        except openai.APIConnectionError as error:
            raise _Away(_connection_problem(error)) from error
        self._answered = True
        try:
            completion = json.loads(response.content)
            choice = completion["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
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
        answered_by = self.redact(model) if isinstance(model, str) and model else endpoint.model
        return ChatAnswer(self.redact(text), answered_by, prompt_tokens or 0, completion_tokens or 0, cached=False,
                          attempts=1, finish_reason=finish_reason if isinstance(finish_reason, str) else None)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()


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
