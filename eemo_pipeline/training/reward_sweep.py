"""The reward-hacking sweep: for every registered task, no constant answer earns as much in ``total`` as an
informative one (issue 18).

GRPO raises whatever ``total_reward`` pays most on average. A constant answer (the same text for every image)
that out-earns an answer which knows something of the image would be learned instead of the task, so each
task's probe (``tasks/probes.py``, ``Task.probe``) lists its constant and informative answers and this module
scores them on the same drawn truths, through ``total_reward`` as the trainer calls it. A probe's ``spreads``
repeat this on truths drawn otherwise (the ranking's skewed toward EEmo-Bench-like common rankings), where the
informative answers may fill what they do not know from the truths' prior.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from eemo_pipeline.tasks.probes import TruthSpread
from eemo_pipeline.tasks.registry import TASKS, Task
from eemo_pipeline.training.rewards import total_reward

SWEEP_THINK = "The image shows a scene."
"""The think block of every swept reply (the format reward needs one; its content earns nothing)."""


def swept_reply(answer: str) -> str:
    """A reply in the trained format around ``answer`` (the text inside the answer block)."""
    return f"<think>{SWEEP_THINK}</think><answer>{answer}</answer>"


def mean_total(answers: list[str], truths: list[str], task: str, sub_task: str) -> float:
    """The mean ``total_reward`` of ``answers[i]`` against ``truths[i]``."""
    totals = total_reward([swept_reply(answer) for answer in answers], solution=truths, task=task, sub_task=sub_task)
    return sum(totals) / len(totals)


@dataclass(frozen=True)
class SweepResult:
    """One task and sub_task (and truth spread: None for the probe's own truths, else a ``TruthSpread`` name):
    the mean ``total`` of every constant answer and of every informative answer (by its probe name) over the
    same ``truths``."""

    task: str
    sub_task: str
    truths: list[str]
    constants: dict[str, float]
    informative: dict[str, float]
    spread: str | None = None

    @property
    def name(self) -> str:
        return f"{self.task}/{self.sub_task}" + (f" [{self.spread}]" if self.spread else "")

    @property
    def best_constant(self) -> tuple[str, float]:
        return max(self.constants.items(), key=lambda item: item[1])

    @property
    def weakest_informative(self) -> tuple[str, float]:
        return min(self.informative.items(), key=lambda item: item[1])

    @property
    def holds(self) -> bool:
        """Every informative answer earns more than the best constant one."""
        return self.weakest_informative[1] > self.best_constant[1]


def sweep(task: Task, sub_task: str, n: int = 400, seed: int = 0, spread: TruthSpread | None = None) -> SweepResult:
    """Draw ``n`` truths with ``task.probe`` (or with ``spread``; seeded), then score each constant answer and each
    informative answer (the probe's, or the spread's given the truths) on them."""
    rng = random.Random(f"{task.name}/{sub_task}/{seed}" + (f"/{spread.name}" if spread else ""))
    truths = (spread or task.probe).truths(sub_task, rng, n)
    kinds = spread.informative(truths) if spread else task.probe.informative
    constants = {answer: mean_total([answer] * n, truths, task.name, sub_task)
                 for answer in task.probe.constants(sub_task, truths)}
    informative = {kind.name: mean_total([kind.answer(truth, sub_task, rng) for truth in truths], truths, task.name,
                                         sub_task)
                   for kind in kinds}
    return SweepResult(task.name, sub_task, truths, constants, informative, spread.name if spread else None)


def sweep_all(n: int = 400, seed: int = 0) -> list[SweepResult]:
    """``sweep`` over every registered task, every sub_task its probe names and every truth spread: the probe's
    own, then each of its ``spreads``."""
    return [sweep(task, sub_task, n, seed, spread) for task in TASKS.values() for sub_task in task.probe.sub_tasks()
            for spread in (None, *task.probe.spreads)]
