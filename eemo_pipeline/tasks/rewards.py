"""The per-task GRPO rewards as pure per-row functions (paper section 4.2; REFERENCE.md sections 3 and 4).

Each takes the parsed ground truth, the parsed prediction (both read by the task's parser in the registry;
None or [] when unreadable) and the row's ``sub_task``, and returns a float, or None when the reward does not
apply to the row (TRL skips None when summing). ``trl_reward`` turns one into TRL's reward signature
``f(completions, **kwargs) -> list[float | None]``, applied to the rows of one task.

Ranges:

* ``ranking_reward`` [0, 1]: ``(ranking_score / 100) ** 2`` (the paper's squared margin).
* ``vad_reward`` [0, 1]: the hybrid regression ("funnel") reward
  ``W_LIN * max(0, 1 - d / D_MAX) + (1 - W_LIN) * exp(-d**2 / (2 * SIGMA**2))`` with ``d = |pred - gt|`` on 0-1.
* ``emotion_similarity_reward`` [0, 1]: 1 for the exact label, else
  ``(SIM_A * S_vad + (1 - SIM_A) * S_sem ** SIM_K) ** SIM_P`` from the label set's similarity matrices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eemo_pipeline.tasks.metrics import ranking_score
from eemo_pipeline.tasks.parsing import extract_answer
from eemo_pipeline.tasks.similarity import similarity_matrices

RewardFunction = Callable[..., list[float | None]]
"""TRL's reward signature: ``f(completions, **kwargs) -> list[float | None]``."""
RowReward = Callable[[Any, Any, str], float | None]
"""A per-row reward: ``f(truth, predicted, sub_task) -> float | None``."""
Parser = Callable[[str | None, str], Any]
"""A task's answer parser: ``f(answer text, sub_task) -> value`` (None or [] when unreadable)."""

# Hybrid VAD reward: half linear guidance (non-zero up to D_MAX = half the 0-1 scale, so even a coarse answer gets
# a gradient), half a Gaussian precision kernel (SIGMA = 0.1: ~0.88 at d = 0.05, ~0.61 at d = 0.1, ~0.14 at d = 0.2).
VAD_W_LIN = 0.5
VAD_D_MAX = 0.5
VAD_SIGMA = 0.1


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as is; for a conversational list, the last message's content
    (text parts joined when the content is a list of parts). Anything else gives ''."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if isinstance(completion, Sequence) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], Mapping) else completion[-1]
        if isinstance(content, str):
            return content
        if isinstance(content, Sequence):
            return "".join(
                part.get("text") or "" if isinstance(part, Mapping) else str(part) for part in content
            )
    return ""


def column(values: Any, n: int, name: str) -> list[Any]:
    """A dataset column as ``n`` rows: a single string (or None) is broadcast; a list must have ``n`` rows."""
    if values is None or isinstance(values, str):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} rows for {n} completions")
    return values


def ranking_reward(truth: list[str], predicted: list[str], sub_task: str) -> float:
    """``(ranking_score(truth, predicted) / 100) ** 2``; a prediction without ranking scores 0. Range [0, 1]."""
    return (ranking_score(truth, predicted) / 100.0) ** 2


def hybrid_regression(distance: float) -> float:
    """``VAD_W_LIN * max(0, 1 - d / VAD_D_MAX) + (1 - VAD_W_LIN) * exp(-d**2 / (2 VAD_SIGMA**2))``. Range [0, 1]."""
    linear = max(0.0, 1.0 - distance / VAD_D_MAX)
    gaussian = math.exp(-(distance**2) / (2.0 * VAD_SIGMA**2))
    return VAD_W_LIN * linear + (1.0 - VAD_W_LIN) * gaussian


def vad_reward(truth: float | None, predicted: float | None, sub_task: str) -> float | None:
    """The hybrid regression reward of ``d = |clip(predicted, 0, 1) - truth|``; 0.0 without a predicted value;
    None when the truth is unusable (no value, or a sub_task that is no VAD dimension). Range [0, 1]."""
    if truth is None:
        return None
    if predicted is None:
        return 0.0
    return hybrid_regression(abs(min(max(predicted, 0.0), 1.0) - truth))


def emotion_similarity_reward(truth: str | None, predicted: str | None, sub_task: str) -> float:
    """1.0 for the exact label (case-insensitive), 0.0 outside the label set of ``sub_task`` (the taxonomy
    name) or without an answer, else ``(SIM_A * S_vad + (1 - SIM_A) * S_sem ** SIM_K) ** SIM_P``. Range [0, 1]."""
    return similarity_matrices(sub_task).reward(truth or "", predicted)


def trl_reward(name: str, parse: Parser, row_reward: RowReward) -> RewardFunction:
    """``row_reward`` in TRL's signature for the rows whose ``task`` is ``name`` (None for other rows).

    ``completions`` are plain strings or conversational lists (the last message is scored); the answer is
    the last ``<answer>`` block. Dataset columns arrive as keyword lists: ``solution`` (the bare answer value,
    or one written with its identifier or inside ``<answer>`` tags), ``task`` and ``sub_task``; a single
    string is broadcast; other keyword arguments are ignored."""

    def reward(completions: Sequence[Any], solution: Any = None, task: Any = None, sub_task: Any = None,
               **kwargs: Any) -> list[float | None]:
        n = len(completions)
        rows = zip(completions, column(task, n, "task"), column(solution, n, "solution"),
                   column(sub_task, n, "sub_task"))
        rewards: list[float | None] = []
        for completion, row_task, row_solution, row_sub_task in rows:
            if row_task != name:
                rewards.append(None)
                continue
            truth = parse(extract_answer(row_solution) or row_solution, row_sub_task)
            predicted = parse(extract_answer(completion_text(completion)), row_sub_task)
            rewards.append(row_reward(truth, predicted, row_sub_task))
        return rewards

    reward.__name__ = reward.__qualname__ = getattr(row_reward, "__name__", name)
    reward.__doc__ = f"{row_reward.__doc__}\n\nRows of task {name!r} only (None elsewhere), in TRL's signature."
    return reward
