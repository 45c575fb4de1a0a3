"""The registry of GRPO/Assess tasks: everything that differs from one task to the next, in one entry.

Subsets (``template_ids``, the ``task`` column), training (``identifiers`` for the format reward, the task
reward by ``reward_name``), the benchmark runner (``benchmark_asks``, ``read_reply``, ``score``) and the report
(``report_columns``) read the entries; none of them branches on a task's name. Adding a task: one ``Task`` here (its parser, per-row
reward, scorer, templates and reward-hacking probe in the neighbouring modules) plus a test; README.md "Adding a task" has the list.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from eemo_pipeline.tasks import benchmark, probes, rewards
from eemo_pipeline.tasks.parsing import parse_dominant, parse_ranking, parse_value
from eemo_pipeline.tasks.questions import (
    DOMINANT_TEMPLATE,
    RANKING_LENGTH,
    RANKING_TEMPLATE,
    VAD_DIMENSIONS,
    VAD_TEMPLATE,
)


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
    task: str = ""  # filled in from the entry that holds the column (``report_columns``)

    @property
    def kind(self) -> str:
        return "pct" if len(self.metrics) == 1 else "pair"


@dataclass(frozen=True)
class Task:
    """One GRPO/Assess task.

    ``name`` is the ``task`` value of Assess rows, GRPO records and benchmark items; ``sub_tasks`` the fixed
    ``sub_task`` values (empty when they vary, e.g. the taxonomy name of dominant_emotion); ``identifiers``
    what the answer block must hold (a sub_task naming one narrows to it: ``Valence:`` for valence);
    ``template_ids`` the Assess question templates (``questions.ASSESS_TEMPLATES``); ``parse`` reads an answer
    text (given its sub_task) into the value that ``row_reward`` scores against the parsed solution;
    ``reward_name`` names the reward in the GRPO reward set; ``well_formed`` says whether a parsed answer keeps
    the format reward beyond holding its identifier (the ranking's length rule); ``probe`` is what the
    reward-hacking sweep asks of the task (``probes.HackingProbe``: constant answers must earn less in
    ``total`` than informative ones). On a benchmark, ``benchmark_asks`` gives an item's requests,
    ``read_reply`` reads a reply into prediction fields and ``score`` turns the task's predictions into rows of
    the metrics table, whose metric names are ``metric_names``."""

    name: str
    sub_tasks: tuple[str, ...]
    identifiers: tuple[str, ...]
    template_ids: tuple[str, ...]
    parse: rewards.Parser
    row_reward: rewards.RowReward
    reward_name: str
    benchmark_asks: benchmark.Asker
    read_reply: benchmark.ReplyReader
    score: benchmark.Scorer
    metric_names: tuple[str, ...]
    probe: probes.HackingProbe
    report_columns: tuple[ReportColumn, ...] = ()
    well_formed: Callable[[Any], bool] = lambda parsed: True  # no rule beyond the identifier

    @functools.cached_property
    def reward(self) -> rewards.RewardFunction:
        """``row_reward`` in TRL's signature, for this task's rows (None for other rows)."""
        return rewards.trl_reward(self.name, self.parse, self.row_reward)

    def answer_identifiers(self, sub_task: str | None) -> tuple[str, ...]:
        """The identifiers an answer may hold: the one named after ``sub_task`` when there is one, else all."""
        wanted = (sub_task or "").strip().lower()
        named = tuple(i for i in self.identifiers if i.rstrip(":").strip().lower() == wanted)
        return named or self.identifiers


def parse_ranking_answer(answer: str | None, sub_task: str) -> list[str]:
    """The distinct emotions of a ranking answer, all of them (``parse_ranking``)."""
    return parse_ranking(answer)


def ranks_at_most_three(emotions: list[str]) -> bool:
    """A ranking answer is well formed when it names one to ``RANKING_LENGTH`` distinct emotions: one that
    lists more (every emotion, say) fails the format reward, so ``total`` gives it 0 whatever it hits."""
    return 1 <= len(emotions) <= RANKING_LENGTH


def parse_dominant_answer(answer: str | None, sub_task: str) -> str | None:
    """The label of a dominant-emotion answer (``parse_dominant``)."""
    return parse_dominant(answer)


def parse_vad(answer: str | None, sub_task: str) -> float | None:
    """The value after the sub_task's identifier; None when ``sub_task`` is no VAD dimension."""
    dimension = (sub_task or "").lower()
    return parse_value(answer, dimension) if dimension in VAD_DIMENSIONS else None


def _score_vad(predictions: pl.DataFrame, task: str) -> pl.DataFrame:
    """The VAD scorer over the three dimensions."""
    return benchmark.score_vad(predictions, task, VAD_DIMENSIONS)


RANKING = Task(
    name="ranking", sub_tasks=("emotion_ranking",), identifiers=("Emotion ranking:",),
    template_ids=(RANKING_TEMPLATE.template_id,), parse=parse_ranking_answer,
    row_reward=rewards.ranking_reward, reward_name="ranking", benchmark_asks=benchmark.ranking_asks,
    read_reply=benchmark.read_ranking, score=benchmark.score_ranking,
    metric_names=("ranking_score",), probe=probes.RANKING_PROBE,
    report_columns=(ReportColumn("table1", "ranking", "Ranking Score", "eemo_bench", "overall", "all",
                                 ("ranking_score",)),),
    well_formed=ranks_at_most_three,
)
VAD = Task(
    name="vad", sub_tasks=VAD_DIMENSIONS, identifiers=tuple(f"{d.capitalize()}:" for d in VAD_DIMENSIONS),
    template_ids=(VAD_TEMPLATE.template_id,), parse=parse_vad, row_reward=rewards.vad_reward, reward_name="vad",
    benchmark_asks=benchmark.vad_asks, read_reply=benchmark.read_vad, score=_score_vad, metric_names=("srcc", "plcc"),
    probe=probes.VAD_PROBE,
    report_columns=tuple(ReportColumn("table2", group, group.capitalize(), "eemo_bench", None, group, ("srcc", "plcc"))
                         for group in (*VAD_DIMENSIONS, "overall")),
)
DOMINANT_EMOTION = Task(
    name="dominant_emotion", sub_tasks=(), identifiers=("Dominant emotion:",),
    template_ids=(DOMINANT_TEMPLATE.template_id,), parse=parse_dominant_answer,
    row_reward=rewards.emotion_similarity_reward, reward_name="emotion_similarity",
    benchmark_asks=benchmark.dominant_asks, read_reply=benchmark.read_dominant, score=benchmark.score_dominant,
    metric_names=("accuracy", "macro_f1"), probe=probes.DOMINANT_PROBE,
    report_columns=tuple(
        ReportColumn("table3", f"{name}_{short}", f"{title} {short.upper()}", name, "overall", "all", (metric,))
        for name, title in (("artphoto", "Artphoto"), ("artemis", "ArtEmis"))
        for short, metric in (("f1", "macro_f1"), ("acc", "accuracy"))
    ),
)

TASKS: dict[str, Task] = {task.name: task for task in (RANKING, VAD, DOMINANT_EMOTION)}
"""Every GRPO/Assess task by name, in the order rewards, scorers and report columns are read."""


def report_columns(table: str) -> list[ReportColumn]:
    """The registry's columns of report ``table`` (``table1``, ``table2``...), in registry order."""
    return [dataclasses.replace(column, task=task.name)
            for task in TASKS.values() for column in task.report_columns if column.table == table]
