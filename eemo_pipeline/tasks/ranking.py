"""The ranking task: which three of the seven targets an image evokes in the most viewers, strongest first.

- EEmoDB-Assess (paper section 3.4, sub_task ``emotion_ranking``): the sources declared with
  ``assess.emotion_ranking`` in ``data_contracts/sources.yaml`` (Emotion6 only), "derive unambiguous hierarchical
  labels by sorting the inherent probability distributions". An image is used when its mapped ranking has exactly
  three targets whose probabilities are strictly decreasing and the third beats the fourth (gaps above
  ``tie_tolerance``). Answer ``"a, b, c"`` (the mapped ranking); an open answer, so ``options`` is null (as in
  EEmoDB-QA) and the question lists the seven targets in ``TARGETS`` order.
- Reward (paper section 4.2) ``ranking_reward``: ``(ranking_score / 100) ** 2``; the format reward also needs a
  ranking: one to three distinct emotions, each comma item one of the seven (``names_a_ranking``).
- EEmo-Bench: one item per image of the ground truth, scored by the mean ranking score (``metrics.ranking_score``).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from eemo_pipeline.contracts import source_declarations
from eemo_pipeline.labels.taxonomy import TARGETS
from eemo_pipeline.tasks.assess_rows import AssessInputs, assess_frame
from eemo_pipeline.tasks.benchmark import Ask, metric_row, metrics_frame
from eemo_pipeline.tasks.metrics import ranking_score
from eemo_pipeline.tasks.parsing import answer_text, parse_ranking, ranked
from eemo_pipeline.tasks.probes import HackingProbe, Informative, TruthSpread, balanced
from eemo_pipeline.tasks.questions import EMOTIONS_TEXT, RANKING_LENGTH, THINK_INSTRUCTION, Template
from eemo_pipeline.tasks.task import ImageQuestion, ReportColumn, Task

NAME = "ranking"
SUB_TASK = "emotion_ranking"

# ------------------------------------------------------------------------------------------ questions

TEMPLATE = Template(
    "assess_emotion_ranking", 1,
    "Which three emotions does this image evoke most widely in viewers? Choose from: {candidates}. Order them "
    "from the emotion felt by the most people to the one felt by the fewest. " + THINK_INSTRUCTION + ", exactly as "
    "<think>...</think><answer>Emotion ranking: a, b, c</answer> with three different emotions from the list.",
)


def ranking_question() -> str:
    return TEMPLATE.text.format(candidates=", ".join(TARGETS))


def ranking_prompt() -> str:
    """EEmo-Bench ranking: the three strongest of the seven emotions, strongest first."""
    return (f"Which three of these emotions does the image evoke most strongly in viewers: {EMOTIONS_TEXT}? "
            "Rank them from the strongest to the weakest, separated by commas, as "
            "<answer>Emotion ranking: first, second, third</answer>.")


# ------------------------------------------------------------------------------------ answers and reward

def parse_ranking_answer(answer: str | None, sub_task: str) -> list[str]:
    """The distinct emotions of a ranking answer, all of them (``parse_ranking``)."""
    return parse_ranking(answer)


def names_a_ranking(emotions: list[str]) -> bool:
    """A ranking answer (or solution) is well formed when it names one to ``RANKING_LENGTH`` distinct emotions and
    every comma item is one of the seven targets (its word, a form or a synonym: ``labels/vocabulary.py``). An
    item naming anything else ("something else", "banana", "joy/sadness/anger", a line of several emotions
    without commas) makes the whole answer malformed, and so does listing more than three: the format reward
    fails it, so ``total`` gives 0 whatever it hits. Repeats are dropped first ("joy, Joy, happy" is joy)."""
    return 1 <= len(emotions) <= RANKING_LENGTH and all(emotion in TARGETS for emotion in emotions)


def ranking_reward(truth: list[str], predicted: list[str], sub_task: str) -> float:
    """``(ranking_score(truth, predicted) / 100) ** 2``; a prediction without ranking scores 0. Range [0, 1].
    ``ValueError`` when the truth is no ranking (``names_a_ranking``); ``sub_task`` is not read."""
    if not names_a_ranking(truth):
        raise ValueError(f"the solution names no ranking of 1 to {RANKING_LENGTH} of the seven emotions "
                         f"({', '.join(TARGETS)}); read {truth}")
    return (ranking_score(truth, predicted) / 100.0) ** 2


def read_image_ranking(reply: str | None) -> list[str] | None:
    """``eemo assess``: the ranking as the benchmark reads it (its first three distinct emotions), keeping the
    targets among them; None when none is left."""
    return [emotion for emotion in ranked(parse_ranking(answer_text(reply))) if emotion in TARGETS] or None


# ------------------------------------------------------------------------------------------- benchmark

def eemo_bench_item(truth: Mapping[str, Any]) -> dict[str, Any]:
    """The image's ranking item: its ranking, the benchmark's label set, the ranking as the answer text."""
    return {"labels": list(truth["labels"]), "ranking": list(truth["ranking"]), "answer": ", ".join(truth["ranking"])}


def ranking_asks(item: Mapping[str, Any], modes: Sequence[str]) -> list[Ask]:
    return [Ask("", "generate", ranking_prompt())]


def read_ranking(item: Mapping[str, Any], sub_task: str, mode: str, reply: str | None,
                 probabilities: Sequence[float] | None) -> dict[str, Any]:
    """The ranking read from the reply (its first three distinct emotions: ``parsing.ranked``) and its ranking
    score (0-100) against the item's ranking."""
    ranking = ranked(parse_ranking(answer_text(reply)))
    return {"parsed": ", ".join(ranking) or None, "predicted_value": ranking_score(item["ranking"], ranking)}


