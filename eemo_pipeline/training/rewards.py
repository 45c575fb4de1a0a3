"""The GRPO reward set (paper section 4.2), in the style of open-r1's rewards: the format reward, each
registered task's reward (``eemo_pipeline.tasks.registry``) and the gated total the trainer optimises.

Every reward has TRL's signature ``f(completions, **kwargs) -> list[float | None]``:

* ``completions`` are plain strings or conversational lists ``[{"role": "assistant", "content": "..."}]``
  (the last message is scored; a content given as a list of parts has its text parts joined);
* dataset columns arrive as keyword lists of the same length: ``solution`` (the bare answer value of
  EEmoDB-Assess: ``"joy, surprise, fear"``, ``"0.7321"``, ``"Amusement"``; a value written with its identifier
  or inside ``<answer>`` tags is accepted too, a real number as its text), ``task`` (a registry name),
  ``sub_task`` and ``row_id`` (named in errors); a single string is broadcast to every row; other keyword
  arguments (``prompts``, ``completion_ids``, ``trainer_state``...) are ignored;
* a task reward gives ``None`` for the rows of other tasks (TRL skips None when summing).

One rule for a row whose truth is unusable, in every task: no solution, one the task's parser cannot read or
that lies outside the task's values (a ranking of none of the seven emotions, a number outside 0-1, ArtEmis'
"something else"), or a ``sub_task`` the task cannot score under (a dominant-emotion row without a known
taxonomy, a VAD row without a dimension). Its task reward, and so ``total_reward``, raises ``ValueError`` naming
the row (index in the batch, ``row_id``, task, sub_task, solution); it never scores such a row 0 or skips it.
The GRPO dataset holds EEmoDB-Assess answers, which are always usable, so such a row is a damaged dataset, and
``check_solutions`` finds it before training starts. ``format_reward`` reads no solution and never raises.

Rewards and ranges:

* ``format_reward`` {0, 1}: the reply (surrounding blanks stripped) is exactly ``<think>...</think>`` then
  ``<answer>...</answer>`` (only blanks between and no nested tags), the answer holds the task's
  identifier (``Task.answer_identifiers``: ``Emotion ranking:``, ``Valence:``...; case insensitive) and is
  well formed for the task (``Task.well_formed``): a ranking names one to three distinct emotions and each
  comma item is one of the seven (an item naming something else, or several emotions, fails it), a VAD answer
  gives a number, a dominant-emotion answer names one label of the row's label set. A row without a known task
  only needs the two blocks.
* the task rewards (``Task.row_reward`` in each task module, each [0, 1]), under their registry ``reward_name``.
* ``total_reward`` [0, 1 + FORMAT_WEIGHT]: ``FORMAT_WEIGHT * format + gate * task reward`` with the gate the
  format compliance (the task reward counts only when the format reward is 1). This is the paper's reward
  (equation 4) and the one to train with: passing the parts to TRL separately would sum them ungated.

Reading a reply is linear in its length (``formatted_answer``, ``parsing.extract_answer``): a policy may write
megabytes of repeated tags, and a quadratic pattern would stall the trainer's reward step.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

from eemo_pipeline.tasks.registry import TASKS
from eemo_pipeline.tasks.reward_signature import RewardFunction, column, completion_text

FORMAT_WEIGHT = 0.5
"""Scale of the format reward in ``total_reward`` (the paper's lambda; its value was lost). 0.5 keeps the
format signal clearly below a correct answer (1.0) while still rewarding compliance on its own."""

_TAG = re.compile(r"<(/?(?:think|answer))>", re.IGNORECASE)
_FORMAT_TAGS = ["think", "/think", "answer", "/answer"]


def formatted_answer(text: str) -> str | None:
    """The answer of a reply that is exactly ``<think>...</think>`` then ``<answer>...</answer>`` (surrounding
    blanks stripped, only blanks between the blocks, no other think or answer tag anywhere), else None. It reads
    at most five tags, so it is linear in the reply's length (a regular expression over the blocks was not:
    a 128 KB reply of repeated tags took 20 s)."""
    text = text.strip()
    tags = list(itertools.islice(_TAG.finditer(text), len(_FORMAT_TAGS) + 1))
    if [tag.group(1).lower() for tag in tags] != _FORMAT_TAGS:
        return None
    think, think_end, answer, answer_end = tags
    if think.start() != 0 or answer_end.end() != len(text) or text[think_end.end():answer.start()].strip():
        return None
    return text[answer.end():answer_end.start()]


def _format_ok(text: str, task: str | None, sub_task: str | None) -> bool:
    answer = formatted_answer(text)
    if answer is None:
        return False
    entry = TASKS.get(task) if isinstance(task, str) else None
    if entry is None:
        return True
    named = any(identifier.lower() in answer.lower() for identifier in entry.answer_identifiers(sub_task))
    return named and entry.well_formed(entry.parse(answer, sub_task or ""))


def format_reward(completions: Sequence[Any], task: Any = None, sub_task: Any = None, **kwargs: Any) -> list[float]:
    """1.0 when the reply is ``<think>...</think>`` followed by ``<answer>...</answer>`` (blanks only around
    and between them, no nested tags), the answer holds the task's identifier (the sub_task's own when it
    names one) and is well formed for the task (``Task.well_formed``); else 0.0. Rows without a known task only
    need the two blocks. Range {0, 1}."""
    n = len(completions)
    tasks, subs = column(task, n, "task"), column(sub_task, n, "sub_task")
    return [float(_format_ok(completion_text(c), t, s)) for c, t, s in zip(completions, tasks, subs)]


def total_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """``FORMAT_WEIGHT * format + gate * task reward``: the gate is 1 only when the format reward is 1; the
    task reward is the registered one that applies to the row (0 for a row of no known task). Range
    [0, 1 + FORMAT_WEIGHT]. ``ValueError`` naming the row when a row's truth is unusable (module docstring)."""
    formats = format_reward(completions, **kwargs)
    parts = [task.reward(completions, **kwargs) for task in TASKS.values()]
    totals = []
    for row, fmt in enumerate(formats):
        task_value = next((p[row] for p in parts if p[row] is not None), 0.0)
        totals.append(FORMAT_WEIGHT * fmt + (task_value if fmt == 1.0 else 0.0))
    return totals


def check_solutions(records: Sequence[dict[str, Any]]) -> None:
    """Every record's truth is usable (GRPO dataset records: ``solution``, ``task``, ``sub_task``, ``row_id``):
    ``total_reward`` of empty replies over them, which raises ``ValueError`` naming the first row whose truth is
    not. Run before training, so a damaged dataset stops a run before its first step rather than hours in."""
    columns = {name: [record.get(name) for record in records] for name in ("solution", "task", "sub_task", "row_id")}
    total_reward([""] * len(records), **columns)


REWARD_FUNCTIONS: dict[str, RewardFunction] = {
    "format": format_reward,
    **{task.reward_name: task.reward for task in TASKS.values()},
    "total": total_reward,
}
"""Registry by name (as open-r1's ``get_reward_funcs``). Train with ``total`` (the gated paper reward); the
others are ungated parts, useful for logging."""


def get_reward_funcs(names: Sequence[str]) -> list[RewardFunction]:
    """The reward functions named (KeyError naming an unknown one)."""
    return [REWARD_FUNCTIONS[name] for name in names]
