"""Run a ``VisionChatModel`` over benchmark items and score its predictions.

``run_items(items, model)`` builds the requests of every item (three per VAD item and mode), calls the model
in batches, parses every reply and returns a ``Run``: the per-item predictions (``PREDICTION_SCHEMA``) and
notes (e.g. a model without logits skips probability-mode VAD). ``score_all`` turns predictions into one long
metrics table (``tasks.benchmark.METRIC_SCHEMA``) that the report lays out like the paper's tables.

What a task asks, how its replies are read and how it is scored comes from its registry entry
(``eemo_pipeline.tasks.registry``); the benchmark-only tasks (multiple choice, description), which have no
reward and no Assess rows, are described here in the same terms (``BENCHMARK_ONLY_TASKS``). Unparseable
replies count as wrong for accuracy and F1 and are counted in ``unparsed``; correlations use the parsed items
only (their ``n`` says how many).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from eemo_pipeline.evaluation import prompts
from eemo_pipeline.evaluation.chat_model import ChatRequest, VisionChatModel
from eemo_pipeline.tasks.benchmark import VAD_MODES, Ask, Asker, ReplyReader, metric_row, metrics_frame
from eemo_pipeline.tasks.parsing import answer_text, parse_choice
from eemo_pipeline.tasks.registry import TASKS, Task

DEFAULT_MAX_NEW_TOKENS = 512
DESCRIPTION_MAX_NEW_TOKENS = 1024

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
    "source_file": pl.String(),     # the benchmark file the item came from (the report's test-file table)
}
"""Per-item predictions: one row per item, three per VAD item and mode."""

@dataclass(frozen=True)
class Query:
    """One model call for one item (``sub_task`` and ``mode`` tell the VAD calls of an item apart; a
    probability-mode call reads the next-token probabilities of ``keywords``)."""

    item: dict[str, Any]
    sub_task: str
    mode: str
    request: ChatRequest
    keywords: tuple[str, ...] = ()


@dataclass
class Run:
    predictions: pl.DataFrame
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BenchmarkOnlyTask:
    """A benchmark task outside the registry: what an item asks and how a reply is read, as in ``Task``."""

    benchmark_asks: Asker
    read_reply: ReplyReader


def _choice_asks(item: Mapping[str, Any], modes: Sequence[str]) -> list[Ask]:
    return [Ask("", "generate", prompts.choice_prompt(item["question"], item["option_keys"], item["option_texts"],
                                                      len(item["images"])))]


def _read_choice(item: Mapping[str, Any], sub_task: str, mode: str, reply: str | None,
                 probabilities: Sequence[float] | None) -> dict[str, Any]:
    parsed = parse_choice(reply, dict(zip(item["option_keys"], item["option_texts"])))
    return {"parsed": parsed, "correct": None if item["answer"] is None else parsed == item["answer"]}


def _description_asks(item: Mapping[str, Any], modes: Sequence[str]) -> list[Ask]:
    return [Ask("", "generate", prompts.description_prompt(item["question"], len(item["images"])),
                max_new_tokens=DESCRIPTION_MAX_NEW_TOKENS)]


def _read_description(item: Mapping[str, Any], sub_task: str, mode: str, reply: str | None,
                      probabilities: Sequence[float] | None) -> dict[str, Any]:
    return {"parsed": answer_text(reply) or None}


_CHOICE = BenchmarkOnlyTask(_choice_asks, _read_choice)
BENCHMARK_ONLY_TASKS: dict[str, BenchmarkOnlyTask] = {
    "perception": _CHOICE, "multiple_choice": _CHOICE,
    "description": BenchmarkOnlyTask(_description_asks, _read_description),
}
"""EEmo-Bench perception and description, UNIAA and AesBench multiple choice (scored below and by the judge)."""


def benchmark_task(item: Mapping[str, Any]) -> Task | BenchmarkOnlyTask:
    """The registry entry or benchmark-only task of ``item``; ValueError naming the item for an unknown task."""
    found = TASKS.get(item["task"]) or BENCHMARK_ONLY_TASKS.get(item["task"])
    if found is None:
        raise ValueError(f"{item['source_file']}, row {item['source_row']}: unknown task {item['task']!r}")
    return found


def build_queries(items: pl.DataFrame, vad_modes: Sequence[str] = VAD_MODES) -> list[Query]:
    """The requests for ``items`` (``ITEM_SCHEMA``): one per item, one per VAD dimension and mode."""
    unknown = set(vad_modes) - set(VAD_MODES)
    if unknown:
        raise ValueError(f"unknown VAD modes {sorted(unknown)}; use {VAD_MODES}")
    queries = []
    for item in items.iter_rows(named=True):
        tags = {"benchmark": item["benchmark"], "item_id": item["item_id"], "task": item["task"]}
        for ask in benchmark_task(item).benchmark_asks(item, vad_modes):
            request = ChatRequest(ask.prompt, tuple(Path(p) for p in item["images"]), prompts.SYSTEM_PROMPT,
                                  ask.max_new_tokens or DEFAULT_MAX_NEW_TOKENS, {**tags, **ask.tags})
            queries.append(Query(item, ask.sub_task, ask.mode, request, ask.keywords))
    return queries


def _prediction(model_name: str, query: Query, response: str | None,
                probabilities: Sequence[float] | None = None) -> dict[str, Any]:
    item = query.item
    row: dict[str, Any] = {
        "model": model_name, "benchmark": item["benchmark"], "item_id": item["item_id"], "task": item["task"],
        "sub_task": query.sub_task, "mode": query.mode, "carrier": item["carrier"],
        "question_type": item["question_type"], "dimension": item["dimension"], "concern": item["concern"],
        "category": item["category"], "labels": item["labels"], "question": item["question"],
        "prompt": query.request.prompt, "response": response,
        "probabilities": list(probabilities) if probabilities is not None else None, "truth": item["answer"],
        "source_file": item["source_file"],
    }
    row.update(benchmark_task(item).read_reply(item, query.sub_task, query.mode, response, probabilities))
    row["parse_failed"] = row.get("parsed") is None
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
    probability: dict[tuple[str, ...], list[Query]] = {}  # by keywords, in first-asked order
    for query in queries:
        if query.mode == "probability":
            probability.setdefault(query.keywords, []).append(query)
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
    for keywords, keyword_queries in probability.items():
        for start in range(0, len(keyword_queries), batch_size):
            batch = keyword_queries[start:start + batch_size]
            found = model.keyword_probabilities([q.request for q in batch], keywords)
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
