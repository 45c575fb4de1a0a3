"""Run a ``VisionChatModel`` over benchmark items and score its predictions.

``run_items(items, model)`` builds one request per item (three per VAD item and mode), calls the model in
batches, parses every reply and returns a ``Run``: the per-item predictions (``PREDICTION_SCHEMA``) and notes
(e.g. a model without logits skips probability-mode VAD). The ``score_*`` functions turn predictions into one
long metrics table (``tasks.scoring.METRIC_SCHEMA``) that the report lays out like the paper's tables.

Unparseable replies count as wrong for accuracy and F1 and are counted in ``unparsed``; correlations use the
parsed items only (their ``n`` says how many). The registry's tasks are scored by their own ``score``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from eemo_pipeline.evaluation import prompts
from eemo_pipeline.evaluation.protocol import ChatRequest, VisionChatModel
from eemo_pipeline.tasks import metrics
from eemo_pipeline.tasks.parsing import answer_text, match_label, parse_choice, parse_ranking, parse_value
from eemo_pipeline.tasks.questions import VAD_DIMENSIONS
from eemo_pipeline.tasks.registry import TASKS
from eemo_pipeline.tasks.scoring import metric_row, metrics_frame

VAD_MODES = ("direct", "probability")
MAX_NEW_TOKENS = {"description": 1024}
DEFAULT_MAX_NEW_TOKENS = 512

PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "benchmark": pl.String(),
    "item_id": pl.String(),
    "task": pl.String(),
    "sub_task": pl.String(),        # valence/arousal/dominance for vad, else ""
    "mode": pl.String(),            # generate, direct or probability
    "carrier": pl.String(),
    "question_type": pl.String(),
    "dimension": pl.String(),
    "concern": pl.String(),
    "category": pl.String(),
    "labels": pl.List(pl.String()),
    "question": pl.String(),
    "prompt": pl.String(),
    "response": pl.String(),        # the raw reply (null in probability mode)
    "probabilities": pl.List(pl.Float64()),  # probability mode: (high, medium, low)
    "parsed": pl.String(),          # what was read from the reply (letter, label, ranking, number, text)
    "truth": pl.String(),           # letter, label, ranking or reference text
    "truth_value": pl.Float64(),    # vad ground truth on 0-1
    "predicted_value": pl.Float64(),  # vad prediction; the ranking score (0-100) for ranking
    "correct": pl.Boolean(),        # choice and dominant tasks; null when the truth is unknown
    "parse_failed": pl.Boolean(),
}
"""Per-item predictions: one row per item, three per VAD item and mode."""

@dataclass(frozen=True)
class Query:
    """One model call for one item (``sub_task`` and ``mode`` tell the VAD calls of an item apart)."""

    item: dict[str, Any]
    sub_task: str
    mode: str
    request: ChatRequest


@dataclass
class Run:
    predictions: pl.DataFrame
    notes: list[str] = field(default_factory=list)


def _request(item: dict[str, Any], text: str, **extra_tags: str) -> ChatRequest:
    tags = {"benchmark": item["benchmark"], "item_id": item["item_id"], "task": item["task"], **extra_tags}
    return ChatRequest(text, tuple(Path(p) for p in item["images"]), prompts.SYSTEM_PROMPT,
                       MAX_NEW_TOKENS.get(item["task"], DEFAULT_MAX_NEW_TOKENS), tags)


def build_queries(items: pl.DataFrame, vad_modes: Sequence[str] = VAD_MODES) -> list[Query]:
    """The requests for ``items`` (``ITEM_SCHEMA``): one per item, one per VAD dimension and mode."""
    unknown = set(vad_modes) - set(VAD_MODES)
    if unknown:
        raise ValueError(f"unknown VAD modes {sorted(unknown)}; use {VAD_MODES}")
    queries = []
    for item in items.iter_rows(named=True):
        task, images = item["task"], item["images"]

        def request(text: str, item: dict[str, Any] = item, **extra_tags: str) -> ChatRequest:
            return _request(item, text, **extra_tags)

        if task in ("perception", "multiple_choice"):
            text = prompts.choice_prompt(item["question"], item["option_keys"], item["option_texts"], len(images))
            queries.append(Query(item, "", "generate", request(text)))
        elif task == "ranking":
            queries.append(Query(item, "", "generate", request(prompts.ranking_prompt())))
        elif task == "dominant_emotion":
            queries.append(Query(item, "", "generate", request(prompts.dominant_prompt(item["labels"]))))
        elif task == "description":
            queries.append(Query(item, "", "generate", request(prompts.description_prompt(item["question"], len(images)))))
        elif task == "vad":
            for mode in vad_modes:
                for dim in VAD_DIMENSIONS:
                    text = prompts.vad_direct_prompt(dim) if mode == "direct" else prompts.vad_probability_prompt(dim)
                    queries.append(Query(item, dim, mode, request(text, sub_task=dim, mode=mode)))
        else:
            raise ValueError(f"{item['source_file']}, row {item['source_row']}: unknown task {task!r}")
    return queries


def _prediction(model_name: str, query: Query, response: str | None,
                probabilities: Sequence[float] | None = None) -> dict[str, Any]:
    item, task = query.item, query.item["task"]
    row: dict[str, Any] = {
        "model": model_name, "benchmark": item["benchmark"], "item_id": item["item_id"], "task": task,
        "sub_task": query.sub_task, "mode": query.mode, "carrier": item["carrier"],
        "question_type": item["question_type"], "dimension": item["dimension"], "concern": item["concern"],
        "category": item["category"], "labels": item["labels"], "question": item["question"],
        "prompt": query.request.prompt, "response": response,
        "probabilities": list(probabilities) if probabilities is not None else None, "truth": item["answer"],
    }
    if task in ("perception", "multiple_choice"):
        options = dict(zip(item["option_keys"], item["option_texts"]))
        parsed = parse_choice(response, options)
        row.update(parsed=parsed, correct=None if item["answer"] is None else parsed == item["answer"])
    elif task == "dominant_emotion":
        parsed = match_label(answer_text(response), item["labels"])
        row.update(parsed=parsed, correct=parsed == item["answer"])
    elif task == "ranking":
        ranking = parse_ranking(answer_text(response))
        parsed = ", ".join(ranking) or None
        row.update(parsed=parsed, predicted_value=metrics.ranking_score(item["ranking"], ranking))
    elif task == "description":
        parsed = answer_text(response) or None
        row.update(parsed=parsed)
    else:  # vad
        value = (metrics.probability_score(probabilities) if query.mode == "probability"
                 else parse_value(answer_text(response), query.sub_task))
        parsed = None if value is None else f"{value:.4f}"
        row.update(parsed=parsed, predicted_value=value, truth_value=item[query.sub_task],
                   truth=f"{item[query.sub_task]:.4f}")
    row["parse_failed"] = parsed is None
    return row


Progress = Callable[[int, int], None]


def run_items(items: pl.DataFrame, model: VisionChatModel, *, batch_size: int = 8,
              vad_modes: Sequence[str] = VAD_MODES, progress: Progress | None = None) -> Run:
    """Ask ``model`` every item of ``items`` in batches of ``batch_size`` and parse the replies.

    Probability-mode VAD calls ``model.keyword_probabilities`` with the dimension's level keywords (high,
    medium, low); a model that returns None for it has its probability rows left out and a note says so."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    queries = build_queries(items, vad_modes)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    generate = [q for q in queries if q.mode != "probability"]
    probability = {dim: [q for q in queries if q.mode == "probability" and q.sub_task == dim] for dim in VAD_DIMENSIONS}
    total, done = len(queries), 0
    for start in range(0, len(generate), batch_size):
        batch = generate[start:start + batch_size]
        replies = model.generate([q.request for q in batch])
        if len(replies) != len(batch):
            raise RuntimeError(f"{model.name} returned {len(replies)} replies for {len(batch)} requests")
        rows += [_prediction(model.name, q, reply) for q, reply in zip(batch, replies)]
        done += len(batch)
        if progress:
            progress(done, total)
    for dim, dim_queries in probability.items():
        for start in range(0, len(dim_queries), batch_size):
            batch = dim_queries[start:start + batch_size]
            found = model.keyword_probabilities([q.request for q in batch], metrics.VAD_KEYWORDS[dim])
            if found is None:
                notes.append(f"{model.name} exposes no token probabilities: probability-mode VAD skipped")
                return Run(pl.DataFrame(rows, schema=PREDICTION_SCHEMA), notes)
            rows += [_prediction(model.name, q, None, p) for q, p in zip(batch, found)]
            done += len(batch)
            if progress:
                progress(done, total)
    return Run(pl.DataFrame(rows, schema=PREDICTION_SCHEMA), notes)