def score_ranking(predictions: pl.DataFrame, task: str) -> pl.DataFrame:
    """EEmo-Bench ranking: the mean per-image ranking score (0-100); unparsed replies score 0."""
    rows = []
    for (model,), frame in predictions.group_by("model", maintain_order=True):
        rows.append(metric_row(model, "eemo_bench", task, "overall", "all", "ranking_score",
                               frame["predicted_value"].mean(), frame.height, int(frame["parse_failed"].sum())))
    return metrics_frame(rows)


# ------------------------------------------------------------------------------------------ Assess rows

def ranking_sources() -> list[str]:
    """Sources whose mapped ranking gives ranking instructions (``assess.emotion_ranking`` in sources.yaml)."""
    return [name for name, facts in source_declarations().items() if facts.emotion_ranking]


def _probability_of(target: pl.Expr) -> pl.Expr:
    return pl.coalesce([pl.when(target == t).then(pl.col(f"p_{t}")) for t in TARGETS])


def ranking_rows(inputs: AssessInputs) -> pl.DataFrame:
    """The ranking rows (module docstring)."""
    tol = inputs.config.tie_tolerance
    ranking = pl.col("ranking")
    ranks = [_probability_of(ranking.list.get(i, null_on_oob=True)) for i in range(RANKING_LENGTH)]
    fourth = pl.concat_list([pl.col(f"p_{t}") for t in TARGETS]).list.sort(descending=True).list.get(RANKING_LENGTH)
    rows = inputs.mapped_labels.filter(
        pl.col("source").is_in(ranking_sources())
        & ranking.is_not_null()
        & (ranking.list.len() == RANKING_LENGTH)
        & (ranking.list.n_unique() == RANKING_LENGTH)
        & (ranks[0] - ranks[1] > tol)
        & (ranks[1] - ranks[2] > tol)
        & (ranks[2] - fourth > tol)
    ).join(inputs.images, on=["source", "image_id"], how="inner")
    return assess_frame(rows.with_columns(
        pl.lit(NAME).alias("task"),
        pl.lit(SUB_TASK).alias("sub_task"),
        pl.lit(TEMPLATE.template_id).alias("template_id"),
        pl.lit(ranking_question()).alias("question"),
        ranking.list.join(", ").alias("answer"),
    ))


# ------------------------------------------------------------------------------------------ hacking probe

def _ranking(emotions: Sequence[str]) -> str:
    return "Emotion ranking: " + ", ".join(emotions)


def _ranking_truths(sub_task: str, rng: random.Random, n: int) -> list[str]:
    """Rankings of three distinct targets, every one of the 210 equally often (``probes.balanced``)."""
    return balanced([", ".join(order) for order in itertools.permutations(TARGETS, RANKING_LENGTH)], rng, n)


def _ranking_constants(sub_task: str, truths: Sequence[str]) -> list[str]:
    """No emotion; every order of one to three emotions; for four to seven, the first emotions alphabetically in
    that order and reversed (the format rule fails every longer answer alike: ``test_reward_hacking`` checks all
    13,440 orders of four to seven on the format reward)."""
    alphabetical = sorted(TARGETS)
    short = [order for k in range(1, RANKING_LENGTH + 1) for order in itertools.permutations(alphabetical, k)]
    long = [order for k in range(RANKING_LENGTH + 1, len(TARGETS) + 1)
            for order in (alphabetical[:k], alphabetical[:k][::-1])]
    return [_ranking(())] + [_ranking(order) for order in short + long]


