"""The registry of GRPO/Assess tasks: one line per task module, each exporting its ``Task`` as ``TASK``.

Subsets (``assess_rows``, the ``task`` column), training (``identifiers`` for the format reward, the task reward
by ``reward_name``, the logged reward curves), the benchmark readers and runner (``eemo_bench_item``,
``benchmark_asks``, ``read_reply``, ``score``), ``eemo assess`` (``image_questions``) and the report
(``report_columns``) read these entries; none of them branches on a task's name. Adding a task: its module in
``tasks/``, its line here and a test; README.md "Adding a task" has the list.
"""

from __future__ import annotations

import dataclasses

from eemo_pipeline.tasks import dominant_emotion, ranking, vad
from eemo_pipeline.tasks.questions import Template
from eemo_pipeline.tasks.task import ReportColumn, Task

TASKS: dict[str, Task] = {task.name: task for task in (
    ranking.TASK,
    vad.TASK,
    dominant_emotion.TASK,
)}
"""Every GRPO/Assess task by name, in the order rewards, scorers, questions and report columns are read."""


def assess_templates() -> dict[str, Template]:
    """Every registered Assess question template by id (the ``template_id`` column)."""
    return {template.template_id: template for task in TASKS.values() for template in task.templates}


def report_columns(table: str) -> list[ReportColumn]:
    """The registry's columns of report ``table`` (``table1``, ``table2``...), in registry order."""
    return [dataclasses.replace(column, task=task.name)
            for task in TASKS.values() for column in task.report_columns if column.table == table]
