"""The dominant-emotion task: the one emotion of a data set's own label set that an image evokes most.

- EEmoDB-Assess (paper section 3.4; sub_task = the source's native taxonomy, e.g. ``mikels8``, so the reward picks
  the matching similarity matrix): the native dominant label from ``raw_annotations``, as spelled by the source
  (see ``dec_rules``); images whose top weight is tied (within ``tie_tolerance``) are skipped. Candidates
  (``options``, the only non-null options of the table) are the source's native vocabulary in
  ``data_contracts/sources.yaml`` order, so taxonomies never mix, less ``dec_excluded_answers``: Affection's
  ``something else`` names no emotion and has no target (the similarity reward cannot score it), so it is
  neither an answer nor a candidate and Affection offers the authors' 8 emotions, as their ArtEmis prompt does;
  an image whose majority is ``something else`` is skipped, not demoted to its runner-up. Balancing per source and
  class ("anchor minority classes and constrain majority class upper bounds"): a class keeps
  ``min(count, max(dec_anchor, dec_cap))`` images, i.e. a minority class (count at or below ``dec_anchor``) is
  kept whole, a majority class is cut to ``dec_cap``, chosen in seeded-hash order. Rows are never duplicated
  (``row_id`` is the key), so the anchor is a guaranteed floor, not an oversampling target.
- Reward (paper section 4.2) ``emotion_similarity_reward``: 1 for the exact label, else the label set's
  similarity reward (``tasks/similarity.py``). Answers and solutions are read as the benchmarks read them
  (``parsing.match_label`` over the row's label set: case-insensitive, a target's forms and synonyms too, so
  "happy" is Ekman's joy and "sad" ArtEmis' sadness); the format reward needs one label of that set.
- Benchmarks: Artphoto and ArtEmis (``labelled_item``), scored by accuracy and macro F1; EEmo-Bench asks no
  dominant emotion.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from eemo_pipeline.contracts import source_declarations, source_facts
from eemo_pipeline.frames import fixed_order_sum, with_draw_key
from eemo_pipeline.labels.taxonomy import TARGETS, taxonomy_document, taxonomy_of
from eemo_pipeline.tasks import metrics
from eemo_pipeline.tasks.assess_rows import AssessConfig, AssessInputs, assess_frame
from eemo_pipeline.tasks.benchmark import Ask, metric_row, metrics_frame
from eemo_pipeline.tasks.parsing import answer_text, match_label
from eemo_pipeline.tasks.probes import HackingProbe, Informative, balanced
from eemo_pipeline.tasks.questions import THINK_INSTRUCTION, Template
from eemo_pipeline.tasks.similarity import emotion_labels, installed_labels, similarity_matrices
from eemo_pipeline.tasks.task import ImageQuestion, ReportColumn, Task

NAME = "dominant_emotion"

# ------------------------------------------------------------------------------------------ questions

TEMPLATE = Template(
    "assess_dominant_emotion", 1,
    "Which single emotion does this image evoke most in viewers? Candidates: {candidates}. " + THINK_INSTRUCTION
    + ", exactly as <think>...</think><answer>Dominant emotion: x</answer>, writing the emotion exactly as it "
    "is spelled among the candidates.",
)


def dominant_question(candidates: tuple[str, ...]) -> str:
    return TEMPLATE.text.format(candidates=", ".join(candidates))


def dominant_prompt(labels: Sequence[str]) -> str:
    """Dominant emotion with the data set's own label set."""
    return (f"Which one emotion does the image evoke most strongly in viewers? Choose from: {', '.join(labels)}. "
            "Answer as <answer>Dominant emotion: label</answer>.")


# ------------------------------------------------------------------------------------ answers and reward

def sub_task_labels(sub_task: object) -> tuple[str, ...]:
    """The emotion labels of the taxonomy ``sub_task`` names (``similarity.emotion_labels``), or of the matrices
    installed under that name (``similarity.set_similarity_matrices``); () when it names neither."""
    if not isinstance(sub_task, str):
        return ()
    if sub_task not in taxonomy_document()["taxonomies"]:
        return installed_labels(sub_task) or ()
    return emotion_labels(sub_task)


def parse_dominant_answer(answer: str | None, sub_task: str) -> str | None:
    """The label of the row's label set (the taxonomy ``sub_task``) that a dominant-emotion answer names, as
    spelled in the set (``parsing.match_label``: "happy" finds joy); None when it names none of them, or several
    ("sadness, fear"), or the sub_task names no taxonomy."""
    return match_label(answer, sub_task_labels(sub_task))


def names_one_label(label: str | None) -> bool:
    """A dominant-emotion answer is well formed when it names one label of the row's label set."""
    return label is not None


