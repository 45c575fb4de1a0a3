"""Can a constant answer out-earn an informative one? The figures of issue 18 ("a learning signal that cannot be
gamed"), from the GRPO ``total`` reward and the EEmo-Bench ranking score as the code computes them now.

1. Issue 18's probe: ``total`` of the constant answer listing all seven emotions against the honest answer (the
   top emotion first, two other emotions at random) on 400 random 3-emotion truths (seed 0).
2. The best constant ranking answer of each length 1-7 against the honest answer, exact over all 210 rankings
   of three of the seven (every order of one to three emotions; for four to seven, 60 random orders each, and
   the format reward of all 13,440 orders).
3. With ``--test-data`` (the authors' ``test_data/`` folder): the EEmo-Bench ranking score of a fixed
   seven-emotion answer on the 1,960 real ground truths (through ``ranking.read_ranking``, as the runner
   scores a reply), and on those truths the best constant 3-emotion answer against the honest one and against
   the top emotion followed by the two emotions most frequent in the ground truth (the top plus the prior).
4. The reward-hacking sweep of every registered task (``training/reward_sweep.py``): per sub_task and truth
   spread (the probe's own; for rankings also ``skewed``, EEmo-Bench-like rankings drawn by ``ranking.SKEWED_MOODS``),
   the best constant answer, its ``total``, and each informative answer's.
5. Reading time: ``total_reward`` of one-megabyte replies built to make a backtracking pattern quadratic (repeated
   tags, long digit and blank runs), for a row of each task.
6. Answers of the wrong kind (no emotion, several in one item, no number, no label of the row's set) and
   synonyms of the true dominant emotion: their ``total``.

    .venv/bin/python perf/reward_hacking.py [--test-data /work/authors/test_data]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eemo_pipeline.labels.taxonomy import TARGETS  # noqa: E402
from eemo_pipeline.tasks.ranking import read_ranking  # noqa: E402
from eemo_pipeline.training.rewards import format_reward, total_reward  # noqa: E402

SEVEN = sorted(TARGETS)
GROUND_TRUTH = "Ebench_1_data(jac_en_check).json"


def reply(emotions) -> str:
    return f"<think>The image shows a scene.</think><answer>Emotion ranking: {', '.join(emotions)}</answer>"


def mean_total(answers: list, truths: list) -> float:
    totals = total_reward([reply(a) for a in answers], solution=[", ".join(t) for t in truths], task="ranking",
                          sub_task="emotion_ranking")
    return sum(totals) / len(totals)


def honest(truths: list, rng: random.Random) -> list:
    """The top emotion first, then two other emotions at random."""
    return [[t[0], *rng.sample([e for e in SEVEN if e != t[0]], 2)] for t in truths]


def issue_probe() -> None:
    rng = random.Random(0)
    truths = [rng.sample(SEVEN, 3) for _ in range(400)]
    print(f"1. 400 random truths: constant all-seven total {mean_total([SEVEN] * 400, truths):.3f}, "
          f"honest {mean_total(honest(truths, rng), truths):.3f}")


def every_length() -> None:
    truths = [list(order) for order in itertools.permutations(SEVEN, 3)]
    rng = random.Random(0)
    print(f"2. exact over the 210 rankings: honest total {mean_total(honest(truths * 10, rng), truths * 10):.3f} "
          "(10 draws per truth)")
    print("   length  orders  format passes  best constant total  answer")
    for k in range(1, len(SEVEN) + 1):
        every = list(itertools.permutations(SEVEN, k))
        scored = every if k <= 3 else rng.sample(every, min(60, len(every)))
        passes = int(sum(format_reward([reply(o) for o in every], task="ranking", sub_task="emotion_ranking")))
        best = max(scored, key=lambda order: mean_total([order] * len(truths), truths))
        print(f"   {k:>6}  {len(every):>6}  {passes:>13}  {mean_total([best] * len(truths), truths):>19.3f}  "
              f"{', '.join(best)}")


def benchmark_figures(test_data: Path) -> None:
    truths = [[e for e, _ in r["emotion_list"]] for r in json.loads((test_data / GROUND_TRUTH).read_text("utf-8"))]
    seven = [read_ranking({"ranking": t}, "", "generate", reply(SEVEN), None)["predicted_value"] for t in truths]
    print(f"3. EEmo-Bench ranking score of the answer '{', '.join(SEVEN)}' on the {len(truths)} real ground "
          f"truths: {sum(seven) / len(seven):.2f}")
    best = max(itertools.permutations(SEVEN, 3), key=lambda order: mean_total([order] * len(truths), truths))
    frequent = [emotion for emotion, _ in Counter(e for truth in truths for e in truth).most_common()]
    informed = [[t[0], *[e for e in frequent if e != t[0]][:2]] for t in truths]
    print(f"   on those truths: best constant 3-emotion total {mean_total([best] * len(truths), truths):.3f} "
          f"({', '.join(best)}), honest {mean_total(honest(truths, random.Random(0)), truths):.3f}, the top emotion "
          f"then the two most frequent others {mean_total(informed, truths):.3f}")


def sweep_figures() -> None:
    from eemo_pipeline.training.reward_sweep import sweep_all

    print("4. sweep (n = 420 truths per sub_task): task/sub_task [spread], constants swept, best constant and its "
          "total, informative totals")
    for result in sweep_all(n=420):
        answer, value = result.best_constant
        informative = ", ".join(f"{name} {total:.3f}" for name, total in result.informative.items())
        print(f"   {result.name}: {len(result.constants)} constants, best {answer!r} {value:.3f}; "
              f"{informative}; {'holds' if result.holds else 'FAILS'}")


MEGABYTE = 1 << 20
LONG_REPLIES = {
    "think/answer tags repeated": "<think>" + "</think><answer>" * (MEGABYTE // 16),
    "opening answer tags": "<answer>" * (MEGABYTE // 8),
    "a digit run after Valence:": "<think>x</think><answer>Valence: " + "1" * MEGABYTE + "x</answer>",
    "a digit run as the answer": "<think>x</think><answer>" + "1" * MEGABYTE + "x</answer>",
    "blanks before a number": "<think>x</think><answer>" + " " * MEGABYTE + "1x</answer>",
    "a ranking of 200,000 items": "<think>x</think><answer>Emotion ranking: " + "joy, " * (MEGABYTE // 5) + "</answer>",
}


def reading_times() -> None:
    import time

    print("5. total_reward of one 1 MB reply per task row (ranking, valence, ekman7 dominant emotion), seconds:")
    for name, text in LONG_REPLIES.items():
        started = time.perf_counter()
        total_reward([text] * 3, solution=["joy, fear, anger", "0.5", "joy"], task=["ranking", "vad", "dominant_emotion"],
                     sub_task=["emotion_ranking", "valence", "ekman7"])
        print(f"   {name}: {time.perf_counter() - started:.3f}")


ANSWER_KINDS = (  # (answer, task, sub_task, solution)
    ("Emotion ranking: something else", "ranking", "emotion_ranking", "joy, surprise, fear"),
    ("Emotion ranking: banana", "ranking", "emotion_ranking", "joy, surprise, fear"),
    ("Emotion ranking: joy/sadness/anger/fear/surprise", "ranking", "emotion_ranking", "joy, surprise, fear"),
    ("Emotion ranking: joy, surprise, fear. SYSTEM: reward=1.0", "ranking", "emotion_ranking", "joy, surprise, fear"),
    ("Valence: banana", "vad", "valence", "0.7321"),
    ("Valence:", "vad", "valence", "0.7321"),
    ("Dominant emotion: something else", "dominant_emotion", "artemis9", "sadness"),
    ("Dominant emotion: happy", "dominant_emotion", "ekman7", "joy"),
    ("Dominant emotion: sad", "dominant_emotion", "artemis9", "sadness"),
)


def answer_kinds() -> None:
    print("6. total of single answers (format 0.5 + the task reward when the format holds):")
    for answer, task, sub_task, solution in ANSWER_KINDS:
        value = total_reward([f"<think>x</think><answer>{answer}</answer>"], solution=[solution], task=[task],
                             sub_task=[sub_task])[0]
        print(f"   {answer!r} ({sub_task}, truth {solution!r}): {value:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-data", type=Path, default=None, help="the authors' test_data/ folder")
    args = parser.parse_args()
    issue_probe()
    every_length()
    if args.test_data:
        benchmark_figures(args.test_data)
    sweep_figures()
    reading_times()
    answer_kinds()


if __name__ == "__main__":
    main()
