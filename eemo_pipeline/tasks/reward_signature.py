"""A task's per-row reward in TRL's reward signature (``trl_reward``), and the reading of TRL's reward arguments
that the GRPO reward set (``training/rewards.py``) shares with it.

A per-row reward (``RowReward``, one in each task module) takes the parsed ground truth, the parsed prediction
(both read by the task's parser; None or [] when unreadable) and the row's ``sub_task``, and returns a float in
its range. A row whose truth is unusable (no solution, one the parser cannot read or that lies outside the
task's values, a ``sub_task`` the task cannot score under) is an error, never a silent 0 or a skipped row: the
per-row reward raises ``ValueError`` saying why, and ``trl_reward`` re-raises it naming the row (its index in
the batch, its ``row_id`` when the dataset has one, task, sub_task and solution). The GRPO dataset is built from
EEmoDB-Assess, whose answers are always usable, so such a row means a damaged dataset; ``training/grpo.py``
checks every row before the first step (``rewards.check_solutions``). ``trl_reward`` turns a per-row reward into
TRL's signature ``f(completions, **kwargs) -> list[float | None]``, applied to the rows of one task (None for
the others).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eemo_pipeline.tasks.parsing import extract_answer

RewardFunction = Callable[..., list[float | None]]
"""TRL's reward signature: ``f(completions, **kwargs) -> list[float | None]``."""
RowReward = Callable[[Any, Any, Any], float]
"""A per-row reward: ``f(truth, predicted, sub_task) -> float``; ``ValueError`` when the truth is unusable."""
Parser = Callable[[str | None, Any], Any]
"""A task's answer parser: ``f(answer text, sub_task) -> value`` (None or [] when unreadable)."""


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as is; for a conversational list, the last message's content
    (its text parts joined when the content is a list of parts). Anything else gives ''."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if isinstance(completion, Sequence) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], Mapping) else completion[-1]
        if isinstance(content, str):
            return content
        if isinstance(content, Sequence):
            texts = (part.get("text") if isinstance(part, Mapping) else part for part in content)
            return "".join(text for text in texts if isinstance(text, str))
    return ""


def column(values: Any, n: int, name: str) -> list[Any]:
    """A dataset column as ``n`` rows: a single string (or None) is broadcast; a list must have ``n`` rows."""
    if values is None or isinstance(values, str):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} rows for {n} completions")
    return values


def solution_text(solution: Any) -> str | None:
    """A dataset's ``solution`` as text: a string's last answer block when it has one, else the string; a real
    number (not a bool) as Python writes it; anything else (None, a list) None."""
    if isinstance(solution, str):
        return extract_answer(solution) or solution
    if isinstance(solution, numbers.Real) and not isinstance(solution, bool):
        return str(solution)
    return None


def _clipped(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def trl_reward(name: str, parse: Parser, row_reward: RowReward) -> RewardFunction:
    """``row_reward`` in TRL's signature for the rows whose ``task`` is ``name`` (None for other rows).

    ``completions`` are plain strings or conversational lists (the last message is scored); the answer is
    the last ``<answer>`` block. Dataset columns arrive as keyword lists: ``solution`` (the bare answer value,
    or one written with its identifier or inside ``<answer>`` tags; a real number is read as its text),
    ``task``, ``sub_task`` and, when the dataset has it, ``row_id``; a single string is broadcast; other keyword
    arguments are ignored. A row of this task whose truth is unusable raises ``ValueError`` naming the row."""

    def reward(completions: Sequence[Any], solution: Any = None, task: Any = None, sub_task: Any = None,
               row_id: Any = None, **kwargs: Any) -> list[float | None]:
        n = len(completions)
        rows = zip(completions, column(task, n, "task"), column(solution, n, "solution"),
                   column(sub_task, n, "sub_task"), column(row_id, n, "row_id"))
        rewards: list[float | None] = []
        for index, (completion, row_task, row_solution, row_sub_task, row_name) in enumerate(rows):
            if row_task != name:
                rewards.append(None)
                continue
            truth = parse(solution_text(row_solution), row_sub_task)
            predicted = parse(extract_answer(completion_text(completion)), row_sub_task)
            try:
                rewards.append(row_reward(truth, predicted, row_sub_task))
            except ValueError as error:
                where = f"row {index}" + ("" if row_name is None else f" (row_id {row_name!r})")
                raise ValueError(f"{reward.__name__}: {where}, task {row_task!r}, sub_task {row_sub_task!r}, "
                                 f"solution {_clipped(row_solution)}: {error}") from None
        return rewards

    reward.__name__ = reward.__qualname__ = getattr(row_reward, "__name__", name)
    reward.__doc__ = f"{row_reward.__doc__}\n\nRows of task {name!r} only (None elsewhere), in TRL's signature."
    return reward
