"""What the registry's tasks do on a benchmark: the requests an item makes (``Ask``), how a reply is read into
a prediction row, and how the predictions are scored into the long metrics table (``METRIC_SCHEMA``).

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

from eemo_pipeline.tasks import metrics
from eemo_pipeline.tasks.benchmark_prompts import (
    dominant_prompt,
    ranking_prompt,
    vad_direct_prompt,
    vad_probability_prompt,
)
from eemo_pipeline.tasks.parsing import answer_text, match_label, parse_ranking, parse_value, ranked
from eemo_pipeline.tasks.questions import VAD_DIMENSIONS

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


def ranking_asks(item: Mapping[str, Any], modes: Sequence[str]) -> list[Ask]:
    return [Ask("", "generate", ranking_prompt())]


def read_ranking(item: Mapping[str, Any], sub_task: str, mode: str, reply: str | None,
                 probabilities: Sequence[float] | None) -> dict[str, Any]:
    """The ranking read from the reply (its first three distinct emotions: ``parsing.ranked``) and its ranking
    score (0-100) against the item's ranking."""
    ranking = ranked(parse_ranking(answer_text(reply)))
    return {"parsed": ", ".join(ranking) or None, "predicted_value": metrics.ranking_score(item["ranking"], ranking)}


def vad_asks(item: Mapping[str, Any], modes: Sequence[str]) -> list[Ask]:
    """One request per mode and dimension."""
    return [Ask(dim, mode, vad_direct_prompt(dim) if mode == "direct" else vad_probability_prompt(dim),
                metrics.VAD_KEYWORDS[dim] if mode == "probability" else (), {"sub_task": dim, "mode": mode})
            for mode in modes for dim in VAD_DIMENSIONS]


def read_vad(item: Mapping[str, Any], sub_task: str, mode: str, reply: str | None,
             probabilities: Sequence[float] | None) -> dict[str, Any]:
    """The value: the expected level in probability mode, else the number after the dimension's identifier."""
    value = (metrics.probability_score(probabilities) if mode == "probability"
             else parse_value(answer_text(reply), sub_task))
    return {"parsed": None if value is None else f"{value:.4f}", "predicted_value": value,
            "truth_value": item[sub_task], "truth": f"{item[sub_task]:.4f}"}


def dominant_asks(item: Mapping[str, Any], modes: Sequence[str]) -> list[Ask]:
    return [Ask("", "generate", dominant_prompt(item["labels"]))]


def read_dominant(item: Mapping[str, Any], sub_task: str, mode: str, reply: str | None,
                  probabilities: Sequence[float] | None) -> dict[str, Any]:
    """The label of the item's label set that the reply names, and whether it is the answer."""
    parsed = match_label(answer_text(reply), item["labels"])
    return {"parsed": parsed, "correct": parsed == item["answer"]}


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


def score_ranking(predictions: pl.DataFrame, task: str) -> pl.DataFrame:
    """EEmo-Bench ranking: the mean per-image ranking score (0-100); unparsed replies score 0."""
    rows = []
    for (model,), frame in predictions.group_by("model", maintain_order=True):
        rows.append(metric_row(model, "eemo_bench", task, "overall", "all", "ranking_score",
                               frame["predicted_value"].mean(), frame.height, int(frame["parse_failed"].sum())))
    return metrics_frame(rows)


def score_vad(predictions: pl.DataFrame, task: str, dimensions: Sequence[str]) -> pl.DataFrame:
    """EEmo-Bench assessment: SRCC and PLCC per mode and dimension over the parsed items, and their mean over
    the dimensions as ``overall``."""
    rows = []
    for (model, mode), frame in predictions.group_by("model", "mode", maintain_order=True):
        per_metric: dict[str, list[float]] = {"srcc": [], "plcc": []}
        for dim in dimensions:
            part = frame.filter(pl.col("sub_task") == dim)
            if part.is_empty():
                continue
            truth, predicted = part["truth_value"].to_list(), part["predicted_value"].to_list()
            unparsed = int(part["parse_failed"].sum())
            for name, function in (("srcc", metrics.srcc), ("plcc", metrics.plcc)):
                value = function(truth, predicted)
                per_metric[name].append(value)
                rows.append(metric_row(model, "eemo_bench", task, mode, dim, name, value, part.height - unparsed,
                                       unparsed))
        for name, values in per_metric.items():
            if len(values) == len(dimensions):
                mean = sum(values) / len(values)
                rows.append(metric_row(model, "eemo_bench", task, mode, "overall", name, mean,
                                       frame.height // len(dimensions), int(frame["parse_failed"].sum())))
    return metrics_frame(rows)


def score_dominant(predictions: pl.DataFrame, task: str) -> pl.DataFrame:
    """Artphoto and ArtEmis: accuracy and macro F1 (over the data set's label set) of the dominant emotion."""
    rows = []
    for (model, benchmark), frame in predictions.group_by("model", "benchmark", maintain_order=True):
        truth, predicted = frame["truth"].to_list(), frame["parsed"].to_list()
        labels = list(dict.fromkeys(label for labels in frame["labels"].to_list() for label in labels))
        unparsed = int(frame["parse_failed"].sum())
        rows.append(metric_row(model, benchmark, task, "overall", "all", "accuracy",
                               metrics.accuracy(truth, predicted), frame.height, unparsed))
        rows.append(metric_row(model, benchmark, task, "overall", "all", "macro_f1",
                               metrics.macro_f1(truth, predicted, labels), frame.height, unparsed))
    return metrics_frame(rows)
