"""The VAD task: how pleasant (valence), how intense (arousal) and how much in control (dominance) the feeling an
image evokes is, each on 0-1 (sub_tasks ``valence``, ``arousal``, ``dominance``).

- EEmoDB-Assess (paper section 3.4): rated and lexicon-synthesized scores balanced toward a uniform score
  distribution. Per dimension, the 0-1 axis is cut into ``vad_bins`` equal-width bins (bin ``b`` holds
  ``b/bins <= v < (b+1)/bins``, the last bin also holds 1.0), binned on the 4-decimal answer value. Within a bin,
  rated scores are drawn first (in a seeded-hash order), then synthesized ones in descending ``n_lexicon_words``
  (appendix C.2: more lexicon words, more reliable score; ties in seeded-hash order); the first
  ``min(available, vad_per_bin)`` are kept. Lexicon rows need at least ``vad_min_lexicon_words`` words. Answer
  ``f"{value:.4f}"`` (Python's correctly rounded 4 decimals); the row's provenance says where its score comes
  from (``vad_origin``, ``n_lexicon_words``).
- Reward (paper equation 2) ``vad_reward``: a hybrid of linear guidance and a Gaussian precision term of the
  distance to the truth.
- EEmo-Bench: one item per image; per dimension and mode (``benchmark.VAD_MODES``) a number in the reply or the
  expected level from the level keywords' next-token probabilities, scored by SRCC and PLCC.
"""

from __future__ import annotations

import functools
import json
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from eemo_pipeline.frames import with_draw_key
from eemo_pipeline.tasks import metrics
from eemo_pipeline.tasks.assess_rows import AssessInputs, assess_frame
from eemo_pipeline.tasks.benchmark import Ask, metric_row, metrics_frame
from eemo_pipeline.tasks.metrics import VAD_KEYWORDS
from eemo_pipeline.tasks.parsing import answer_text, parse_value
from eemo_pipeline.tasks.probes import HackingProbe, Informative
from eemo_pipeline.tasks.questions import THINK_INSTRUCTION, Template
from eemo_pipeline.tasks.task import ImageQuestion, ReportColumn, Task

NAME = "vad"
VAD_DIMENSIONS: tuple[str, ...] = ("valence", "arousal", "dominance")

# ------------------------------------------------------------------------------------------ questions

TEMPLATE = Template(
    "assess_vad", 1,
    "Rate the {dimension} this image evokes in viewers on a scale from 0 to 1, where 0 means {low} and 1 means "
    "{high}. " + THINK_INSTRUCTION + ", exactly as <think>...</think><answer>{label}: x.xxxx</answer> with a number "
    "between 0 and 1 written with four decimal places.",
)
VAD_WORDING: dict[str, tuple[str, str]] = {
    "valence": ("very unpleasant, negative", "very pleasant, positive"),
    "arousal": ("very calm, relaxed", "very excited, stimulated"),
    "dominance": ("helpless, controlled by the scene", "powerful, in control of the scene"),
}
_DIMENSION_GLOSS = {
    "valence": "valence (how pleasant the evoked feeling is: 0 very negative, 1 very positive)",
    "arousal": "arousal (how intense the evoked feeling is: 0 very calm, 1 very excited)",
    "dominance": "dominance (how much in control the viewer feels: 0 helpless, 1 powerful)",
}


def vad_question(dimension: str) -> str:
    low, high = VAD_WORDING[dimension]
    return TEMPLATE.text.format(dimension=dimension, low=low, high=high, label=dimension.capitalize())


def vad_direct_prompt(dimension: str) -> str:
    """Direct-mode VAD: a number on 0-1 after the dimension's identifier."""
    return (f"Rate the {_DIMENSION_GLOSS[dimension]} that the image evokes, on a scale from 0 to 1 with four "
            f"decimals, as <answer>{dimension.capitalize()}: x.xxxx</answer>.")


