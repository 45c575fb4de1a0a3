"""Metrics against hand-computed cases (REFERENCE.md section 3)."""

import math

import pytest

from eemo_pipeline.tasks import metrics

G = ["joy", "anger", "sadness"]


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        (["joy", "anger", "sadness"], 100.0),  # 50 hit + 25 * (1 + 1)
        (["sadness", "anger", "joy"], 50.0),  # reversed: tau -1, K 0
        (["joy", "sadness", "anger"], 50.0 + 25.0 * (1 / 3 + 1)),  # one discordant pair of three
        (["joy", "anger"], 40.0 + 2 / 3 * 50.0),  # short: |Pi| = 2, K scaled by 2/3
        (["anger", "joy"], 40.0),  # short and reversed: tau -1
        (["joy"], 25.0),  # |Pi| = 1: no consistency term
        (["sadness"], 10.0),
        ([], 0.0),  # empty prediction
        (["fear", "surprise", "neutral"], 0.0),  # nothing of G
        (["joy", "joy", "anger", "sadness"], 100.0),  # a repeat is dropped
        # over-long: scored as its first three distinct (joy, anger, fear): H 40, Pi = (joy, anger) in order
        (["joy", "joy", "anger", "fear", "sadness"], 40.0 + 2 / 3 * 50.0),
    ],
)
def test_ranking_score_hand_cases(predicted, expected):
    assert metrics.ranking_score(G, predicted) == pytest.approx(expected)


def test_string_tau_is_only_the_compatibility_option():
    predicted = ["joy", "sadness", "anger"]
    assert metrics.ranking_score(G, predicted) == pytest.approx(50 + 25 * (1 / 3 + 1))
    # the authors' alphabetical ranks: G -> (1, 0, 2), P -> (1, 2, 0): all three pairs discordant, tau -1
    assert metrics.ranking_score(G, predicted, string_tau=True) == pytest.approx(50.0)
    assert metrics.ranking_score(G, G, string_tau=True) == 100.0


def test_ranking_score_ignores_case_and_spaces():
    assert metrics.ranking_score(G, ["Joy", " ANGER", "Sadness "]) == 100.0
    assert metrics.ranking_score(["Sadness", "Joy", "Anger"], ["sadness"]) == 25.0
    assert metrics.ranking_score(G, ["Joy", "Sadness", "Anger"], string_tau=True) == pytest.approx(50.0)


EKMAN7 = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")


def test_random_ranking_baseline_is_195_over_7():
    baseline = metrics.random_ranking_baseline(EKMAN7, ["joy", "anger", "sadness"])
    assert round(baseline, 2) == 27.86 and baseline == pytest.approx(195 / 7)
    # the same for every ground truth and for the authors' string tau (a relabelling of the same guesses)
    assert metrics.random_ranking_baseline(EKMAN7, ["Surprise", "fear", "neutral"]) == pytest.approx(195 / 7)
    assert metrics.random_ranking_baseline(EKMAN7, G, string_tau=True) == pytest.approx(195 / 7)
    # by hand with two candidates and a two-emotion truth: (a, b) scores 40 + 2/3 * 50, (b, a) 40
    assert metrics.random_ranking_baseline(["a", "b"], ["a", "b"]) == pytest.approx((40 + 100 / 3 + 40) / 2)
    with pytest.raises(ValueError, match="distinct candidates"):
        metrics.random_ranking_baseline(EKMAN7, ["joy", "joy", "fear"])


def test_kendall_tau_needs_two():
    with pytest.raises(ValueError, match="length >= 2"):
        metrics.kendall_tau([1], [1])


def test_accuracy_counts_unparsed_as_wrong():
    assert metrics.accuracy(["A", "B", "A", "C"], ["A", None, "B", "C"]) == 50.0
    assert math.isnan(metrics.accuracy([], []))


def test_macro_f1_hand_computed():
    truth = ["a", "a", "b", "c"]
    predicted = ["a", "b", "b", None]
    # a: tp 1 fn 1 -> 2/3; b: tp 1 fp 1 -> 2/3; c: tp 0 -> 0
    assert metrics.macro_f1(truth, predicted) == pytest.approx(100 * (2 / 3 + 2 / 3 + 0) / 3)
    # a listed label with no items still counts (F1 0)
    assert metrics.macro_f1(truth, predicted, ["a", "b", "c", "d"]) == pytest.approx(100 * (4 / 3) / 4)


def test_correlations_with_ties_and_missing():
    truth = [0.1, 0.2, 0.3, 0.4, 0.5]
    predicted = [0.2, 0.2, 0.5, None, 0.9]  # a tie and an unparsed item
    # ranks over the four parsed items: truth 1 2 3 4, prediction 1.5 1.5 3 4
    assert metrics.srcc(truth, predicted) == pytest.approx(0.9486832980505138)
    # cov 4.5 / (sqrt(2) * sqrt(10.1667))
    assert metrics.plcc([1, 2, 3], [2, 4, 6.5]) == pytest.approx(4.5 / (2**0.5 * (61 / 6) ** 0.5))
    assert math.isnan(metrics.srcc([1, 2, 3], [0.5, 0.5, 0.5]))  # constant prediction
    assert math.isnan(metrics.plcc([1, 2], [None, 3]))


def test_probability_score_weights_high_medium_low():
    assert metrics.probability_score([1, 0, 0]) == 1.0
    assert metrics.probability_score([0.2, 0.6, 0.2]) == pytest.approx(0.5)
    assert metrics.probability_score([2, 1, 1]) == pytest.approx(0.625)  # renormalised
    with pytest.raises(ValueError):
        metrics.probability_score([0.5, 0.5])


def test_conciseness_peaks_at_equal_length():
    reference = "one two three four"
    assert metrics.conciseness("a b c d", reference) == 1.0
    assert metrics.conciseness("a b", reference) == pytest.approx(math.exp(-0.5))
    assert metrics.conciseness("a b c d e f g h", reference) == pytest.approx(math.exp(-0.5))
    assert metrics.conciseness("", reference) == 0.0
    assert math.isnan(metrics.conciseness("a", ""))


def test_description_score():
    assert metrics.description_score(2, 2, 2, 1.0) == 100.0
    assert metrics.description_score(1, 2, 0, 0.5) == pytest.approx(100 * (0.5 + 1 + 0 + 0.5) / 4)
    assert math.isnan(metrics.description_score(math.nan, 2, 2, 1))
