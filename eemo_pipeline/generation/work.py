"""What the generation stages exchange: a work item to send and the answer that came back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A validator returns None when a reply is acceptable, else the reason it is not.
Validator = Callable[[str, "WorkItem"], str | None]


@dataclass(frozen=True)
class WorkItem:
    """One chat request of a generation stage.

    ``key`` names the item in errors and quarantine records (e.g. ``affection/coco/123.jpg/describe``);
    ``messages`` are OpenAI chat messages (image entries as data URLs); ``cache_payload`` is everything the
    answer depends on besides the role and model (rendered prompt, image content hash, template version), so
    equal payloads share one cached answer; ``context`` carries the facts a validator checks against.
    """

    key: str
    messages: list[dict[str, Any]]
    template: str
    template_version: str
    cache_payload: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatAnswer:
    """An answer: its text, the model the endpoint says answered, token counts, whether it came from the cache,
    the requests it took and why the model stopped (``length``: cut at ``max_tokens``; None when not said)."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    attempts: int
    finish_reason: str | None = None
