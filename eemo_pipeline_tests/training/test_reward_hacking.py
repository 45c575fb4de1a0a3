"""The reward-hacking sweep (issue 18): for every registered task, no constant answer earns as much in GRPO's
``total`` reward as an informative one.

"Informative" means, per task (each task module's probe states it): for rankings, the top emotion first and two
other emotions at random (the issue's honest answer), and the weaker one of the truth's three emotions first
and two others at random; for VAD, the truth plus noise of half the truths' spread, and the weaker best estimate
from a signal of correlation 0.57 (the paper's lowest published SRCC); for the dominant emotion, the true label
a quarter of the time (else a random label), and a near miss that is never right (the most similar other
label). The constants: every order of one to three emotions, longer lists, no emotion; 0 to 1 in steps of 0.05
and the truths' mean; each label, every label at once, no label. Property tests add any list of emotion words
(repeats, variants, strangers, any length) and any VAD value. Rankings are swept a second time on truths skewed
as EEmo-Bench's, where the informative answer knows the top emotion and fills the rest from the prior.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eemo_pipeline.labels.taxonomy import TARGETS
from eemo_pipeline.labels.vocabulary import EMOTION_READINGS
from eemo_pipeline.tasks.questions import RANKING_LENGTH
from eemo_pipeline.tasks.registry import TASKS
from eemo_pipeline.tasks.vad import VAD_DIMENSIONS
from eemo_pipeline.training.reward_sweep import SweepResult, mean_total, sweep_all, swept_reply
from eemo_pipeline.training.rewards import FORMAT_WEIGHT, total_reward

SWEEP_N = 210
"""Truths per sweep: every ranking of three of the seven emotions once, so a ranking constant's mean is exact."""
PROPERTY = settings(deadline=None, derandomize=True, database=None, max_examples=60)
"""Hypothesis without a clock (a loaded machine is no failure), with a fixed sequence of examples and no
example database written into the checkout."""


@pytest.fixture(scope="module")
def sweeps() -> dict[tuple[str, str, str | None], SweepResult]:
    return {(result.task, result.sub_task, result.spread): result for result in sweep_all(n=SWEEP_N)}


@pytest.mark.parametrize("name", list(TASKS))
def test_no_constant_answer_out_earns_an_informative_one(name: str, sweeps) -> None:
    task = TASKS[name]
    assert task.probe.sub_tasks() and task.probe.informative
    for sub_task in task.probe.sub_tasks():
        for spread in (None, *(spread.name for spread in task.probe.spreads)):
            result = sweeps[name, sub_task, spread]
            assert result.constants, f"{result.name}: no constant answer swept"
            best, best_total = result.best_constant
            weakest, weakest_total = result.weakest_informative
            assert result.holds, (f"{result.name}: the constant {best!r} earns {best_total:.4f} in total, the "
                                  f"informative {weakest!r} {weakest_total:.4f}: GRPO would learn the constant")
            # informative answers keep the format: they win on the task reward
            assert weakest_total > FORMAT_WEIGHT


def test_on_skewed_rankings_the_prior_beats_guessing_but_not_knowing_the_top_emotion(sweeps) -> None:
    """Truths skewed as EEmo-Bench's (``ranking.SKEWED_MOODS``, our own generator): the commonest ranking, said
    for every image, out-earns the top emotion followed by two random others (as 'joy, neutral, surprise' does on
    the real ground truths: 0.871 against 0.849), yet the top emotion followed by the prior out-earns every
    constant."""
    result = sweeps["ranking", "emotion_ranking", "skewed"]
    best, best_total = result.best_constant
    assert set(best.removeprefix("Emotion ranking: ").split(", ")) == {"joy", "neutral", "surprise"}
    rng = random.Random(0)
    guessed = ["Emotion ranking: " + ", ".join([t.split(", ")[0], *rng.sample(
        [e for e in TARGETS if e != t.split(", ")[0]], 2)]) for t in result.truths]
    assert mean_total(guessed, result.truths, "ranking", "emotion_ranking") < best_total
    assert result.holds and result.informative["top emotion, then the prior"] > best_total + 0.1


def test_every_order_of_four_to_seven_emotions_earns_nothing() -> None:
    """All 13,440 orders of four to seven of the seven emotions fail the format reward, so ``total`` is 0, even
    against a truth they hit in full."""
    orders = [order for k in range(RANKING_LENGTH + 1, len(TARGETS) + 1) for order in itertools.permutations(TARGETS, k)]
    assert len(orders) == 840 + 2520 + 5040 + 5040
    totals = total_reward([swept_reply("Emotion ranking: " + ", ".join(order)) for order in orders],
                          solution=[", ".join(order[:RANKING_LENGTH]) for order in orders], task="ranking",
                          sub_task="emotion_ranking")
    assert set(totals) == {0.0}


def test_the_issue_figures_constant_seven_against_the_honest_answer() -> None:
    """Issue 18's probe: 400 random 3-emotion truths; listing all seven earned about 1.1, the honest answer 0.8."""
    rng = random.Random(18)
    truths = [rng.sample(TARGETS, 3) for _ in range(400)]
    honest = ["Emotion ranking: " + ", ".join([t[0], *rng.sample([e for e in TARGETS if e != t[0]], 2)]) for t in truths]
    solutions = [", ".join(t) for t in truths]
    seven = mean_total(["Emotion ranking: " + ", ".join(sorted(TARGETS))] * 400, solutions, "ranking", "emotion_ranking")
    assert seven == 0.0 and mean_total(honest, solutions, "ranking", "emotion_ranking") > 0.8


# ------------------------------------------------------------------------------ property-based sweeps

_RANKING_WORDS = (*TARGETS, *EMOTION_READINGS, "awe", "contentment", "Joy", "")


@PROPERTY
@given(words=st.lists(st.sampled_from(_RANKING_WORDS), max_size=9))
def test_no_ranking_answer_of_any_words_length_or_repeats_out_earns_the_informative_one(words, sweeps) -> None:
    result = sweeps["ranking", "emotion_ranking", None]
    answer = "Emotion ranking: " + ", ".join(words)
    constant = mean_total([answer] * len(result.truths), result.truths, "ranking", "emotion_ranking")
    assert constant < result.weakest_informative[1]


@PROPERTY
@given(dimension=st.sampled_from(VAD_DIMENSIONS), value=st.floats(-0.5, 1.5, allow_nan=False))
def test_no_constant_vad_value_out_earns_the_weak_estimate(dimension, value, sweeps) -> None:
    result = sweeps["vad", dimension, None]
    constant = mean_total([f"{dimension.capitalize()}: {value:.4f}"] * len(result.truths), result.truths, "vad",
                          dimension)
    assert constant < result.weakest_informative[1]
