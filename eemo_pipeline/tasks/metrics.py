"""The benchmarks' metrics as pure functions (REFERENCE.md section 3; paper section 5 and appendix E).

Percent-valued metrics (accuracy, macro F1, ranking and description scores) are on 0-100; correlations on
-1..1. An unparseable prediction is passed as None and counts as wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import permutations

import numpy as np

from eemo_pipeline.tasks.parsing import ranked

RANKING_WEIGHTS = (25.0, 15.0, 10.0)
"""Weighted hit of EEmo-Bench: 25, 15, 10 points for the first, second and third ground-truth emotion."""

PROBABILITY_WEIGHTS = (1.0, 0.5, 0.0)
"""Probability-mode VAD (EEmo-Bench, paper appendix E.4): weights of the high, medium and low level keywords."""

VAD_KEYWORDS: dict[str, tuple[str, str, str]] = {
    "valence": ("positive", "neutral", "negative"),
    "arousal": ("high", "moderate", "low"),
    "dominance": ("powerful", "moderate", "helpless"),
}
"""Level keywords per dimension, in the order (high, medium, low) of ``PROBABILITY_WEIGHTS``."""

CONCISENESS_SIGMA = math.log(2.0)
"""Width of the conciseness rule on the log word-count ratio: a reply twice or half the reference's length
scores exp(-1/2) = 0.61, four times or a quarter 0.14 (the paper's exact function was lost)."""


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-a of paired observations without ties: (concordant - discordant) / (n (n - 1) / 2).
    Ties count as neither (they cannot occur for the orders scored here). Needs n >= 2."""
    n = len(x)
    if n != len(y) or n < 2:
        raise ValueError(f"kendall_tau needs two sequences of equal length >= 2, got {len(x)} and {len(y)}")
    score = 0
    for i in range(n):
        for j in range(i + 1, n):
            sign = (x[i] - x[j]) * (y[i] - y[j])
            score += (sign > 0) - (sign < 0)
    return score / (n * (n - 1) / 2)


def _alphabetical_ranks(items: Sequence[str]) -> list[int]:
    order = sorted(items)
    return [order.index(item) for item in items]


def ranking_score(ground_truth: Sequence[str], predicted: Sequence[str], *, string_tau: bool = False) -> float:
    """EEmo-Bench's ranking score of one image, in [0, 100].

    P is the prediction read as a ranking of three (``parsing.ranked``): its first three distinct emotions, so
    an over-long answer scores as its first three and a repeat is dropped. H = 25*[g1 in P] + 15*[g2 in P] +
    10*[g3 in P]; Pi = P filtered to members of G, in predicted order; Gi = G filtered to members of Pi, in
    ground-truth order; K = 25 * (tau(Gi, Pi) + 1), 0 when |Pi| <= 1, times 2/3 when |Pi| == 2; score = H + K.
    Emotions are compared case-insensitively and without surrounding spaces ("Sadness" matches "sadness"; map
    other variants when parsing). An empty prediction scores 0; emotions outside G earn nothing.

    tau is Kendall's tau of the two orders computed on positions: for each emotion of Gi, its position in Gi
    against its position in Pi. ``string_tau=True`` reproduces the authors' code, which passed the emotion
    strings themselves to ``scipy.stats.kendalltau``: scipy ranks each sequence alphabetically and pairs them by
    index, which agrees with the positional tau for two emotions but not on every permutation of three (e.g.
    G = joy, anger, sadness and P = joy, sadness, anger: positional 1/3, alphabetical -1).
    """
    gt = [emotion.strip().lower() for emotion in ground_truth]
    guess = ranked(predicted)
    hit = sum(weight for weight, emotion in zip(RANKING_WEIGHTS, gt) if emotion in guess)
    members = set(gt)
    pi = [p for p in guess if p in members]
    gi = [g for g in gt if g in set(pi)]
    if len(pi) <= 1:
        return float(hit)
    if string_tau:
        tau = kendall_tau(_alphabetical_ranks(gi), _alphabetical_ranks(pi))
    else:
        tau = kendall_tau(list(range(len(gi))), [pi.index(g) for g in gi])
    consistency = 25.0 * (tau + 1.0)
    if len(pi) == 2:
        consistency *= 2.0 / 3.0
    return float(hit + consistency)


def random_ranking_baseline(candidates: Sequence[str], ground_truth: Sequence[str], *,
                            string_tau: bool = False) -> float:
    """The exact expected ``ranking_score`` of a random guess: the mean over every ordered choice of
    ``len(ground_truth)`` distinct ``candidates`` (7 x 6 x 5 = 210 for EEmo-Bench's three of seven emotions,
    which gives 195/7 = 27.86). By symmetry the value is the same for every ground truth drawn from
    ``candidates``, so it is also the expectation over a benchmark's images."""
    labels = [c.strip().lower() for c in candidates]
    truth = [g.strip().lower() for g in ground_truth]
    if len(set(labels)) != len(labels) or len(set(truth)) != len(truth) or not set(truth) <= set(labels):
        raise ValueError(f"need distinct candidates and a ground truth of distinct candidates, got {candidates} "
                         f"and {ground_truth}")
    guesses = list(permutations(labels, len(truth)))
    return sum(ranking_score(truth, guess, string_tau=string_tau) for guess in guesses) / len(guesses)


def accuracy(truth: Sequence[str | None], predicted: Sequence[str | None]) -> float:
    """Percent of items whose prediction equals the truth (None never matches); NaN for no items."""
    if len(truth) != len(predicted):
        raise ValueError(f"accuracy needs equal lengths, got {len(truth)} and {len(predicted)}")
    if not truth:
        return math.nan
    hits = sum(p is not None and p == t for t, p in zip(truth, predicted))
    return 100.0 * hits / len(truth)


def macro_f1(truth: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str] | None = None) -> float:
    """Macro-averaged F1 in percent over ``labels`` (default: the labels present in ``truth``).

    A prediction outside ``labels`` (or None, unparseable) is a miss for its item's true label and a false
    positive for no label, so it lowers recall without inventing a class. A label with no true item and no
    prediction has F1 0 and still counts in the average when it is listed in ``labels``."""
    if len(truth) != len(predicted):
        raise ValueError(f"macro_f1 needs equal lengths, got {len(truth)} and {len(predicted)}")
    labels = list(dict.fromkeys(labels if labels is not None else truth))
    if not labels:
        return math.nan
    scores = []
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(truth, predicted))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted))
        scores.append(0.0 if tp == 0 else 2.0 * tp / (2.0 * tp + fp + fn))
    return 100.0 * float(np.mean(scores))


