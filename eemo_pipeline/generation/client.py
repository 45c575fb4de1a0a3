"""One async client for any OpenAI-compatible chat endpoint (vLLM's ``vllm serve``, DeepSeek, others).

Configured per role (describer, reasoner, judge): base URL, model, key, concurrency, timeout and retry
budget, by default from the settings (``EEMO_<ROLE>_BASE_URL``, ``EEMO_<ROLE>_MODEL``; ``eemo_pipeline.settings``).
The key is read from its variable (``EEMO_<ROLE>_API_KEY``) when the client is built and is never stored in
config, logs or metadata.
Retries: 429, 5xx, timeouts, dropped connections and malformed bodies, with exponential backoff and full
jitter, honouring ``Retry-After`` up to ``retry_after_cap_s``; any other error is raised at once with the
request's identity. An ``ItemBudget`` bounds the total time of one item's requests, retries and waits.
Every text taken from a response or an exception (answers, error reasons) is scrubbed of the configured keys
and of any token after ``Bearer `` (``settings.redact``) before it leaves the client.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from eemo_pipeline.generation.work import ChatAnswer
from eemo_pipeline.settings import Settings, endpoint_variable, read_secret, redact

ROLES = ("describer", "reasoner", "judge")
SLOTS_PER_POOL = 32


class EndpointNotConfigured(ValueError):
    """No base URL or model for a role."""


class GenerationError(RuntimeError):
    """A request failed for good; names the item, never the key. ``transient``: the endpoint may answer later
    (429, 5xx, timeouts, dropped connections, malformed bodies, the time budget), unlike a 4xx refusal."""

    def __init__(self, item: str, reason: str, status: int | None = None, transient: bool = False):
        self.item, self.reason, self.status, self.transient = item, reason, status, transient
        super().__init__(f"{item}: {reason}" + (f" (HTTP {status})" if status else ""))


@dataclass(frozen=True)
class EndpointConfig:
    role: str
    base_url: str
    model: str
    concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    temperature: float = 0.7
    max_tokens: int = 512
    # A Retry-After above this is cut to it: a gateway asking for an hour must not stall the run for an hour.
    retry_after_cap_s: float = 60.0
    # Total time of one item (its requests, retries, waits and second sample) once its first request starts.
    item_budget_s: float = 600.0
    # An item whose answers were rejected in this many runs is no longer asked (counted in the cache).
    max_item_runs: int = 3
    # Set only from a Dagster EnvVar (LLMEndpointResource.api_key); None reads EEMO_<ROLE>_API_KEY.
    api_key: str | None = field(default=None, repr=False, compare=False)

    @property
    def key_variable(self) -> str:
        return endpoint_variable(self.role, "api_key")

    @classmethod
    def from_env(cls, role: str, **overrides: Any) -> EndpointConfig:
        """The role's endpoint in the environment's settings, with non-empty ``overrides`` (run config) on top."""
        configured = Settings.from_env().endpoint(role)
        values = {"base_url": configured.base_url, "model": configured.model}
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        missing = [endpoint_variable(role, name) for name in ("base_url", "model") if not values.get(name)]
        if missing:
            raise EndpointNotConfigured(
                f"the {role} endpoint is not configured: set {' and '.join(missing)} (or the run config), "
                f"e.g. a local `vllm serve` at http://127.0.0.1:8000/v1"
            )
        return cls(role=role, **values)

    def public(self) -> dict[str, Any]:
        """What may be shown in metadata and logs: everything but the key."""
        return {k: v for k, v in asdict(self).items() if k != "api_key"}


@dataclass
class ClientStats:
    calls: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ItemBudget:
    """The time one item may take, counted from its first request (not from its wait for a slot)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._deadline: float | None = None

    def start(self) -> None:
        if self._deadline is None:
            self._deadline = time.monotonic() + self.seconds

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


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class ChatClient:
    """Bounded-concurrency chat completions with retries; ``stats`` counts calls, retries and tokens."""

    def __init__(self, config: EndpointConfig):
        from openai import AsyncOpenAI

        self.config = config
        self.stats = ClientStats()
        self._semaphore = asyncio.Semaphore(config.concurrency)
        # One connection pool per SLOTS_PER_POOL concurrent requests: the HTTP client's pool scans all of
        # its connections for every request, which costs more CPU than the request itself at high concurrency.
        # Our own retry loop (honouring Retry-After, counting retries), so the SDK's is off.
        key = config.api_key or read_secret(config.key_variable) or "EMPTY"
        self._secrets = (key, config.api_key)
        self._clients = [
            AsyncOpenAI(base_url=config.base_url, api_key=key, max_retries=0, timeout=config.timeout_s)
            for _ in range(max(1, -(-config.concurrency // SLOTS_PER_POOL)))
        ]
        self._next = 0

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
        budget = budget or ItemBudget(self.config.item_budget_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._semaphore:
                    budget.start()
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
            except _Retryable as error:
                if attempt > self.config.max_retries:
                    raise self._failed(item, f"gave up after {attempt} attempts: {error.reason}", error.status,
                                       True) from None
                self.stats.retries += 1
                backoff = random.uniform(0, min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1)))
                wait = max(backoff, min(error.retry_after or 0.0, self.config.retry_after_cap_s))
                if wait >= budget.left():
                    raise self._failed(item, f"time budget of {budget.seconds:g} s spent after {attempt} attempts: "
                                             f"{error.reason}", error.status, True) from None
                await asyncio.sleep(wait)

    async def _request(self, messages: list[dict[str, Any]], seed: int | None) -> ChatAnswer:
        import httpx2
        import openai

        body: dict[str, Any] = {"model": self.config.model, "messages": messages,
                                "temperature": self.config.temperature, "max_tokens": self.config.max_tokens}
        if seed is not None:
            body["seed"] = seed
        client = self._clients[self._next % len(self._clients)]
        self._next += 1
        try:
            # The SDK's low-level post: its auth, base URL and error types, without re-validating the body.
            response = await client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        except openai.APIStatusError as error:
            status = error.status_code
            if status == 429 or status >= 500:
                raise _Retryable(f"HTTP {status}: {_error_message(error)}", status,
                                 _retry_after(error.response.headers)) from error
            raise _Fatal(_error_message(error), status) from error
        except (openai.APITimeoutError, openai.APIConnectionError) as error:
            raise _Retryable(type(error).__name__) from error
        try:
            completion = json.loads(response.content)
            text = completion["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise _Retryable(f"malformed response body ({type(error).__name__})") from error
        if not isinstance(text, str):
            raise _Retryable("malformed response body (no message content)")
        text = self.redact(text)
        usage = completion.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        return ChatAnswer(text, completion.get("model") or self.config.model, prompt_tokens, completion_tokens,
                          cached=False, attempts=1)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()


def _error_message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        detail = body.get("error", body)
        message = detail.get("message") if isinstance(detail, dict) else detail
        if message:
            return str(message)[:300]
    return str(error)[:300]