def emotion_similarity_reward(truth: str | None, predicted: str | None, sub_task: str) -> float:
    """1.0 for the true label, 0.0 without an answer of the label set of ``sub_task`` (the taxonomy name), else
    ``(SIM_A * S_vad + (1 - SIM_A) * S_sem ** SIM_K) ** SIM_P``. Range [0, 1]. ``ValueError`` when the truth is
    unusable: ``sub_task`` names no taxonomy, or the solution is no label of it (ArtEmis' "something else"
    names no emotion)."""
    labels = sub_task_labels(sub_task)
    if not labels:
        raise ValueError("the sub_task names no taxonomy with emotion labels (data_contracts/label_taxonomy.yaml)")
    if truth is None:
        raise ValueError(f"the solution is no label of {sub_task} ({', '.join(labels)})")
    return similarity_matrices(sub_task).reward(truth, predicted)


def read_image_dominant(reply: str | None) -> str | None:
    """``eemo assess``: the target the reply names (``match_label`` over the seven targets), else None."""
    return match_label(answer_text(reply), TARGETS)


def image_question() -> str:
    """``eemo assess``: the Assess question with the seven targets as candidates."""
    return dominant_question(TARGETS)


# ------------------------------------------------------------------------------------------- benchmark

def no_eemo_bench_item(truth: Mapping[str, Any]) -> None:
    """EEmo-Bench asks no dominant emotion (its images have a ranking); Artphoto and ArtEmis do."""
    return None


def labelled_item(answer: str, labels: Sequence[str]) -> dict[str, Any]:
    """The task's fields of a cross-domain item (Artphoto, ArtEmis): its label and the data set's label set."""
    return {"task": NAME, "answer": answer, "labels": list(labels)}


def dominant_asks(item: Mapping[str, Any], modes: Sequence[str]) -> list[Ask]:
    return [Ask("", "generate", dominant_prompt(item["labels"]))]


def read_dominant(item: Mapping[str, Any], sub_task: str, mode: str, reply: str | None,
                  probabilities: Sequence[float] | None) -> dict[str, Any]:
    """The label of the item's label set that the reply names, and whether it is the answer."""
    parsed = match_label(answer_text(reply), item["labels"])
    return {"parsed": parsed, "correct": parsed == item["answer"]}


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


# ------------------------------------------------------------------------------------------ Assess rows

def dec_rules() -> dict[str, tuple[str, str]]:
    """How the native dominant label is read from raw_annotations, per source: (measure, rule), as declared
    under ``assess.dominant_emotion`` in ``data_contracts/sources.yaml``.

    sum:        weight = summed value (Abstract-8 votes, Emotion6 probabilities);
    count:      weight = number of choices (Affection majority, FindingEmo's single choice);
    selections: weight = number of (subject, annotator) selections naming the label (EMOTIC: the label most
                annotators chose, each annotator's selection counting a label once).
    The top weight must beat the runner-up by more than the tie tolerance, else the image is skipped.
    """
    return {name: facts.dominant_emotion for name, facts in source_declarations().items() if facts.dominant_emotion}


def native_vocabulary(source: str) -> tuple[str, ...]:
    """The source's native labels in ``data_contracts/sources.yaml`` order (the fixed candidate order)."""
    return source_facts(source).vocabulary


def dominant_candidates(source: str, config: AssessConfig) -> tuple[str, ...]:
    """The dominant-emotion candidates of ``source``: its native vocabulary less ``dec_excluded_answers``."""
    return tuple(label for label in native_vocabulary(source) if label not in config.dec_excluded_answers)


def dominant_labels(raw_annotations: pl.DataFrame, config: AssessConfig) -> pl.DataFrame:
    """``source, image_id, label``: the untied native dominant label of every image (before balancing)."""
    weights = []
    for source, (measure, rule) in dec_rules().items():
        rows = raw_annotations.filter(
            (pl.col("source") == source) & (pl.col("measure") == measure)
            & pl.col("label").is_in(list(native_vocabulary(source)))
        )
        if rule == "selections":
            rows = rows.unique(["image_id", "subject", "annotator", "label"])
        weight = fixed_order_sum(pl.col("value")) if rule == "sum" else pl.len().cast(pl.Float64)
        weights.append(rows.group_by("source", "image_id", "label").agg(weight.alias("weight")))
    frame = pl.concat(weights, how="vertical") if weights else pl.DataFrame()
    if frame.is_empty():
        return pl.DataFrame(schema={"source": pl.String, "image_id": pl.String, "label": pl.String})
    top = pl.col("weight").max().over("source", "image_id")
    return (
        frame.filter(pl.col("weight") >= top - config.tie_tolerance)
        .group_by("source", "image_id")
        .agg(pl.col("label").first(), pl.len().alias("_at_top"), pl.col("weight").max().alias("_top"))
        .filter((pl.col("_at_top") == 1) & (pl.col("_top") > 0))
        .select("source", "image_id", "label")
        .sort("source", "image_id")
    )