def vad_probability_prompt(dimension: str) -> str:
    """Probability-mode VAD: the reply's first word is one of the dimension's three level keywords; the model's
    next-token probabilities over them are read (``VisionChatModel.keyword_probabilities``)."""
    high, medium, low = VAD_KEYWORDS[dimension]
    return (f"Is the {dimension} the image evokes in you {high}, {medium} or {low}? "
            f"Answer with one word: {high}, {medium} or {low}.")


# ------------------------------------------------------------------------------------ answers and reward

# Hybrid VAD reward: half linear guidance (non-zero up to D_MAX = half the 0-1 scale, so even a coarse answer gets
# a gradient), half a Gaussian precision kernel (SIGMA = 0.1: ~0.88 at d = 0.05, ~0.61 at d = 0.1, ~0.14 at d = 0.2).
VAD_W_LIN = 0.5
VAD_D_MAX = 0.5
VAD_SIGMA = 0.1


def vad_dimension(sub_task: object) -> str | None:
    """The VAD dimension ``sub_task`` names (case-insensitive), else None."""
    dimension = sub_task.strip().lower() if isinstance(sub_task, str) else ""
    return dimension if dimension in VAD_DIMENSIONS else None


def parse_vad(answer: str | None, sub_task: str) -> float | None:
    """The value after the sub_task's identifier; None when ``sub_task`` is no VAD dimension."""
    dimension = vad_dimension(sub_task)
    return parse_value(answer, dimension) if dimension else None


def states_a_value(value: float | None) -> bool:
    """A VAD answer is well formed when it gives a finite number after its identifier ("Valence: banana",
    a bare "Valence:" and "Valence: nan" give none). A number outside 0-1 is well formed and clipped by the
    reward."""
    return value is not None


def hybrid_regression(distance: float) -> float:
    """``VAD_W_LIN * max(0, 1 - d / VAD_D_MAX) + (1 - VAD_W_LIN) * exp(-d**2 / (2 VAD_SIGMA**2))``. Range [0, 1]."""
    linear = max(0.0, 1.0 - distance / VAD_D_MAX)
    gaussian = math.exp(-(distance**2) / (2.0 * VAD_SIGMA**2))
    return VAD_W_LIN * linear + (1.0 - VAD_W_LIN) * gaussian


def vad_reward(truth: float | None, predicted: float | None, sub_task: str) -> float:
    """The hybrid regression reward of ``d = |clip(predicted, 0, 1) - truth|``; 0.0 without a predicted value.
    Range [0, 1]. ``ValueError`` when the truth is unusable: a sub_task that is no VAD dimension, a solution
    without a number, or one outside 0-1."""
    if vad_dimension(sub_task) is None:
        raise ValueError(f"the sub_task is no VAD dimension ({', '.join(VAD_DIMENSIONS)})")
    if truth is None:
        raise ValueError("the solution holds no number")
    if not 0.0 <= truth <= 1.0:
        raise ValueError(f"the solution {truth} is outside 0-1")
    if predicted is None:
        return 0.0
    return hybrid_regression(abs(min(max(predicted, 0.0), 1.0) - truth))


def read_image_value(dimension: str, reply: str | None) -> float | None:
    """``eemo assess``: the number after the dimension's identifier when it lies in [0, 1], else None."""
    value = parse_value(answer_text(reply), dimension)
    return value if value is not None and 0.0 <= value <= 1.0 else None


# ------------------------------------------------------------------------------------------- benchmark

def eemo_bench_item(truth: Mapping[str, Any]) -> dict[str, Any]:
    """The image's VAD item: its three values on 0-1."""
    return {dim: truth[dim] for dim in VAD_DIMENSIONS}


def vad_asks(item: Mapping[str, Any], modes: Sequence[str]) -> list[Ask]:
    """One request per mode and dimension."""
    return [Ask(dim, mode, vad_direct_prompt(dim) if mode == "direct" else vad_probability_prompt(dim),
                VAD_KEYWORDS[dim] if mode == "probability" else (), {"sub_task": dim, "mode": mode})
            for mode in modes for dim in VAD_DIMENSIONS]


