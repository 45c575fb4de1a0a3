"""What the reward-hacking sweep asks of a task (``Task.probe``; the sweep is ``training/reward_sweep.py``); each
task's probe is in its module.

A probe draws ground truths the way a task's training rows spread, lists the constant answers a policy could
settle on without looking at the image, and writes informative answers: answers that know something of the
truth and nothing more than their name says. GRPO's ``total`` reward must pay every informative answer more,
on average over the truths, than the best constant one; otherwise GRPO learns the constant.

Answers are the text inside ``<answer>...</answer>``, identifier included; truths are bare solutions as in
EEmoDB-Assess (``"joy, surprise, fear"``, ``"0.7321"``, ``"Amusement"``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Informative:
    """An answer that knows something of the truth: ``answer(truth, sub_task, rng)``; ``means`` says what."""

    name: str
    means: str
    answer: Callable[[str, str, random.Random], str]


@dataclass(frozen=True)
class TruthSpread:
    """Another way a task's truths may spread, e.g. skewed toward a few common answers as real data is. On its
    ``truths(sub_task, rng, n)`` the probe's constants (given these truths) are scored against the answers
    ``informative(truths)`` returns, which may use the truths' statistics as the constants may (a policy that
    knows part of the answer and fills the rest from the prior); each must still out-earn every constant."""

    name: str
    means: str
    truths: Callable[[str, random.Random, int], list[str]]
    informative: Callable[[Sequence[str]], tuple[Informative, ...]]


@dataclass(frozen=True)
class HackingProbe:
    """One task's sweep: ``sub_tasks()`` to sweep; ``truths(sub_task, rng, n)`` draws n solutions;
    ``constants(sub_task, truths)`` are the answers that ignore the image (they may use the truths' statistics, as
    a policy may learn the training mean); ``informative`` answers must each out-earn every constant. ``spreads``
    are further truth spreads swept the same way (``TruthSpread``)."""

    sub_tasks: Callable[[], tuple[str, ...]]
    truths: Callable[[str, random.Random, int], list[str]]
    constants: Callable[[str, Sequence[str]], list[str]]
    informative: tuple[Informative, ...]
    spreads: tuple[TruthSpread, ...] = ()


def balanced(values: Sequence[str], rng: random.Random, n: int) -> list[str]:
    """``n`` draws that take every value equally often (as nearly as ``n`` allows), in random order: over a
    multiple of ``len(values)`` draws a constant's mean is its exact expectation."""
    shuffled = list(values)
    rng.shuffle(shuffled)
    draws = [shuffled[i % len(shuffled)] for i in range(n)]
    rng.shuffle(draws)
    return draws