# ------------------------------------------------------------------------------------------- scoring


def _accuracy_rows(frame: pl.DataFrame, model: str, benchmark: str, task: str, breakdown: str,
                   column: str | None) -> list[dict[str, Any]]:
    groups = [("all", frame)] if column is None else [
        (str(key[0]), part) for key, part in frame.group_by(column, maintain_order=True)
        if key[0] is not None]
    return [metric_row(model, benchmark, task, breakdown, group,
                    "accuracy", 100.0 * part["correct"].sum() / part.height, part.height,
                    int(part["parse_failed"].sum()))
            for group, part in sorted(groups, key=lambda g: g[0])]


def score_perception(predictions: pl.DataFrame) -> pl.DataFrame:
    """EEmo-Bench perception accuracy: per carrier and question type (``carrier_type``), per carrier as the
    mean of its question types (``carrier``, the paper's single/pair Overall), per perceptual ``dimension`` and
    content ``category``, and ``overall`` weighted by question count."""
    rows: list[dict[str, Any]] = []
    for (model,), frame in predictions.filter(pl.col("task") == "perception").group_by("model", maintain_order=True):
        frame = frame.with_columns(carrier_type=pl.col("carrier") + "/" + pl.col("question_type"))
        by_type = _accuracy_rows(frame, model, "eemo_bench", "perception", "carrier_type", "carrier_type")
        rows += by_type
        for carrier in ("single", "pair"):
            parts = [r for r in by_type if r["group"].startswith(f"{carrier}/")]
            if parts:
                mean = sum(r["value"] for r in parts) / len(parts)
                rows.append(metric_row(model, "eemo_bench", "perception", "carrier", carrier, "accuracy", mean,
                                    sum(r["n"] for r in parts), sum(r["unparsed"] for r in parts)))
        rows += _accuracy_rows(frame, model, "eemo_bench", "perception", "dimension", "dimension")
        rows += _accuracy_rows(frame, model, "eemo_bench", "perception", "category", "category")
        rows += _accuracy_rows(frame, model, "eemo_bench", "perception", "overall", None)
    return metrics_frame(rows)


