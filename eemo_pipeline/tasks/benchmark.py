"""What a task does on a benchmark, in the terms every task module uses: the requests an item makes (``Ask``,
``Asker``), how a reply is read into a prediction row (``ReplyReader``), and how the predictions are scored
into the long metrics table (``Scorer``, ``METRIC_SCHEMA``, ``metric_row``). Each task's asks, reader and
scorer are in its module (``tasks/ranking.py``...).

The runner, the judge and the report share the metrics schema from here. Unparseable replies count as wrong
for accuracy and F1 and are counted in ``unparsed``; correlations use the parsed items only (their ``n`` says
how many).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

VAD_MODES = ("direct", "probability")
"""How VAD is asked: a number in the reply, or the next-token probabilities of the level keywords."""


@dataclass(frozen=True)
class Ask:
    """One request an item makes: ``mode`` is ``generate`` (or a VAD mode); a ``probability`` ask reads the
    model's next-token probabilities over ``keywords`` instead of a reply; ``tags`` label the request;
    ``max_new_tokens`` None leaves the runner's default."""

    sub_task: str
    mode: str
    prompt: str
    keywords: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    max_new_tokens: int | None = None


Asker = Callable[[Mapping[str, Any], Sequence[str]], list[Ask]]
"""``f(item, vad modes) -> the item's requests``."""
ReplyReader = Callable[[Mapping[str, Any], str, str, "str | None", "Sequence[float] | None"], dict[str, Any]]
"""``f(item, sub_task, mode, reply, probabilities) -> prediction fields`` (``parsed`` and what the scorer needs)."""


METRIC_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(), "benchmark": pl.String(), "task": pl.String(), "breakdown": pl.String(),
    "group": pl.String(), "metric": pl.String(), "value": pl.Float64(), "n": pl.Int64(), "unparsed": pl.Int64(),
}
"""Long metrics table: e.g. (eemo_bench, perception, carrier_type, single/Yes-or-No, accuracy, 64.4, 500, 3)."""

Scorer = Callable[[pl.DataFrame, str], pl.DataFrame]
"""``f(predictions of one task, task name) -> metric rows (METRIC_SCHEMA)``."""


def metric_row(model: str, benchmark: str, task: str, breakdown: str, group: str, metric: str,
               value: float | None, n: int, unparsed: int) -> dict[str, Any]:
    """One row of the metrics table (a NaN value is stored as null)."""
    value = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    return {"model": model, "benchmark": benchmark, "task": task, "breakdown": breakdown, "group": group,
            "metric": metric, "value": value, "n": n, "unparsed": unparsed}


def metrics_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=METRIC_SCHEMA)
