"""What the evaluation code needs from a model, whatever serves it (local checkpoint or HTTP endpoint)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
