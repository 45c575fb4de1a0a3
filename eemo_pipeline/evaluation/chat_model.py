"""What the evaluation code needs from a model, whatever serves it (local checkpoint or HTTP endpoint): the request,
the ``VisionChatModel`` interface, and the error of a spec that names no model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatRequest:
    """One user turn: the images (shown before the text, in order), the text, and an optional system prompt."""

    prompt: str
    images: tuple[Path, ...] = ()
    system: str | None = None
    max_new_tokens: int = 512
    # Free-form labels carried through for logs and caching (benchmark, item id); never sent to the model.
    tags: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


# Cache version of a generated reply, local or from an endpoint.
GENERATE_VERSION = "evaluation-generate@1"


class ModelSpecError(ValueError):
    """A model spec that names nothing loadable."""


def capped(requests: Sequence[ChatRequest], max_new_tokens: int | None) -> list[ChatRequest]:
    """The requests with their token limit lowered to ``max_new_tokens`` (None: unchanged)."""
    if max_new_tokens is None:
        return list(requests)
    return [replace(r, max_new_tokens=min(r.max_new_tokens, max_new_tokens)) for r in requests]


@runtime_checkable
class VisionChatModel(Protocol):
    """A model that answers image+text questions. ``name`` identifies it in reports and caches."""

    name: str

    def generate(self, requests: Sequence[ChatRequest]) -> list[str]:
        """Greedy replies, one per request, in order."""
        ...

    def keyword_probabilities(self, requests: Sequence[ChatRequest], keywords: Sequence[str]) -> list[list[float]] | None:
        """Softmax over the next-token logits of each keyword's first sub-token, one row per request.

        Returns None when the model cannot expose logits (most HTTP endpoints); callers then skip
        probability-mode metrics and say so in the report.
        """
        ...