def read_vad(item: Mapping[str, Any], sub_task: str, mode: str, reply: str | None,
             probabilities: Sequence[float] | None) -> dict[str, Any]:
    """The value: the expected level in probability mode, else the number after the dimension's identifier."""
    value = (metrics.probability_score(probabilities) if mode == "probability"
             else parse_value(answer_text(reply), sub_task))
    return {"parsed": None if value is None else f"{value:.4f}", "predicted_value": value,
            "truth_value": item[sub_task], "truth": f"{item[sub_task]:.4f}"}


def score_vad(predictions: pl.DataFrame, task: str) -> pl.DataFrame:
    """EEmo-Bench assessment: SRCC and PLCC per mode and dimension over the parsed items, and their mean over
    the dimensions as ``overall``."""
    rows = []
    for (model, mode), frame in predictions.group_by("model", "mode", maintain_order=True):
        per_metric: dict[str, list[float]] = {"srcc": [], "plcc": []}
        for dim in VAD_DIMENSIONS:
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
            if len(values) == len(VAD_DIMENSIONS):
                mean = sum(values) / len(values)
                rows.append(metric_row(model, "eemo_bench", task, mode, "overall", name, mean,
                                       frame.height // len(VAD_DIMENSIONS), int(frame["parse_failed"].sum())))
    return metrics_frame(rows)


# ------------------------------------------------------------------------------------------ Assess rows

def vad_candidates(inputs: AssessInputs) -> pl.DataFrame:
    """Every usable (image, dimension) score with its answer text, 1/10000 units and bin."""
    config = inputs.config
    long = (
        inputs.vad_scores.join(inputs.images, on=["source", "image_id"], how="inner")
        .unpivot(on=list(VAD_DIMENSIONS), index=["source", "image_id", "image_path", "vad_origin", "n_lexicon_words"],
                 variable_name="sub_task", value_name="value")
        .filter(
            pl.col("value").is_not_null() & pl.col("value").is_finite() & pl.col("value").is_between(0.0, 1.0)
            & ((pl.col("vad_origin") == "rated") | (pl.col("n_lexicon_words") >= config.vad_min_lexicon_words))
        )
    )
    answers = pl.Series("answer", [f"{v:.4f}" for v in long["value"].to_list()], pl.String)
    units = answers.str.replace(".", "", literal=True).cast(pl.Int64)
    return long.with_columns(answers, units.alias("units")).with_columns(
        pl.min_horizontal(pl.col("units") * config.vad_bins // 10_000, pl.lit(config.vad_bins - 1)).alias("bin")
    )


def vad_rows(inputs: AssessInputs) -> pl.DataFrame:
    """The VAD rows (module docstring)."""
    ordered = with_draw_key(vad_candidates(inputs), inputs.seed, NAME).with_columns(
        (pl.col("vad_origin") != "rated").cast(pl.Int8).alias("_origin"),
        pl.col("n_lexicon_words").fill_null(0).alias("_words"),
    ).sort(
        ["sub_task", "bin", "_origin", "_words", "_draw", "source", "image_id"],
        descending=[False, False, False, True, False, False, False],
    )
    chosen = ordered.filter(pl.int_range(pl.len()).over("sub_task", "bin") < inputs.config.vad_per_bin)
    questions = pl.DataFrame({"sub_task": list(VAD_DIMENSIONS), "question": [vad_question(d) for d in VAD_DIMENSIONS]})
    facts = [json.dumps({"vad_origin": origin, "n_lexicon_words": words})
             for origin, words in chosen.select("vad_origin", "n_lexicon_words").iter_rows()]
    chosen = chosen.with_columns(pl.Series("provenance_facts", facts, pl.String))
    return assess_frame(chosen.join(questions, on="sub_task", how="left").with_columns(
        pl.lit(NAME).alias("task"),
        pl.lit(TEMPLATE.template_id).alias("template_id"),
    ))


# ------------------------------------------------------------------------------------------ hacking probe

VAD_TRUTH_SPREAD: dict[str, tuple[float, float]] = {
    "valence": (0.462, 0.200), "arousal": (0.602, 0.123), "dominance": (0.499, 0.145),
}
"""Mean and standard deviation on 0-1 of EEmo-Bench's 1,960 ground-truth means per dimension (the authors'
``Ebench_1_data(jac_en_check).json``); the probe draws truths from a normal of that spread, clipped to 0-1.
Arousal's is the narrowest, where a constant does best."""
VAD_WEAK_CORRELATION = 0.57
"""The correlation of the weakest informative VAD answer: the paper's lowest published SRCC (EEmo-Logic on
arousal, Table 2)."""
VAD_CONSTANT_STEP = 0.05
"""The constant VAD answers: 0 to 1 in this step (0, 0.5 and 1 among them), plus the truths' mean."""


def _value(sub_task: str, value: float) -> str:
    return f"{sub_task.capitalize()}: {min(max(value, 0.0), 1.0):.4f}"


def _vad_truths(sub_task: str, rng: random.Random, n: int) -> list[str]:
    mean, sd = VAD_TRUTH_SPREAD[sub_task]
    return [f"{min(max(rng.gauss(mean, sd), 0.0), 1.0):.4f}" for _ in range(n)]


def _vad_constants(sub_task: str, truths: Sequence[str]) -> list[str]:
    steps = round(1.0 / VAD_CONSTANT_STEP)
    mean = sum(float(truth) for truth in truths) / len(truths)
    return [_value(sub_task, i / steps) for i in range(steps + 1)] + [_value(sub_task, mean)]


def _half_spread_noise(truth: str, sub_task: str, rng: random.Random) -> str:
    return _value(sub_task, float(truth) + rng.gauss(0.0, VAD_TRUTH_SPREAD[sub_task][1] / 2))


def _weak_estimate(truth: str, sub_task: str, rng: random.Random) -> str:
    """E[truth | signal] for a signal of correlation VAD_WEAK_CORRELATION: m + rho^2 (signal - m)."""
    mean, sd = VAD_TRUTH_SPREAD[sub_task]
    rho = VAD_WEAK_CORRELATION
    signal = float(truth) + rng.gauss(0.0, sd * (1.0 / rho**2 - 1.0) ** 0.5)
    return _value(sub_task, mean + rho**2 * (signal - mean))


PROBE = HackingProbe(
    sub_tasks=lambda: VAD_DIMENSIONS,
    truths=_vad_truths,
    constants=_vad_constants,
    informative=(
        Informative("half-spread noise", "the truth plus Gaussian noise of half the truths' spread (correlation "
                                         "0.89), clipped to 0-1", _half_spread_noise),
        Informative("weak estimate", f"the best estimate from a signal of correlation {VAD_WEAK_CORRELATION} with "
                                     "the truth (shrunk toward the mean, as a model that knows little does)",
                    _weak_estimate),
    ),
)

TASK = Task(
    name=NAME, sub_tasks=VAD_DIMENSIONS, identifiers=tuple(f"{d.capitalize()}:" for d in VAD_DIMENSIONS),
    templates=(TEMPLATE,), assess_rows=vad_rows, parse=parse_vad, row_reward=vad_reward, reward_name="vad",
    probe=PROBE, eemo_bench_item=eemo_bench_item, benchmark_asks=vad_asks, read_reply=read_vad, score=score_vad,
    metric_names=("srcc", "plcc"), well_formed=states_a_value,
    image_questions=tuple(ImageQuestion(d, functools.partial(vad_question, d), functools.partial(read_image_value, d))
                          for d in VAD_DIMENSIONS),
    report_columns=tuple(ReportColumn("table2", group, group.capitalize(), "eemo_bench", None, group, ("srcc", "plcc"))
                         for group in (*VAD_DIMENSIONS, "overall")),
)
