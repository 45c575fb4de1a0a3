"""What the reward-hacking sweep asks of each task (``Task.probe``; the sweep is ``training/reward_sweep.py``).

A probe draws ground truths the way a task's training rows spread, lists the constant answers a policy could
settle on without looking at the image, and writes informative answers: answers that know something of the
truth and nothing more than their name says. GRPO's ``total`` reward must pay every informative answer more,
on average over the truths, than the best constant one; otherwise GRPO learns the constant.

Answers are the text inside ``<answer>...</answer>``, identifier included; truths are bare solutions as in
EEmoDB-Assess (``"joy, surprise, fear"``, ``"0.7321"``, ``"Amusement"``).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eemo_pipeline.labels.taxonomy import TARGETS, taxonomy_document
from eemo_pipeline.tasks.questions import RANKING_LENGTH, VAD_DIMENSIONS
from eemo_pipeline.tasks.similarity import emotion_labels, similarity_matrices


@dataclass(frozen=True)
class Informative:
    """An answer that knows something of the truth: ``answer(truth, sub_task, rng)``; ``means`` says what."""

    name: str
    means: str
    answer: Callable[[str, str, random.Random], str]


@dataclass(frozen=True)
class HackingProbe:
    """One task's sweep: ``sub_tasks()`` to sweep; ``truths(sub_task, rng, n)`` draws n solutions;
    ``constants(sub_task, truths)`` are the answers that ignore the image (they may use the truths' statistics, as
    a policy may learn the training mean); ``informative`` answers must each out-earn every constant."""

    sub_tasks: Callable[[], tuple[str, ...]]
    truths: Callable[[str, random.Random, int], list[str]]
    constants: Callable[[str, Sequence[str]], list[str]]
    informative: tuple[Informative, ...]


# ------------------------------------------------------------------------------------------------ ranking

def _balanced(values: Sequence[str], rng: random.Random, n: int) -> list[str]:
    """``n`` draws that take every value equally often (as nearly as ``n`` allows), in random order: over a
    multiple of ``len(values)`` draws a constant's mean is its exact expectation."""
    shuffled = list(values)
    rng.shuffle(shuffled)
    draws = [shuffled[i % len(shuffled)] for i in range(n)]
    rng.shuffle(draws)
    return draws


def _ranking(emotions: Sequence[str]) -> str:
    return "Emotion ranking: " + ", ".join(emotions)


def _ranking_truths(sub_task: str, rng: random.Random, n: int) -> list[str]:
    """Rankings of three distinct targets, every one of the 210 equally often (``_balanced``)."""
    return _balanced([", ".join(order) for order in itertools.permutations(TARGETS, RANKING_LENGTH)], rng, n)


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


RANKING_PROBE = HackingProbe(
    sub_tasks=lambda: ("emotion_ranking",),  # the ranking's one sub_task (registry.RANKING)
    truths=_ranking_truths,
    constants=_ranking_constants,
    informative=(
        Informative("top emotion", "the top emotion first, then two other emotions at random (issue 18's honest "
                                   "answer)", _top_first),
        Informative("one emotion", "one of the truth's three emotions, drawn at random, first, then two other "
                                   "emotions at random", _any_first),
    ),
)

# ---------------------------------------------------------------------------------------------------- VAD

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


VAD_PROBE = HackingProbe(
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

# ------------------------------------------------------------------------------------------ dominant emotion

DOMINANT_HIT_RATE = 0.25
"""How often the weak informative dominant-emotion answer names the truth (else a label at random)."""


def _dominant(label: str) -> str:
    return f"Dominant emotion: {label}"


def _taxonomies() -> tuple[str, ...]:
    return tuple(name for name in taxonomy_document()["taxonomies"] if len(emotion_labels(name)) > 1)


def _dominant_truths(sub_task: str, rng: random.Random, n: int) -> list[str]:
    """The taxonomy's labels, each equally often (``_balanced``)."""
    return _balanced(emotion_labels(sub_task), rng, n)


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


DOMINANT_PROBE = HackingProbe(
    sub_tasks=_taxonomies,
    truths=_dominant_truths,
    constants=_dominant_constants,
    informative=(
        Informative("sometimes right", f"the true label {DOMINANT_HIT_RATE:.0%} of the time, else a label at "
                                       "random", _sometimes_right),
        Informative("near miss", "never the true label: the one most similar to it", _near_miss),
    ),
)