def _first_then_random(first: str, rng: random.Random) -> list[str]:
    return [first, *rng.sample([target for target in TARGETS if target != first], RANKING_LENGTH - 1)]


def _top_first(truth: str, sub_task: str, rng: random.Random) -> str:
    emotions = truth.split(", ")
    return _ranking(_first_then_random(emotions[0], rng))


def _any_first(truth: str, sub_task: str, rng: random.Random) -> str:
    emotions = truth.split(", ")
    return _ranking(_first_then_random(rng.choice(emotions), rng))


SKEWED_MOODS: tuple[tuple[float, dict[str, float]], ...] = (
    (0.45, {"joy": 30, "neutral": 8, "surprise": 6, "fear": 0.3, "sadness": 0.3, "disgust": 0.2, "anger": 0.2}),
    (0.42, {"fear": 6, "neutral": 5, "disgust": 4, "sadness": 2, "anger": 1.5, "surprise": 0.5, "joy": 0.2}),
    (0.13, {"neutral": 10, "joy": 4, "sadness": 2, "surprise": 2, "fear": 1, "disgust": 0.5, "anger": 0.5}),
)
"""The skewed ranking spread: (share, weights) of pleasant, unpleasant and plain scenes. A truth draws a scene by
share, then three emotions without replacement, each in proportion to its weight among those left
(Plackett-Luce). Chosen by hand so that the rankings look like EEmo-Bench's: in its 1,960 ground truths joy,
neutral and surprise (in some order) are 41% of the rankings, the commonest one 16%, the top emotion joy 32%,
neutral 28%, fear 17%; 1,960 draws (seed 0) give 38%, 14%, 33%, 25%, 13%. Only these summary figures were read
from the authors' file."""


def _skewed_truths(sub_task: str, rng: random.Random, n: int) -> list[str]:
    """Rankings drawn from ``SKEWED_MOODS``."""
    shares = [share for share, _ in SKEWED_MOODS]
    truths = []
    for _ in range(n):
        weights = dict(rng.choices([weights for _, weights in SKEWED_MOODS], weights=shares)[0])
        order = []
        for _ in range(RANKING_LENGTH):
            emotion = rng.choices(list(weights), weights=list(weights.values()))[0]
            order.append(emotion)
            del weights[emotion]
        truths.append(", ".join(order))
    return truths


def _top_then_prior(truths: Sequence[str]) -> tuple[Informative, ...]:
    """The top emotion, then the two emotions the truths name most often (other than it), most frequent first."""
    counts = Counter(emotion for truth in truths for emotion in truth.split(", "))
    prior = sorted(TARGETS, key=lambda emotion: (-counts[emotion], TARGETS.index(emotion)))

    def answer(truth: str, sub_task: str, rng: random.Random) -> str:
        top = truth.split(", ")[0]
        return _ranking([top, *[emotion for emotion in prior if emotion != top][:RANKING_LENGTH - 1]])

    return (Informative("top emotion, then the prior", "the top emotion first, then the two other emotions the "
                                                       "truths name most often", answer),)


PROBE = HackingProbe(
    sub_tasks=lambda: (SUB_TASK,),
    truths=_ranking_truths,
    constants=_ranking_constants,
    informative=(
        Informative("top emotion", "the top emotion first, then two other emotions at random (issue 18's honest "
                                   "answer)", _top_first),
        Informative("one emotion", "one of the truth's three emotions, drawn at random, first, then two other "
                                   "emotions at random", _any_first),
    ),
    spreads=(TruthSpread("skewed", "rankings skewed as EEmo-Bench's (SKEWED_MOODS): a constant such as "
                                   "'joy, neutral, surprise' is the prior there", _skewed_truths, _top_then_prior),),
)

TASK = Task(
    name=NAME, sub_tasks=(SUB_TASK,), identifiers=("Emotion ranking:",), templates=(TEMPLATE,),
    assess_rows=ranking_rows, parse=parse_ranking_answer, row_reward=ranking_reward, reward_name="ranking",
    probe=PROBE, eemo_bench_item=eemo_bench_item, benchmark_asks=ranking_asks, read_reply=read_ranking,
    score=score_ranking, metric_names=("ranking_score",),
    image_questions=(ImageQuestion("ranking", ranking_question, read_image_ranking),),
    report_columns=(ReportColumn("table1", "ranking", "Ranking Score", "eemo_bench", "overall", "all",
                                 ("ranking_score",)),),
    well_formed=names_a_ranking,
)
