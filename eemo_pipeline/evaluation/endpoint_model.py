"""``EndpointChatModel``: any OpenAI-compatible chat endpoint behind ``VisionChatModel``, and the endpoint an
``http(s)://HOST/v1[#MODEL]`` or ``endpoint:<role>`` spec names (an ``EndpointSettings``, the one endpoint type).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from eemo_pipeline.evaluation.chat_model import GENERATE_VERSION, ChatRequest, ModelSpecError, capped
from eemo_pipeline.evaluation.images import ImageError, check_images
from eemo_pipeline.generation.cache import ResponseCache
from eemo_pipeline.settings import EndpointSettings, Settings, read_secret, redact

log = logging.getLogger(__name__)

URL_ROLE = "eval"  # role of an endpoint given by URL: its key comes from EEMO_EVAL_API_KEY
ENDPOINT_PREFIX = "endpoint:"


class EndpointRequestError(RuntimeError):
    """Requests to an endpoint failed for good (after retries, or while it was down); names one and its cause."""


class EndpointChatModel:
    """Any OpenAI-compatible chat endpoint (vLLM serving a checkpoint, a hosted model), greedy (temperature 0).

    Requests go through the generation client (bounded concurrency, retries, the wait for an endpoint that went
    away) and the response cache; images travel as JPEG data URLs resized into the training pixel budget. A
    request that fails for good gets an empty reply, which no parser accepts, and is counted in
    ``stats["failed"]``; with ``strict`` the batch raises ``EndpointRequestError`` instead. Replies cut at the
    request's token limit are kept, as a local model's are.
    """

    def __init__(self, endpoint: EndpointSettings, cache: ResponseCache, *, name: str | None = None,
                 max_new_tokens: int | None = None, strict: bool = False):
        self.endpoint = replace(endpoint, temperature=0.0)
        self.cache = cache
        self.name = name or endpoint.model
        self.max_new_tokens = max_new_tokens  # a cap on every request's own limit; None: no cap
        self.strict = strict
        self.stats = {"calls": 0, "cache_hits": 0, "failed": 0}

    def _items(self, requests: Sequence[ChatRequest], indices: list[int]):
        from eemo_pipeline.generation.images import image_data_url
        from eemo_pipeline.generation.work import WorkItem

        urls: dict[Path, tuple[str, str]] = {}
        items = []
        for i in indices:
            request = requests[i]
            parts: list[dict[str, Any]] = []
            hashes = []
            for path in request.images:
                path = Path(path)
                if path not in urls:
                    check_images([path])
                    try:
                        urls[path] = image_data_url(path)
                    except Exception as error:  # noqa: BLE001 - the caps and decoder of an untrusted file
                        raise ImageError(f"{path}: cannot be sent ({type(error).__name__}: {error})") from error
                parts.append({"type": "image_url", "image_url": {"url": urls[path][0]}})
                hashes.append(urls[path][1])
            parts.append({"type": "text", "text": request.prompt})
            messages = ([{"role": "system", "content": request.system}] if request.system else []) + [
                {"role": "user", "content": parts}]
            # The endpoint's identity, not the replica that answers (one URL: itself, as in caches written before).
            payload = {"base_url": self.endpoint.identity, "system": request.system, "prompt": request.prompt,
                       "images": hashes, "max_new_tokens": request.max_new_tokens}
            tags = ",".join(f"{k}={v}" for k, v in sorted(request.tags.items()))
            items.append(WorkItem(key=f"{i}" + (f" [{tags}]" if tags else ""), messages=messages,
                                  template="evaluation", template_version=GENERATE_VERSION, cache_payload=payload))
        return items

    def generate(self, requests: Sequence[ChatRequest]) -> list[str]:
        from eemo_pipeline.generation.batch import run_batch_sync

        requests = capped(requests, self.max_new_tokens)
        replies = [""] * len(requests)
        limits = sorted({request.max_new_tokens for request in requests})
        for limit in limits:
            indices = [i for i, request in enumerate(requests) if request.max_new_tokens == limit]
            items = self._items(requests, indices)
            result = run_batch_sync(items, replace(self.endpoint, max_tokens=limit), self.cache,
                                    lambda text, item: None, accept_cut=True)
            for i, item in zip(indices, items, strict=True):
                answer = result.answers.get(item.key)
                replies[i] = answer.text if answer is not None else ""
            # The cache's own notes (a damaged file moved aside) are logged by the cache as they happen: not again here,
            # once per batch.
            for note in result.notes:
                log.warning("%s: %s", self.name, note)
            self.stats["calls"] += result.stats["calls"]
            self.stats["cache_hits"] += result.stats["cache_hits"]
            self.stats["failed"] += result.stats["quarantined"]
            if self.strict and result.quarantine:
                first = result.quarantine[0]
                raise EndpointRequestError(f"{len(result.quarantine)} of {len(items)} requests to {self.name} at "
                                           f"{self.endpoint.base_url} failed; request {first['file']}: "
                                           f"{first['reason']}")
            for record in result.quarantine:
                log.warning("%s: request %s failed: %s", self.name, record["file"], record["reason"])
        return replies

    def keyword_probabilities(self, requests: Sequence[ChatRequest], keywords: Sequence[str]) -> None:
        return None  # chat endpoints do not expose next-token logits over a chosen vocabulary


def is_endpoint_spec(spec: str) -> bool:
    return spec.startswith(("http://", "https://", ENDPOINT_PREFIX))


def served_models(base_url: str, api_key: str) -> list[str]:
    """Model ids an OpenAI-compatible server lists at ``GET /models``; ``EndpointRequestError`` when it cannot."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=2, timeout=30)
    try:
        return [model.id for model in client.models.list()]
    except openai.APIError as error:
        cause = error.__cause__ or error
        raise EndpointRequestError(redact(f"{base_url}: cannot list its models at GET /models "
                                          f"({type(cause).__name__}: {cause})", [api_key])) from None
    finally:
        client.close()


def endpoint_settings(spec: str, settings: Settings | None) -> EndpointSettings:
    """The endpoint of an ``http(s)://...[,http(s)://...][#model]`` spec (the key from ``EEMO_EVAL_API_KEY``; without a
    model, the server's only one) or of an ``endpoint:<role>`` spec (the role's endpoint in ``settings``)."""
    if spec.startswith(ENDPOINT_PREFIX):
        role = spec.removeprefix(ENDPOINT_PREFIX).strip()
        if not role.isidentifier():
            raise ModelSpecError(f"{spec!r}: expected endpoint:<role>, e.g. endpoint:describer")
        if settings is None:
            raise ModelSpecError(f"{spec!r}: no settings were given to look the role's endpoint up in")
        return settings.endpoint(role).require()
    base_url, _, model = spec.partition("#")
    endpoint = EndpointSettings.for_role(URL_ROLE, base_url=base_url, model=model)
    if not model:  # asked of the first replica (several URLs, comma-separated, serve the same model)
        base_url = endpoint.base_urls[0] if endpoint.base_urls else base_url
        models = served_models(base_url, read_secret(endpoint.key_variable) or "EMPTY")
        if len(models) != 1:
            raise ModelSpecError(f"{base_url} serves {len(models)} models ({', '.join(models) or 'none'}): "
                                 f"name one as {base_url}#<model>")
        endpoint = replace(endpoint, model=models[0])
    return endpoint
