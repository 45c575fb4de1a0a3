"""A task's per-row reward in TRL's reward signature (``trl_reward``), and the reading of TRL's reward arguments
that the GRPO reward set (``training/rewards.py``) shares with it.

A per-row reward (``RowReward``, one in each task module) takes the parsed ground truth, the parsed prediction
(both read by the task's parser; None or [] when unreadable) and the row's ``sub_task``, and returns a float, or
None when the reward does not apply to the row (TRL skips None when summing). ``trl_reward`` turns one into
TRL's signature ``f(completions, **kwargs) -> list[float | None]``, applied to the rows of one task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eemo_pipeline.tasks.parsing import extract_answer

RewardFunction = Callable[..., list[float | None]]
"""TRL's reward signature: ``f(completions, **kwargs) -> list[float | None]``."""
RowReward = Callable[[Any, Any, str], float | None]
"""A per-row reward: ``f(truth, predicted, sub_task) -> float | None``."""
Parser = Callable[[str | None, str], Any]
"""A task's answer parser: ``f(answer text, sub_task) -> value`` (None or [] when unreadable)."""

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
