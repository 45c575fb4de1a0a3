"""Rewards: hand-computed ranking scores, parsing, format, VAD funnel, emotion similarity, TRL signature."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eemo_pipeline.tasks import similarity as S
from eemo_pipeline.tasks import vad as T
from eemo_pipeline.tasks.metrics import kendall_tau, ranking_score
from eemo_pipeline.tasks.parsing import extract_answer, parse_dominant, parse_ranking, parse_value
from eemo_pipeline.training import rewards as R
from eemo_pipeline.training.embeddings import emotion_definitions
from eemo_pipeline.vad.lexicon import LEXICON_ENV, write_sample_lexicon
from eemo_pipeline_tests.floats import assert_floats_close

G = ["joy", "surprise", "fear"]
ranking_reward = R.REWARD_FUNCTIONS["ranking"]
vad_reward = R.REWARD_FUNCTIONS["vad"]
emotion_similarity_reward = R.REWARD_FUNCTIONS["emotion_similarity"]


def reply(answer: str, think: str = "The image shows a party.") -> str:
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


@pytest.fixture
def sample_lexicon(tmp_path, monkeypatch):
    path = tmp_path / "warriner.csv"
    write_sample_lexicon(path)
    monkeypatch.setenv(LEXICON_ENV, str(path))
    S.clear_similarity_cache()
    yield path
    S.clear_similarity_cache()


# ------------------------------------------------------------------------------------- ranking score

@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        (["joy", "surprise", "fear"], 100.0),  # H 50 + K 25 * (1 + 1)
        (["fear", "surprise", "joy"], 50.0),  # H 50 + K 25 * (-1 + 1)
        (["joy", "fear", "sadness"], 35 + 50 * 2 / 3),  # H 25 + 10, Pi = (joy, fear) in order: K 50 * 2/3
        (["fear", "joy", "anger"], 35.0),  # two hits reversed: tau -1, K 0
        (["surprise", "anger", "sadness"], 15.0),  # one hit: K 0
        (["anger", "sadness", "neutral"], 0.0),  # no hit
        (["joy", "joy", "surprise", "fear"], 100.0),  # duplicates are dropped from Pi, H counts membership
        (["surprise", "joy", "surprise"], 40.0),  # H 25 + 15, Pi = (surprise, joy) reversed: K 0
        ([], 0.0),
        (["joy"], 25.0),  # |Pi| = 1: K 0
        (["surprise", "fear"], 25 + 50 * 2 / 3),
        (["anger", "surprise", "joy"], 40.0),  # H 25 + 15, Pi = (surprise, joy) reversed: K 0
        (["joy", "anger", "surprise", "fear"], 40 + 50 * 2 / 3),  # over-long: its first three, fear not counted
        (["anger", "joy", "neutral", "surprise", "fear", "sadness"], 25.0),  # all six listed: only anger, joy, neutral
    ],
)
def test_ranking_score_hand_computed(predicted, expected):
    assert ranking_score(G, predicted) == pytest.approx(expected)


def test_string_tau_quirk_differs_on_a_permutation():
    gt, predicted = ["joy", "anger", "sadness"], ["joy", "sadness", "anger"]
    # positions: joy (0, 0), anger (1, 2), sadness (2, 1): 2 concordant, 1 discordant -> tau 1/3
    assert ranking_score(gt, predicted) == pytest.approx(50 + 25 * (1 / 3 + 1))
    # alphabetical ranks paired by index: (1, 1), (0, 2), (2, 0) -> all 3 pairs discordant -> tau -1
    assert ranking_score(gt, predicted, string_tau=True) == pytest.approx(50.0)
    # both agree on two emotions and on the identity
    assert ranking_score(gt, ["anger", "joy"], string_tau=True) == ranking_score(gt, ["anger", "joy"])
    assert ranking_score(gt, gt, string_tau=True) == 100.0


def test_kendall_tau():
    assert kendall_tau([0, 1, 2], [0, 1, 2]) == 1.0
    assert kendall_tau([0, 1, 2], [2, 1, 0]) == -1.0
    with pytest.raises(ValueError):
        kendall_tau([0], [0])


# -------------------------------------------------------------------------------------------- parsing

def test_extract_answer_last_block_wins():
    text = "<answer>Emotion ranking: fear</answer><think>hm</think><ANSWER> Emotion ranking: joy </ANSWER>"
    assert extract_answer(text) == "Emotion ranking: joy"
    assert extract_answer("no tags") is None
    assert extract_answer("<answer>unterminated") is None


def test_parse_ranking_case_and_variants():
    assert parse_ranking("Emotion ranking: Joyful, SAD, angry.") == ["joy", "sadness", "anger"]
    assert parse_ranking("emotion ranking:happy , Scared,, surprised") == ["joy", "fear", "surprise"]
    assert parse_ranking("Emotion ranking: Disgusted, calm, none") == ["disgust", "neutral"]  # a repeat is dropped
    assert parse_ranking("Emotion ranking: joy, fear, happy, anger, sad") == ["joy", "fear", "anger", "sadness"]
    assert parse_ranking("joy, surprise, fear") == G  # a bare solution
    assert parse_ranking(None) == [] and parse_ranking("Emotion ranking:") == []


def test_parse_value_and_dominant():
    assert parse_value("Valence: 0.7321", "valence") == 0.7321
    assert parse_value("valence:.5", "Valence") == 0.5
    assert parse_value("Arousal: 0.2 then Arousal: 0.4", "arousal") == 0.4
    assert parse_value("0.1234", "dominance") == 0.1234  # a bare solution
    assert parse_value("Valence: 0.7", "arousal") is None
    assert parse_value("Valence: high", "valence") is None
    assert parse_value(None, "valence") is None
    assert parse_dominant("Dominant emotion: Amusement.") == "Amusement"
    assert parse_dominant("dominant emotion:  doubt/confusion ") == "doubt/confusion"
    assert parse_dominant("Awe") == "Awe"
    assert parse_dominant("Dominant emotion:") is None


# --------------------------------------------------------------------------------------------- format

@pytest.mark.parametrize(
    ("text", "task", "sub_task", "expected"),
    [
        (reply("Emotion ranking: joy, surprise, fear"), "ranking", "emotion_ranking", 1.0),
        ("  " + reply("Valence: 0.5") + "\n", "vad", "valence", 1.0),
        (reply("Dominant emotion: Awe"), "dominant_emotion", "mikels8", 1.0),
        ("<answer>Emotion ranking: joy</answer>", "ranking", None, 0.0),  # missing think
        ("<answer>Emotion ranking: joy</answer><think>x</think>", "ranking", None, 0.0),  # answer before think
        (reply("Arousal: 0.5"), "vad", "valence", 0.0),  # wrong identifier for the sub_task
        (reply("joy, surprise, fear"), "ranking", None, 0.0),  # no identifier
        (reply("Dominant emotion: joy"), "ranking", None, 0.0),  # another task's identifier
        (reply("Valence: 0.5") + " trailing", "vad", "valence", 0.0),  # text after the answer
        ("<think>a<answer>Valence: 1</answer></think><answer>Valence: 0.5</answer>", "vad", "valence", 0.0),
        (reply("anything"), None, None, 1.0),  # no task: structure only
        # a ranking names one to three distinct emotions: listing more fails the format (total 0)
        (reply("Emotion ranking: anger, disgust, fear, joy, neutral, sadness, surprise"), "ranking", None, 0.0),
        (reply("Emotion ranking: joy, fear, surprise, cat"), "ranking", None, 0.0),  # four distinct items
        (reply("Emotion ranking: joy, happy, fear, Fear, surprise"), "ranking", None, 1.0),  # repeats: three
        (reply("Emotion ranking: joy"), "ranking", None, 1.0),
        (reply("Emotion ranking: , ,"), "ranking", None, 0.0),  # names nothing
    ],
)
def test_format_reward(text, task, sub_task, expected):
    assert R.format_reward([text], task=[task], sub_task=[sub_task]) == [expected]


# ----------------------------------------------------------------------------------- ranking reward

def test_ranking_reward_squares_the_score():
    completions = [reply("Emotion ranking: joy, fear, sadness"), reply("Emotion ranking: fear, surprise, joy"), "x"]
    got = ranking_reward(completions, solution=["joy, surprise, fear"] * 2 + ["0.5"],
                           task=["ranking", "ranking", "vad"])
    assert got[0] == pytest.approx(((35 + 100 / 3) / 100) ** 2)
    assert got[1] == pytest.approx(0.25)
    assert got[2] is None


# --------------------------------------------------------------------------------------- VAD reward

def vad_at(prediction: str, truth: float = 0.5, dim: str = "valence") -> float:
    (value,) = vad_reward([reply(f"{dim.capitalize()}: {prediction}")], solution=[f"{truth:.4f}"],
                            task=["vad"], sub_task=[dim])
    return value


def test_vad_reward_funnel():
    assert vad_at("0.5000") == pytest.approx(1.0)
    values = [vad_at(f"{0.5 + d:.4f}") for d in np.linspace(0, 0.5, 26)]
    assert all(a > b for a, b in zip(values, values[1:]))
    # d = 0.1: half the linear term at 0.8 plus half exp(-1/2)
    assert vad_at("0.6", dim="arousal") == pytest.approx(0.5 * 0.8 + 0.5 * math.exp(-0.5))
    # d >= d_max: only the Gaussian tail is left
    for d in (T.VAD_D_MAX, 0.7):
        expected = (1 - T.VAD_W_LIN) * math.exp(-(d**2) / (2 * T.VAD_SIGMA**2))
        assert T.hybrid_regression(d) == pytest.approx(expected)
    assert vad_at("0.0", truth=0.8) == pytest.approx(T.hybrid_regression(0.8))
    # clipped: 1.7 counts as 1.0
    assert vad_at("1.7", truth=0.9) == pytest.approx(T.hybrid_regression(0.1))
    assert vad_at("high") == 0.0  # unparseable
    assert vad_reward(["x"], solution=["a, b"], task=["ranking"], sub_task=["emotion_ranking"]) == [None]


# ------------------------------------------------------------------------------ emotion similarity

def test_computed_similarity_reward_on_ekman7(sample_lexicon):
    # The authors' procedure without embeddings, installed in place of their ekman7 matrices (the default).
    S.set_similarity_matrices("ekman7", S.computed_similarity(S.emotion_labels("ekman7")))
    completions = [reply(f"Dominant emotion: {p}") for p in ("JOY", "surprise", "sadness", "happy", "Awe")]
    got = emotion_similarity_reward(completions, solution=["joy"] * 5, task=["dominant_emotion"] * 5,
                                      sub_task=["ekman7"] * 5)
    exact, similar, distant, synonym, outside = got
    assert exact == 1.0
    assert 0.0 <= distant < similar < 1.0
    assert distant == 0.0  # sadness is joy's farthest ekman7 emotion: S_vad = 0 (and S_sem = S_vad here)
    assert synonym == 1.0 and outside == 0.0  # "happy" reads as joy (labels/vocabulary.py); Awe is no ekman7 label
    # by hand from the Warriner rows: joy (8.21, 5.55, 7.0), surprise (7.44, 6.57, 5.17); no embeddings, so
    # S_sem = S_vad and R = (0.6 s + 0.4 s^2)^3 with s = 1 - d(joy, surprise) / max_j d(joy, j)
    rows = {"anger": (2.5, 5.93, 5.14), "disgust": (3.32, 5.0, 4.84), "fear": (2.93, 6.14, 3.32),
            "joy": (8.21, 5.55, 7.0), "sadness": (2.4, 2.81, 3.84), "surprise": (7.44, 6.57, 5.17),
            "neutral": (5.5, 3.45, 5.81)}
    w = np.array([0.5, 0.3, 0.2])

    def dist(a, b):
        return float(np.sqrt((w * ((np.array(rows[a]) - np.array(rows[b])) / 8) ** 2).sum()))

    s = 1 - dist("joy", "surprise") / max(dist("joy", e) for e in rows)
    assert similar == pytest.approx((0.6 * s + 0.4 * s**2) ** 3)
    assert S.similarity_matrices("ekman7").semantic == "vad_fallback"


def test_similarity_none_for_other_tasks_and_multiword_labels(sample_lexicon):
    assert emotion_similarity_reward([reply("Valence: 0.5")], solution=["0.5"], task=["vad"],
                                       sub_task=["valence"]) == [None]
    matrices = S.similarity_matrices("emotic26")
    assert "confusion" not in matrices.missing and "doubt" not in matrices.missing  # both sample words
    assert matrices.s_vad.shape == (26, 26) and np.allclose(np.diag(matrices.s_vad), 1.0)
    assert emotion_similarity_reward([reply("Dominant emotion: doubt/confusion")], solution=["Doubt/Confusion"],
                                       task="dominant_emotion", sub_task="emotic26") == [1.0]


def test_build_similarity_with_embeddings():
    labels = ["a", "b", "c"]
    norms = {"a": (0.0, 0.0, 0.0), "b": (1.0, 0.0, 0.0), "c": (0.0, 0.0, 1.0)}
    embeddings = {"a": (1.0, 0.0), "b": (1.0, 1.0), "c": (0.0, 1.0)}
    m = S.build_similarity(labels, norms, embeddings)
    # distances from a: b sqrt(0.5), c sqrt(0.2) -> S_vad(a, b) 0, S_vad(a, c) 1 - sqrt(0.2 / 0.5)
    assert m.s_vad[0, 1] == pytest.approx(0.0)
    assert m.s_vad[0, 2] == pytest.approx(1 - math.sqrt(0.4))
    # cosine: a-b and b-c 1/sqrt 2, a-c 0; row a keeps its values under row min-max (min 0, max 1) and the
    # largest off-diagonal value (1/sqrt 2) scales a-b and a-c to 1 and 0
    assert m.s_sem[0, 1] == pytest.approx(1.0) and m.s_sem[0, 2] == pytest.approx(0.0)
    assert np.allclose(np.diag(m.s_sem), 1.0) and m.semantic == "embeddings"
    assert m.reward("a", "c") == pytest.approx((0.6 * (1 - math.sqrt(0.4))) ** 3)
    assert m.reward("A", "a") == 1.0 and m.reward("a", "zzz") == 0.0 and m.reward("a", None) == 0.0
    fallback = S.build_similarity(labels, norms)
    assert_floats_close(fallback.s_sem, fallback.s_vad)


def test_every_label_has_a_definition():
    _, definitions = emotion_definitions()
    for name in ("ekman7", "mikels8", "artemis9", "plutchik24", "emotic26"):
        for label in S.emotion_labels(name):
            assert definitions[label.lower()].strip()


# ------------------------------------------------------------------------------- total and signature

def test_total_reward_gates_the_task_reward():
    solution, task, sub = ["joy, surprise, fear"] * 3, ["ranking"] * 3, ["emotion_ranking"] * 3
    completions = [reply("Emotion ranking: joy, surprise, fear"), "<answer>Emotion ranking: joy, surprise, fear</answer>",
                   reply("Emotion ranking: anger")]
    got = R.total_reward(completions, solution=solution, task=task, sub_task=sub)
    assert got == pytest.approx([R.FORMAT_WEIGHT + 1.0, 0.0, R.FORMAT_WEIGHT + 0.0])


def test_conversational_completions_accepted():
    conversation = [[{"role": "assistant", "content": reply("Valence: 0.5")}],
                    [{"role": "assistant", "content": [{"type": "text", "text": reply("Valence: 0.5")}]}]]
    assert vad_reward(conversation, solution=["0.5"] * 2, task=["vad"] * 2, sub_task=["valence"] * 2) == [1.0, 1.0]
    assert R.format_reward(conversation, task=["vad"] * 2, sub_task=["valence"] * 2) == [1.0, 1.0]


def test_trl_signature(sample_lexicon):
    completions = [reply("Emotion ranking: joy, surprise, fear"), reply("Valence: 0.4"),
                   [{"role": "assistant", "content": reply("Dominant emotion: fear")}], "garbage"]
    columns = dict(
        solution=["joy, surprise, fear", "0.4000", "fear", "0.1"],
        task=["ranking", "vad", "dominant_emotion", "vad"],
        sub_task=["emotion_ranking", "valence", "ekman7", "dominance"],
        prompts=["p"] * 4, completion_ids=[[1]] * 4, row_id=["r"] * 4, trainer_state=None,
    )
    for name, function in R.REWARD_FUNCTIONS.items():
        values = function(completions, **columns)
        assert len(values) == len(completions), name
        assert all(v is None or isinstance(v, float) for v in values), name
    assert R.total_reward(completions, **columns) == pytest.approx([1.5, 1.5, 1.5, 0.0])
    assert R.get_reward_funcs(["total"]) == [R.total_reward]