def score_multiple_choice(predictions: pl.DataFrame) -> pl.DataFrame:
    """UNIAA sentiment and AesBench AesE accuracy: ``overall`` and per question type and dimension. Items
    without an answer (AesE without an answer key) are left out; when no item has one, a row with group
    ``no answer key`` and a null value says so."""
    rows: list[dict[str, Any]] = []
    frame_all = predictions.filter(pl.col("task") == "multiple_choice")
    for (model, benchmark), frame in frame_all.group_by("model", "benchmark", maintain_order=True):
        answered = frame.filter(pl.col("truth").is_not_null())
        if answered.is_empty():
            rows.append(metric_row(model, benchmark, "multiple_choice", "overall", "no answer key", "accuracy", None,
                                frame.height, int(frame["parse_failed"].sum())))
            continue
        rows += _accuracy_rows(answered, model, benchmark, "multiple_choice", "overall", None)
        rows += _accuracy_rows(answered, model, benchmark, "multiple_choice", "question_type", "question_type")
        rows += _accuracy_rows(answered, model, benchmark, "multiple_choice", "dimension", "dimension")
    return metrics_frame(rows)


def score_all(predictions: pl.DataFrame, judged: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every metric of ``predictions`` (and of the judge's ``judged`` descriptions, when given) in one table."""
    from eemo_pipeline.evaluation.judge import score_description

    parts = [score_perception(predictions),
             *(task.score(predictions.filter(pl.col("task") == name), name) for name, task in TASKS.items()),
             score_multiple_choice(predictions)]
    if judged is not None:
        parts.append(score_description(judged))
    return pl.concat(parts)
