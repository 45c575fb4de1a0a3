"""The OpenAI chat API as the offline server's parts speak it: the model name, the request limits, the error shape,
the body hash, token counts and a message's text."""

from __future__ import annotations

import hashlib
import json
from typing import Any

DEFAULT_MODEL = "eemo-offline-rules-v1"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MAX_BODY_BYTES = 64 * 1024 * 1024  # data-URL images travel in the body
TASKS = ("describe", "reason", "narrative", "causal", "evocation", "reasoning_choice", "pair_ranking", "pair_dimension",
         "judge")


class BadRequest(Exception):
    """A request the model cannot answer: sent back as HTTP 400 with this message."""

    def __init__(self, message: str, param: str | None = None):
        self.message, self.param = message, param
        super().__init__(message)


def error_payload(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """An error body in the OpenAI shape."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def body_hash(body: Any) -> str:
    """sha256 of a request body's canonical JSON (keys sorted): what faults and the request log count by."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def count_tokens(text: str) -> int:
    """Tokens as whitespace-separated words (good enough for usage figures of an offline model)."""
    return len(text.split())


def text_of(content: Any) -> str:
    """The text of a message's content: the string itself, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content
                         if isinstance(part, dict) and part.get("type") == "text")
    return ""
