"""The long metrics table (``METRIC_SCHEMA``) and the benchmark scorers of the registry's tasks.

A scorer takes one task's prediction rows (the runner's ``PREDICTION_SCHEMA``) and returns its metric rows;
the runner, the judge and the report share the schema from here. Unparseable replies count as wrong for
accuracy and F1 and are counted in ``unparsed``; correlations use the parsed items only (their ``n`` says how
many).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from eemo_pipeline.tasks import metrics

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