def dominant_rows(inputs: AssessInputs) -> pl.DataFrame:
    """The dominant-emotion rows (module docstring)."""
    config = inputs.config
    labels = dominant_labels(inputs.raw_annotations, config).filter(
        ~pl.col("label").is_in(list(config.dec_excluded_answers)))
    labels = labels.join(inputs.images, on=["source", "image_id"], how="inner")
    quota = pl.min_horizontal(pl.len(), pl.lit(max(config.dec_anchor, config.dec_cap)))
    chosen = (
        with_draw_key(labels, inputs.seed, NAME)
        .sort("source", "label", "_draw", "image_id")
        .filter(pl.int_range(pl.len()).over("source", "label") < quota.over("source", "label"))
    )
    sources = sorted(dec_rules())
    per_source = pl.DataFrame(
        {
            "source": sources,
            "sub_task": [taxonomy_of(s) or s for s in sources],
            "options": [list(dominant_candidates(s, config)) for s in sources],
            "question": [dominant_question(dominant_candidates(s, config)) for s in sources],
        },
        schema={"source": pl.String, "sub_task": pl.String, "options": pl.List(pl.String), "question": pl.String},
    )
    return assess_frame(chosen.join(per_source, on="source", how="inner").with_columns(
        pl.lit(NAME).alias("task"),
        pl.lit(TEMPLATE.template_id).alias("template_id"),
        pl.col("label").alias("answer"),
    ))


# ------------------------------------------------------------------------------------------ hacking probe

DOMINANT_HIT_RATE = 0.25
"""How often the weak informative dominant-emotion answer names the truth (else a label at random)."""


def _dominant(label: str) -> str:
    return f"Dominant emotion: {label}"


def _taxonomies() -> tuple[str, ...]:
    return tuple(name for name in taxonomy_document()["taxonomies"] if len(emotion_labels(name)) > 1)


def _dominant_truths(sub_task: str, rng: random.Random, n: int) -> list[str]:
    """The taxonomy's labels, each equally often (``probes.balanced``)."""
    return balanced(emotion_labels(sub_task), rng, n)


def _dominant_constants(sub_task: str, truths: Sequence[str]) -> list[str]:
    """Each label; every label listed at once; no label."""
    labels = emotion_labels(sub_task)
    return [_dominant(label) for label in labels] + [_dominant(", ".join(labels)), _dominant("")]


def _sometimes_right(truth: str, sub_task: str, rng: random.Random) -> str:
    return _dominant(truth if rng.random() < DOMINANT_HIT_RATE else rng.choice(emotion_labels(sub_task)))


def _near_miss(truth: str, sub_task: str, rng: random.Random) -> str:
    """The label closest to the truth by the reward's own similarity, never the truth itself."""
    matrices = similarity_matrices(sub_task)
    others = [label for label in emotion_labels(sub_task) if label.lower() != truth.lower()]
    return _dominant(max(others, key=lambda label: matrices.reward(truth, label)))


PROBE = HackingProbe(
    sub_tasks=_taxonomies,
    truths=_dominant_truths,
    constants=_dominant_constants,
    informative=(
        Informative("sometimes right", f"the true label {DOMINANT_HIT_RATE:.0%} of the time, else a label at "
                                       "random", _sometimes_right),
        Informative("near miss", "never the true label: the one most similar to it", _near_miss),
    ),
)

TASK = Task(
    name=NAME, sub_tasks=(), identifiers=("Dominant emotion:",), templates=(TEMPLATE,), assess_rows=dominant_rows,
    parse=parse_dominant_answer, row_reward=emotion_similarity_reward, reward_name="emotion_similarity",
    probe=PROBE, eemo_bench_item=no_eemo_bench_item, benchmark_asks=dominant_asks, read_reply=read_dominant,
    score=score_dominant, metric_names=("accuracy", "macro_f1"), well_formed=names_one_label,
    image_questions=(ImageQuestion(NAME, image_question, read_image_dominant),),
    report_columns=tuple(
        ReportColumn("table3", f"{name}_{short}", f"{title} {short.upper()}", name, "overall", "all", (metric,))
        for name, title in (("artphoto", "Artphoto"), ("artemis", "ArtEmis"))
        for short, metric in (("f1", "macro_f1"), ("acc", "accuracy"))
    ),
)
