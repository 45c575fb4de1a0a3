"""The description judge (paper appendix E.3): an LLM scores completeness, precision and relevance.

Each of the three metrics is asked separately, ``JUDGE_ROUNDS`` times (five in the paper), through the
generation client's ``judge`` role (``EEMO_JUDGE_BASE_URL``, ``EEMO_JUDGE_MODEL``, ``EEMO_JUDGE_API_KEY``) and
the durable response cache, so a rerun never repeats a paid call. Rounds differ only by their cache key: the
endpoint samples at the configured temperature, so each round is an independent draw. A round whose reply has
no 0-2 score is resampled once and then left out (``quarantine``); a metric's score is the mean of its valid
rounds. Conciseness is not asked of the judge (the paper found it insensitive) but computed from the
word-count ratio (``metrics.conciseness``); the item score is ``metrics.description_score``. An empty or
unparseable description scores 0 on every part and costs no judge call. A question without a reference answer
(the authors' released EEmo-Bench files have none) cannot be judged: it costs no call, has no score and is
counted apart (``reference`` false; ``score_description`` reports ``no reference`` when no item has one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from eemo_pipeline.generation.batch import run_batch_sync
from eemo_pipeline.generation.cache import ResponseCache
from eemo_pipeline.generation.work import WorkItem
from eemo_pipeline.settings import EndpointSettings
from eemo_pipeline.tasks import metrics
from eemo_pipeline.tasks.benchmark import METRIC_SCHEMA

JUDGE_ROLE = "judge"
JUDGE_METRICS = ("completeness", "precision", "relevance")
JUDGE_ROUNDS = 5
JUDGE_TEMPLATE_VERSION = "judge-v1"
JUDGE_SYSTEM = (
    "You are an expert evaluator of open-ended answers about the emotions that images evoke in viewers. You "
    "compare a model's answer with a human-written reference answer and score one metric as 0, 1 or 2.\n"
    "Task: judge"
)
CRITERIA = {
    "completeness": (
        "Completeness: does the answer capture the emotional reasoning, the emotional dimensions (valence, arousal, "
        "dominance where they apply) and the key explanatory points of the reference?\n"
        "2 = all or almost all main emotional insights and reasoning steps of the reference, coherently and in "
        "enough detail; 1 = only part of them, or similar ideas missing some nuance or steps; 0 = most of the "
        "key content missing, or off-topic."),
    "precision": (
        "Precision: is the answer's emotional reasoning correct and consistent with the reference?\n"
        "2 = consistent polarity, intensity and comparisons, a similar line of reasoning, nothing contradictory or "
        "invented; 1 = mostly consistent with minor deviations, vague or oversimplified steps; 0 = clearly wrong or "
        "contradictory reasoning (e.g. reversed valence, a wrong comparison) or invented interpretations."),
    "relevance": (
        "Relevance: is the answer about the emotions the image evokes in viewers and the question's emotional "
        "focus?\n2 = firmly about the evoked emotions (the seven basic emotions or valence, arousal, dominance) "
        "and the question's focus; 1 = discusses emotions but drifts between the subjects' expressions and the "
        "viewer's response; 0 = mainly describes visual content or expressions without the viewer's emotions, or "
        "misreads the question."),
}
_LABELS = {"completeness": "Completeness", "precision": "Precision", "relevance": "Relevance"}
_SCORE = {
    metric: re.compile(rf"{pattern}\s*[:=]\s*\**\s*\[?\s*([0-2])(?![\d.])", re.IGNORECASE)
    for metric, pattern in {"completeness": "completeness", "precision": "precis(?:ion|eness)",
                            "relevance": "relevance"}.items()
}

JUDGED_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(), "benchmark": pl.String(), "item_id": pl.String(), "carrier": pl.String(),
    "dimension": pl.String(), "completeness": pl.Float64(), "precision": pl.Float64(), "relevance": pl.Float64(),
    "valid_rounds": pl.Int64(), "conciseness": pl.Float64(), "score": pl.Float64(), "parse_failed": pl.Boolean(),
    "reference": pl.Boolean(),
}
"""One row per judged description; the three judge scores are means over valid rounds (0-2), ``score`` 0-100."""


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def judge_prompt(metric: str, question: str | None, reference: str, response: str) -> str:
    """The user turn asking for one metric: the criteria, then a ``Facts:`` block with the texts on one line
    each, then the reply format."""
    return (f"{CRITERIA[metric]}\n\nFacts:\nMetric: {metric}\nQuestion: {_one_line(question)}\n"
            f"Reference: {_one_line(reference)}\nResponse: {_one_line(response)}\n\n"
            f"Reply with one line only, exactly: {_LABELS[metric]}: <0, 1 or 2>")


def parse_judge_score(text: str | None, metric: str) -> int | None:
    """The last ``<Metric>: n`` (n in 0-2; "Preciseness" accepted for precision) of a judge reply, or None."""
    found = _SCORE[metric].findall(text or "")
    return int(found[-1]) if found else None


def _validate(text: str, item: WorkItem) -> str | None:
    metric = item.context["metric"]
    return None if parse_judge_score(text, metric) is not None else f"no {metric} score of 0, 1 or 2 in the reply"


def judge_work_items(descriptions: pl.DataFrame, rounds: int = JUDGE_ROUNDS) -> list[WorkItem]:
    """The judge requests for the parsed descriptions of ``descriptions`` (prediction rows of task
    ``description``) that have a reference answer: one per item, metric and round."""
    work = []
    for row in descriptions.filter(~pl.col("parse_failed") & pl.col("truth").is_not_null()).iter_rows(named=True):
        for metric in JUDGE_METRICS:
            prompt = judge_prompt(metric, row["question"], row["truth"], row["parsed"])
            for round_number in range(rounds):
                key = f"{row['model']}/{row['benchmark']}/{row['item_id']}/{metric}/round{round_number}"
                work.append(WorkItem(
                    key=key,
                    messages=[{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": prompt}],
                    template="judge", template_version=JUDGE_TEMPLATE_VERSION,
                    cache_payload={"prompt": prompt, "round": round_number},
                    context={"metric": metric, "model": row["model"], "benchmark": row["benchmark"],
                             "item_id": row["item_id"], "round": round_number},
                ))
    return work


@dataclass
class JudgeResult:
    judged: pl.DataFrame
    stats: dict[str, int] = field(default_factory=dict)
    quarantine: list[dict[str, Any]] = field(default_factory=list)


def judge_descriptions(predictions: pl.DataFrame, config: EndpointSettings, cache: ResponseCache,
                       rounds: int = JUDGE_ROUNDS) -> JudgeResult:
    """Judge every description prediction of ``predictions`` through ``config`` (role ``judge``)."""
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    descriptions = predictions.filter(pl.col("task") == "description")
    work = judge_work_items(descriptions, rounds)
    batch = run_batch_sync(work, config, cache, _validate)
    scores: dict[tuple[str, str, str, str], list[int]] = {}
    for item in work:
        answer = batch.answers.get(item.key)
        if answer is not None:
            context = item.context
            scores.setdefault((context["model"], context["benchmark"], context["item_id"], context["metric"]),
                              []).append(parse_judge_score(answer.text, context["metric"]))
    rows = []
    for row in descriptions.iter_rows(named=True):
        base = {"model": row["model"], "benchmark": row["benchmark"], "item_id": row["item_id"],
                "carrier": row["carrier"], "dimension": row["dimension"], "parse_failed": row["parse_failed"],
                "reference": row["truth"] is not None}
        if not base["reference"]:
            rows.append({**base, "valid_rounds": 0})
            continue
        if row["parse_failed"]:
            rows.append({**base, **dict.fromkeys(JUDGE_METRICS, 0.0), "valid_rounds": 0, "conciseness": 0.0,
                         "score": 0.0})
            continue
        parts = {metric: scores.get((row["model"], row["benchmark"], row["item_id"], metric), [])
                 for metric in JUDGE_METRICS}
        means = {metric: (sum(values) / len(values) if values else math.nan) for metric, values in parts.items()}
        concise = metrics.conciseness(row["parsed"], row["truth"] or "")
        score = metrics.description_score(means["completeness"], means["precision"], means["relevance"], concise)
        rows.append({**base, **{m: None if math.isnan(v) else v for m, v in means.items()},
                     "valid_rounds": min(len(values) for values in parts.values()),
                     "conciseness": None if math.isnan(concise) else concise,
                     "score": None if math.isnan(score) else score})
    return JudgeResult(pl.DataFrame(rows, schema=JUDGED_SCHEMA), batch.stats, batch.quarantine)


def score_description(judged: pl.DataFrame, groups: Sequence[str] = ("carrier", "dimension")) -> pl.DataFrame:
    """Description scores in the long metrics table: the mean item score per carrier (single, pair) and per
    describing dimension, and ``overall`` over all items (count-weighted); items the judge could not score
    (no valid round) are left out and counted in ``unparsed`` with the unparseable descriptions. Items without
    a reference answer are left out; when no item of a model has one, a row with group ``no reference`` and a
    null value says so."""
    rows = []
    for (model,), every in judged.group_by("model", maintain_order=True):
        frame = every.filter(pl.col("reference"))
        if frame.is_empty():
            rows.append({"model": model, "benchmark": "eemo_bench", "task": "description", "breakdown": "overall",
                         "group": "no reference", "metric": "judge_score", "value": None, "n": every.height,
                         "unparsed": int(every["parse_failed"].sum())})
            continue
        splits = [("overall", "all", frame)] + [
            (column, str(key[0]), part) for column in groups
            for key, part in sorted(frame.group_by(column), key=lambda kv: str(kv[0][0])) if key[0] is not None]
        for breakdown, group, part in splits:
            scored = part.filter(pl.col("score").is_not_null())
            unparsed = int(part["parse_failed"].sum()) + (part.height - scored.height)
            value = scored["score"].mean() if scored.height else None
            rows.append({"model": model, "benchmark": "eemo_bench", "task": "description", "breakdown": breakdown,
                         "group": group, "metric": "judge_score", "value": value, "n": part.height,
                         "unparsed": unparsed})
    return pl.DataFrame(rows, schema=METRIC_SCHEMA)
