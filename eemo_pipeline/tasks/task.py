"""What a GRPO/Assess task is: the ``Task`` that each task module exports as ``TASK`` and the registry lists.

Everything that differs from one task to the next is a field of its ``Task``, so subsets, training, evaluation,
``eemo assess`` and the report read the registry and never branch on a task's name. README.md "Adding a task"
says how to write one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from eemo_pipeline.tasks import benchmark, reward_signature
from eemo_pipeline.tasks.assess_rows import AssessInputs
from eemo_pipeline.tasks.probes import HackingProbe
from eemo_pipeline.tasks.questions import Template


@dataclass(frozen=True)
class ReportColumn:
    """One report cell read from the metrics table: ``metrics`` names one metric (a percentage) or an
    (SRCC, PLCC) pair; ``breakdown`` None gives one report row per breakdown (e.g. per VAD mode)."""

    table: str
    key: str
    header: str
    benchmark: str
    breakdown: str | None
    group: str
    metrics: tuple[str, ...]
    task: str = ""  # filled in from the entry that holds the column (``registry.report_columns``)

    @property
    def kind(self) -> str:
        return "pct" if len(self.metrics) == 1 else "pair"


@dataclass(frozen=True)
class ImageQuestion:
    """One question ``eemo assess`` asks of any image: ``field`` names its value in the printed record,
    ``question()`` renders it (an Assess question, with the seven targets where it needs candidates) and
    ``read(reply)`` gives the value, or None when the reply gives none."""

    field: str
    question: Callable[[], str]
    read: Callable[[str | None], Any]


EemoBenchItem = Callable[[Mapping[str, Any]], "dict[str, Any] | None"]
"""``f(an EEmo-Bench image's ground truth) -> the task's fields of its item, or None for no item``. The ground
truth holds ``category``, ``labels`` (the benchmark's seven emotions), ``ranking`` (three of them, strongest
first) and ``valence``, ``arousal``, ``dominance`` on 0-1; the fields fill the item's columns
(``evaluation/benchmark_files.ITEM_SCHEMA``: ``answer``, ``labels``, ``ranking``, the VAD values)."""


@dataclass(frozen=True)
class Task:
    """One GRPO/Assess task.

    Names and data: ``name`` is the ``task`` value of Assess rows, GRPO records and benchmark items;
    ``sub_tasks`` the fixed ``sub_task`` values (empty when they vary, e.g. the taxonomy name of
    dominant_emotion); ``templates`` the Assess question templates; ``assess_rows`` builds the task's
    EEmoDB-Assess rows (``assess_rows.AssessInputs`` -> rows of ``ASSESS_ROW_SCHEMA``).

    Training: ``identifiers`` is what the answer block must hold (a sub_task naming one narrows to it:
    ``Valence:`` for valence); ``parse`` reads an answer text (given its sub_task) into the value that
    ``row_reward`` scores against the parsed solution, and raises ``ValueError`` for a truth it cannot use
    (``reward_signature``: the row is named, never skipped); ``reward_name`` names the reward in the GRPO reward
    set; ``well_formed`` says whether a parsed answer keeps the format reward beyond holding its identifier, i.e.
    whether it is an answer of the task's kind (a ranking of one to three of the seven emotions, a number, one
    label of the row's set); ``probe`` is what the reward-hacking sweep asks of the task
    (``probes.HackingProbe``: constant answers must earn less in ``total`` than informative ones).

    Evaluation: ``eemo_bench_item`` gives the task's EEmo-Bench item of an image; ``benchmark_asks`` an item's
    requests, ``read_reply`` reads a reply into prediction fields and ``score`` turns the task's predictions
    into rows of the metrics table, whose metric names are ``metric_names``; ``report_columns`` are the cells
    it adds to the report's tables; ``image_questions`` what ``eemo assess`` asks of any image."""

    name: str
    sub_tasks: tuple[str, ...]
    identifiers: tuple[str, ...]
    templates: tuple[Template, ...]
    assess_rows: Callable[[AssessInputs], pl.DataFrame]
    parse: reward_signature.Parser
    row_reward: reward_signature.RowReward
    reward_name: str
    probe: HackingProbe
    eemo_bench_item: EemoBenchItem
    benchmark_asks: benchmark.Asker
    read_reply: benchmark.ReplyReader
    score: benchmark.Scorer
    metric_names: tuple[str, ...]
    image_questions: tuple[ImageQuestion, ...]
    report_columns: tuple[ReportColumn, ...] = ()
    well_formed: Callable[[Any], bool] = lambda parsed: True  # no rule beyond the identifier

    @property
    def template_ids(self) -> tuple[str, ...]:
        return tuple(template.template_id for template in self.templates)

    @functools.cached_property
    def reward(self) -> reward_signature.RewardFunction:
        """``row_reward`` in TRL's signature, for this task's rows (None for other rows)."""
        return reward_signature.trl_reward(self.name, self.parse, self.row_reward)

    def answer_identifiers(self, sub_task: str | None) -> tuple[str, ...]:
        """The identifiers an answer may hold: the one named after ``sub_task`` when there is one, else all."""
        wanted = sub_task.strip().lower() if isinstance(sub_task, str) else ""
        named = tuple(i for i in self.identifiers if i.rstrip(":").strip().lower() == wanted)
        return named or self.identifiers
