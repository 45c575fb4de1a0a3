"""How a ranking answer is read, alike in parsing, the GRPO rewards and the benchmark (questions.RANKING_LENGTH):
repeats are dropped, over three distinct emotions or an item that is none of the seven fails the format, and the
score is that of the first three."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from eemo_pipeline.labels.taxonomy import TARGETS
from eemo_pipeline.labels.vocabulary import EMOTION_READINGS, emotion_reading
from eemo_pipeline.tasks import ranking
from eemo_pipeline.tasks.metrics import ranking_score
from eemo_pipeline.tasks.parsing import parse_ranking, ranked
from eemo_pipeline.tasks.questions import RANKING_LENGTH
from eemo_pipeline.training.rewards import FORMAT_WEIGHT, format_reward, total_reward

PROPERTY = settings(deadline=None, derandomize=True, database=None, max_examples=200)
WORDS = st.sampled_from((*TARGETS, *EMOTION_READINGS, "Fear", " joy ", "awe", "something else", ""))
RANKINGS = st.permutations(TARGETS).map(lambda order: list(order[:RANKING_LENGTH]))


def reply(words: list[str]) -> str:
    return f"<think>t</think><answer>Emotion ranking: {', '.join(words)}</answer>"


@PROPERTY
@given(words=st.lists(WORDS, max_size=12))
def test_parse_ranking_keeps_each_emotion_once_at_its_first_place(words):
    parsed = parse_ranking("Emotion ranking: " + ", ".join(words))
    expected = list(dict.fromkeys(emotion_reading(w) for w in words if emotion_reading(w)))
    assert parsed == expected and len(set(parsed)) == len(parsed)
    assert ranked(parsed) == expected[:RANKING_LENGTH]


@PROPERTY
@given(truth=RANKINGS, words=st.lists(WORDS, max_size=12))
def test_the_score_is_the_score_of_the_first_three_distinct_emotions(truth, words):
    parsed = parse_ranking("Emotion ranking: " + ", ".join(words))
    score = ranking_score(truth, parsed)
    assert score == ranking_score(truth, parsed[:RANKING_LENGTH])
    assert 0.0 <= score <= 100.0
    # the benchmark reads the reply the same way and reports the three it scored
    read = ranking.read_ranking({"ranking": truth}, "", "generate", reply(words), None)
    assert read["predicted_value"] == score and read["parsed"] == (", ".join(parsed[:RANKING_LENGTH]) or None)


@PROPERTY
@given(truth=RANKINGS, words=st.lists(WORDS, max_size=12))
def test_the_format_and_total_rewards_apply_the_ranking_rule(truth, words):
    """Well formed: one to three distinct emotions, every item one of the seven (a stranger such as "awe" or
    "something else" anywhere fails the format); a malformed answer earns 0 in total whatever it hits."""
    parsed = parse_ranking("Emotion ranking: " + ", ".join(words))
    columns = {"solution": [", ".join(truth)], "task": ["ranking"], "sub_task": ["emotion_ranking"]}
    fmt, total = format_reward([reply(words)], **columns)[0], total_reward([reply(words)], **columns)[0]
    well_formed = 1 <= len(parsed) <= RANKING_LENGTH and set(parsed) <= set(TARGETS)
    assert fmt == float(well_formed)
    if not well_formed:
        assert total == 0.0
    else:
        expected = (ranking_score(truth, parsed) / 100) ** 2
        assert abs(total - (FORMAT_WEIGHT + expected)) < 1e-12


@PROPERTY
@given(truth=RANKINGS, three=RANKINGS, extra=st.lists(st.sampled_from(TARGETS), min_size=1, max_size=4))
def test_appending_emotions_never_changes_the_benchmark_score(truth, three, extra):
    assert ranking_score(truth, three + extra) == ranking_score(truth, three)
    assert ranking_score(truth, three[:1] + three[:1] + three[1:]) == ranking_score(truth, three)  # a repeat