def _paired(truth: Sequence[float], predicted: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    if len(truth) != len(predicted):
        raise ValueError(f"correlation needs equal lengths, got {len(truth)} and {len(predicted)}")
    keep = [i for i, p in enumerate(predicted) if p is not None and math.isfinite(p)]
    return np.asarray([truth[i] for i in keep], dtype=float), np.asarray([predicted[i] for i in keep], dtype=float)


def srcc(truth: Sequence[float], predicted: Sequence[float | None]) -> float:
    """Spearman's rank correlation over the items with a prediction (ties get average ranks); NaN with fewer
    than two such items or a constant side (no rank order to correlate)."""
    from scipy.stats import spearmanr

    x, y = _paired(truth, predicted)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def plcc(truth: Sequence[float], predicted: Sequence[float | None]) -> float:
    """Pearson's linear correlation over the items with a prediction; NaN as for ``srcc``. Computed on the raw
    predictions (no logistic fit: the paper reports plain PLCC)."""
    x, y = _paired(truth, predicted)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def probability_score(probabilities: Sequence[float], weights: Sequence[float] = PROBABILITY_WEIGHTS) -> float:
    """Expected level of probability-mode VAD: sum_i w_i * p_i with ``probabilities`` for (high, medium, low),
    renormalised to sum to 1 (they come from a softmax over just these keywords, but may be rounded)."""
    p = np.asarray(probabilities, dtype=float)
    if p.shape != (len(weights),) or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"need {len(weights)} non-negative probabilities, got {list(probabilities)}")
    return float(np.dot(p / p.sum(), weights))


def conciseness(response: str, reference: str, sigma: float = CONCISENESS_SIGMA) -> float:
    """The description's conciseness in [0, 1] from the word-count ratio r = words(response) / words(reference):
    exp(-(ln r)^2 / (2 sigma^2)), 1 at r = 1 and symmetric in r and 1/r (CONCISENESS_SIGMA). An empty response
    scores 0; an empty reference gives NaN (nothing to compare with)."""
    n_response, n_reference = len(response.split()), len(reference.split())
    if n_reference == 0:
        return math.nan
    if n_response == 0:
        return 0.0
    return math.exp(-(math.log(n_response / n_reference) ** 2) / (2.0 * sigma**2))


def description_score(completeness: float, precision: float, relevance: float, concise: float) -> float:
    """The description score in percent: the mean of the three judge scores (each 0-2, so halved) and the
    conciseness (0-1). NaN when any part is NaN (e.g. the judge gave no valid round)."""
    parts = [completeness / 2.0, precision / 2.0, relevance / 2.0, concise]
    return 100.0 * float(np.mean(parts)) if all(math.isfinite(p) for p in parts) else math.nan
