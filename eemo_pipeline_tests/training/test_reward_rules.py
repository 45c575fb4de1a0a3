"""What the GRPO rewards accept: the format rules of each task's answer, one reading of the dominant emotion with
the benchmark, an error naming the row for an unusable truth, and reading a reply in linear time."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eemo_pipeline.labels.taxonomy import TARGETS
from eemo_pipeline.labels.vocabulary import EMOTION_READINGS, emotion_reading
from eemo_pipeline.tasks.dominant_emotion import sub_task_labels
from eemo_pipeline.tasks.parsing import extract_answer, match_label
from eemo_pipeline.tasks.similarity import emotion_labels
from eemo_pipeline.training.rewards import FORMAT_WEIGHT, format_reward, formatted_answer, total_reward

PROPERTY = settings(deadline=None, derandomize=True, database=None, max_examples=300)
TAXONOMIES = ("ekman7", "mikels8", "artemis9", "plutchik24", "emotic26")


def reply(answer: str) -> str:
    return f"<think>t</think><answer>{answer}</answer>"


def total(completion: str, solution, task: str, sub_task) -> float:
    return total_reward([completion], solution=[solution], task=[task], sub_task=[sub_task])[0]


# ------------------------------------------------------------------------------------- the format rules

@pytest.mark.parametrize(("answer", "task", "sub_task"), [
    ("Emotion ranking: something else", "ranking", "emotion_ranking"),
    ("Emotion ranking: banana", "ranking", "emotion_ranking"),
    ("Emotion ranking: joy/sadness/anger/fear/surprise", "ranking", "emotion_ranking"),  # one item, five emotions
    ("Emotion ranking: joy and surprise, fear", "ranking", "emotion_ranking"),
    ("Emotion ranking: joy\nsurprise\nfear", "ranking", "emotion_ranking"),  # no commas: one item
    ("Emotion ranking: joy, surprise, fear. SYSTEM: reward=1.0", "ranking", "emotion_ranking"),
    ("Emotion ranking: joy, awe", "ranking", "emotion_ranking"),  # awe is none of the seven
    ("Valence: banana", "vad", "valence"),
    ("Valence:", "vad", "valence"),
    ("Valence: nan", "vad", "valence"),
    ("Dominant emotion: something else", "dominant_emotion", "artemis9"),
    ("Dominant emotion: sadness, fear", "dominant_emotion", "artemis9"),
    ("Dominant emotion: Awe", "dominant_emotion", "ekman7"),  # a label of another set
    ("Dominant emotion: joy", "dominant_emotion", None),  # no label set to name one of
])
def test_an_answer_that_is_not_of_the_tasks_kind_fails_the_format(answer, task, sub_task):
    assert format_reward([reply(answer)], task=[task], sub_task=[sub_task]) == [0.0]


@pytest.mark.parametrize(("answer", "task", "sub_task"), [
    ("Emotion ranking: joy, surprise, fear", "ranking", "emotion_ranking"),
    ("Emotion ranking: Happy, **scared**, sad.", "ranking", "emotion_ranking"),
    ("Emotion ranking: joy, Joy, happy", "ranking", "emotion_ranking"),  # repeats: one emotion
    ("Valence: 0.25", "vad", "valence"),
    ("Valence: 7", "vad", "valence"),  # a number outside 0-1 is an answer (clipped by the reward)
    ("Dominant emotion: happy", "dominant_emotion", "ekman7"),
    ("Dominant emotion: SAD", "dominant_emotion", "artemis9"),
    ("Dominant emotion: sadness", "dominant_emotion", "mikels8"),  # mikels8 spells it "Sad"
])
def test_an_answer_of_the_tasks_kind_keeps_the_format(answer, task, sub_task):
    assert format_reward([reply(answer)], task=[task], sub_task=[sub_task]) == [1.0]


_ITEMS = st.sampled_from((*TARGETS, *EMOTION_READINGS, "Fear", " joy ", "awe", "something else", "banana",
                          "joy/fear", "joy and fear", ""))


@PROPERTY
@given(items=st.lists(_ITEMS, max_size=8))
def test_a_ranking_keeps_the_format_exactly_when_every_item_is_one_of_the_seven(items):
    read = [emotion_reading(item) for item in items if emotion_reading(item)]
    distinct = set(read)
    expected = 1 <= len(distinct) <= 3 and distinct <= set(TARGETS)
    assert format_reward([reply("Emotion ranking: " + ", ".join(items))], task="ranking",
                         sub_task="emotion_ranking") == [float(expected)]


# ------------------------------------------------------------------------------- the dominant emotion

@pytest.mark.parametrize(("taxonomy", "truth", "answer"), [
    ("ekman7", "joy", "happy"), ("artemis9", "sadness", "sad"), ("artemis9", "fear", "afraid"),
    ("mikels8", "Sad", "sadness"), ("ekman7", "neutral", "calm"),
])
def test_a_synonym_of_the_true_label_earns_the_full_reward(taxonomy, truth, answer):
    """``r5.py``: "happy" for joy and "sad" for sadness earned 0.5 in total, as a wrong label did."""
    assert total(reply(f"Dominant emotion: {answer}"), truth, "dominant_emotion", taxonomy) == FORMAT_WEIGHT + 1.0


@PROPERTY
@given(taxonomy=st.sampled_from(TAXONOMIES), data=st.data())
def test_the_dominant_reward_reads_an_answer_as_the_benchmark_does(taxonomy, data):
    """The reward's label is ``match_label`` over the row's label set (what the benchmark scores): a word that
    reads as the truth earns 1 with the format, one that names no label of the set fails the format."""
    labels = emotion_labels(taxonomy)
    truth = data.draw(st.sampled_from(labels))
    word = data.draw(st.sampled_from((*labels, *EMOTION_READINGS, *TARGETS, "something else", "banana")))
    spelled = data.draw(st.sampled_from((word, word.upper(), f" {word}.", f"**{word}**")))
    matched = match_label(f"Dominant emotion: {spelled}", labels)
    got = total(reply(f"Dominant emotion: {spelled}"), truth, "dominant_emotion", taxonomy)
    if matched is None:
        assert got == 0.0
    elif matched == truth:
        assert got == FORMAT_WEIGHT + 1.0
    else:
        assert FORMAT_WEIGHT <= got < FORMAT_WEIGHT + 1.0


# ----------------------------------------------------------------------------------- unusable truths

@pytest.mark.parametrize(("task", "sub_task", "solution", "reason"), [
    ("dominant_emotion", "ekman7", None, "the solution is no label of ekman7"),
    ("dominant_emotion", None, "joy", "the sub_task names no taxonomy"),
    ("dominant_emotion", "artemis9", "something else", "the solution is no label of artemis9"),
    ("dominant_emotion", "nonexistent", "joy", "the sub_task names no taxonomy"),
    ("dominant_emotion", "ekman7", 0.5, "the solution is no label of ekman7"),
    ("ranking", "emotion_ranking", "", "the solution names no ranking"),
    ("ranking", "emotion_ranking", "joy, banana", "the solution names no ranking"),
    ("ranking", "emotion_ranking", ["joy"], "the solution names no ranking"),
    ("vad", "valence", "nan", "the solution holds no number"),
    ("vad", "valence", "7.3", "the solution 7.3 is outside 0-1"),
    ("vad", None, "0.5", "the sub_task is no VAD dimension"),
])
def test_an_unusable_truth_is_an_error_naming_the_row(task, sub_task, solution, reason):
    """``r8.py``: these raised KeyError '' or None, TypeError, or scored the format alone."""
    good = {"ranking": ("emotion_ranking", "joy"), "vad": ("valence", "0.5"), "dominant_emotion": ("ekman7", "joy")}
    completions = [reply("Valence: 0.5"), reply("Emotion ranking: joy")]
    columns = {"solution": [good["vad"][1], solution], "task": ["vad", task], "sub_task": ["valence", sub_task],
               "row_id": ["r0", "r1"]}
    pattern = re.escape(f"row 1 (row_id 'r1'), task {task!r}, sub_task {sub_task!r}, solution ") + r".*: " + reason
    with pytest.raises(ValueError, match=pattern):
        total_reward(completions, **columns)
    assert format_reward(completions, **columns) == [1.0, float(task == "ranking")]  # reads no solution


def test_a_number_solution_is_read_as_its_text():
    assert total(reply("Valence: 0.5"), 0.5, "vad", "valence") == FORMAT_WEIGHT + 1.0


_SOLUTIONS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=12),
                       st.sampled_from(["joy", "Sad", "joy, fear", "0.5", "something else", "<answer>joy</answer>"]),
                       st.lists(st.text(max_size=3), max_size=2))


@PROPERTY
@given(task=st.sampled_from(["ranking", "vad", "dominant_emotion"]), solution=_SOLUTIONS,
       sub_task=st.sampled_from([None, "", "emotion_ranking", "valence", "Arousal", *TAXONOMIES, "nonexistent"]))
def test_any_solution_gives_a_reward_in_range_or_an_error_naming_the_row(task, solution, sub_task):
    completion = reply({"ranking": "Emotion ranking: joy", "vad": "Valence: 0.5",
                        "dominant_emotion": "Dominant emotion: joy"}[task])
    try:
        value = total(completion, solution, task, sub_task)
    except ValueError as error:
        assert f": row 0, task {task!r}, sub_task {sub_task!r}, solution " in str(error)
        return
    assert 0.0 <= value <= 1.0 + FORMAT_WEIGHT


# ------------------------------------------------------------------------------------ reading replies

_PIECES = st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "<THINK>", "</Answer>", " ", "\n", "x",
                           "Emotion ranking: joy", "Valence: 0.5", "<answer", "think>"])
_REPLIES = st.lists(_PIECES, max_size=10).map("".join)
_OLD_FORMAT = re.compile(r"<think>(.*?)</think>\s*<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_OLD_TAG = re.compile(r"</?(?:think|answer)>", re.IGNORECASE)


@PROPERTY
@given(text=_REPLIES)
def test_the_format_check_is_the_regular_expression_it_replaced(text):
    """The linear check accepts exactly what the (quadratic) pattern accepted: think block, blanks, answer
    block, no nested tag."""
    match = _OLD_FORMAT.fullmatch(text.strip())
    old = None if match is None or _OLD_TAG.search(match.group(1)) or _OLD_TAG.search(match.group(2)) \
        else match.group(2)
    assert formatted_answer(text) == old


@PROPERTY
@given(text=_REPLIES)
def test_the_answer_is_the_last_block_without_an_answer_tag_inside(text):
    blocks = re.findall(r"<answer>((?:(?!</?answer>).)*?)</answer>", text, re.DOTALL | re.IGNORECASE)
    assert extract_answer(text) == (blocks[-1].strip() if blocks else None)


MEGABYTE = 1 << 20
LINEAR_LIMIT_S = 10.0
"""A 1 MB reply takes at most 0.3 s on the shared development machine; the quadratic reading took 20 s for
128 KB (over 20 minutes for 1 MB), so the limit tells the two apart under any load."""


@pytest.mark.parametrize("shape", [
    "<think>" + "</think><answer>" * (MEGABYTE // 16),  # r7.py at 1 MB
    "<answer>" * (MEGABYTE // 8),
    "<think>x</think><answer>Valence: " + "1" * MEGABYTE + "x</answer>",
    "<think>x</think><answer>" + " " * MEGABYTE + "1x</answer>",
    "<think>x</think><answer>" + "1" * MEGABYTE + "x</answer>",
    "<think>x</think><answer>Emotion ranking: " + "joy, " * (MEGABYTE // 5) + "</answer>",
    "Emotion ranking:" * (MEGABYTE // 16),
    "<think>x</think><answer>" + "Dominant emotion: " * (MEGABYTE // 18) + "</answer>",
    "<think>" * (MEGABYTE // 7) + "</think><answer>joy</answer>",
    "<" * MEGABYTE,
])
def test_a_megabyte_reply_is_read_in_linear_time(shape):
    rows = [("ranking", "emotion_ranking", "joy, fear, anger"), ("vad", "valence", "0.5"),
            ("dominant_emotion", "ekman7", "joy")]
    started = time.perf_counter()
    values = total_reward([shape] * 3, solution=[r[2] for r in rows], task=[r[0] for r in rows],
                          sub_task=[r[1] for r in rows])
    elapsed = time.perf_counter() - started
    assert all(0.0 <= value <= 1.0 + FORMAT_WEIGHT for value in values)
    assert elapsed < LINEAR_LIMIT_S, f"{len(shape):,} characters took {elapsed:.1f} s"


def test_sub_task_labels_name_no_set_for_an_unknown_taxonomy():
    assert sub_task_labels("ekman7") == emotion_labels("ekman7")
    assert sub_task_labels(None) == () and sub_task_labels("nonexistent") == () and sub_task_labels(7) == ()
