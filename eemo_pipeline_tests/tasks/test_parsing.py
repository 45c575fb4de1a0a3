"""Answer parsing: last answer block wins, case and synonym tolerant, unparseable is None."""

import pytest

from eemo_pipeline.tasks.parsing import answer_text, match_label, parse_choice, parse_ranking

OPTIONS = {"A": "Disgust", "B": "Fear", "C": "Anger"}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("<think>maybe A</think><answer>B</answer>", "B"),
        ("<answer>A</answer> on reflection <answer>C</answer>", "C"),  # last block wins
        ("B: Fear.", "B"),
        ("The answer is (C).", "C"),
        ("**Option for Image 1: B: No** ... Overall choice: **A: Yes**", "A"),  # last marker wins
        ("I would say the image is fearful.", "B"),  # option text through a synonym
        ("a", "A"),  # a bare lower-case letter
        ("A strong feeling of anger here", "C"),  # 'A' as an article is not a marker
        ("I cannot tell.", None),
        ("", None),
    ],
)
def test_parse_choice(reply, expected):
    assert parse_choice(reply, OPTIONS) == expected


def test_parse_choice_prefers_the_longer_option_text_at_the_same_place():
    assert parse_choice("Not sure.", {"A": "Sure", "B": "Not sure"}) == "B"


def test_match_label_and_ranking():
    assert match_label("Dominant emotion: SAD", ["amusement", "sad"]) == "sad"
    assert match_label("Dominant emotion: sadness", ["amusement", "sad"]) == "sad"  # canonical word finds 'sad'
    assert match_label("Dominant emotion: happy", ["joy", "fear"]) == "joy"
    assert match_label("Dominant emotion: boredom", ["joy", "fear"]) is None
    assert parse_ranking(answer_text("x <answer>Emotion ranking: Joyful, [Sad], fear</answer>")) == ["joy", "sadness", "fear"]
    assert answer_text("no tags at all ") == "no tags at all"
