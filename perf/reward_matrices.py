"""How far the dominant-emotion reward matrices are from the EEmo-Logic authors' released ones.

For each of the five label sets the authors released (``data_contracts/eemo_logic_authors/``), the mean absolute
difference over off-diagonal pairs (rows = ground truth, columns = answer) between the authors' R and:

* ``default``: what the reward function gives now (the authors' matrices: 0);
* ``computed``: the authors' procedure run by us (their norms, our Table 7-style definitions embedded by the local
  model, MiniLM unless ``--embedding-model``), i.e. what a label set they did not release gets;
* ``recomputed``: R rebuilt from the authors' own S_vad and E with our functions (should be 0).

Before the authors' matrices were shipped (commit e47f2aa: MiniLM on our plain definitions, Warriner with guessed
aliases, no row min-max) the reward differed by 0.083 (Ekman 7), 0.056 (Mikels 8), 0.059 (ArtEmis 8), 0.031
(Plutchik 24) and 0.047 (EMOTIC 26).

It also prints the largest difference between the authors' ``vad_distance.json`` and S_vad recomputed from their
``emotion_vad_scores.json`` with ``vad_similarity``.

    .venv/bin/python perf/reward_matrices.py [--embedding-model PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eemo_pipeline.tasks.similarity import (  # noqa: E402
    SimilarityMatrices,
    authors_dir,
    authors_norms,
    emotion_labels,
    reward_matrix,
    scaled_similarity,
    similarity_matrices,
    vad_similarity,
)
from eemo_pipeline.training.embeddings import label_sets, semantic_matrices  # noqa: E402


def off_diagonal_mad(ours: np.ndarray, theirs: np.ndarray) -> float:
    off = ~np.eye(len(theirs), dtype=bool)
    return float(np.abs(ours - theirs)[off].mean())


def rewards_of(matrices: SimilarityMatrices, labels: list[str]) -> np.ndarray:
    """The reward of every (truth, answer) pair, in the order of ``labels``."""
    return np.array([[matrices.reward(truth, answer) for answer in labels] for truth in labels])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedding-model", default=None, help="local sentence-embedding model (default: MiniLM)")
    args = parser.parse_args()
    released = json.loads((authors_dir() / "reward_matrix_1.json").read_text())
    embedding = json.loads((authors_dir() / "check_embedding.json").read_text())
    s_vad = {key: value for entry in json.loads((authors_dir() / "vad_distance.json").read_text())
             for key, value in entry.items()}
    by_set = {frozenset(label.lower() for label in key.split(", ")): key for key in released}
    names = [name for name in label_sets() if frozenset(x.lower() for x in emotion_labels(name)) in by_set]
    computed = semantic_matrices(args.embedding_model, names)
    print(f"{'label set':<12} {'n':>3} {'authors mean':>12} {'default':>8} {'computed':>9} {'recomputed':>11} "
          f"{'S_vad max diff':>15}")
    for name in names:
        key = by_set[frozenset(label.lower() for label in emotion_labels(name))]
        labels = key.split(", ")
        theirs = np.array(released[key])
        off = ~np.eye(len(labels), dtype=bool)

        recomputed = reward_matrix(np.array(s_vad[key]), scaled_similarity(np.array(embedding[key])))
        norms = np.array([authors_norms()[label.lower()] for label in labels])
        vad_diff = float(np.abs(vad_similarity(norms) - np.array(s_vad[key])).max())
        print(f"{name:<12} {len(labels):>3} {theirs[off].mean():>12.4f} "
              f"{off_diagonal_mad(rewards_of(similarity_matrices(name), labels), theirs):>8.4f} "
              f"{off_diagonal_mad(rewards_of(computed[name], labels), theirs):>9.4f} "
              f"{off_diagonal_mad(recomputed, theirs):>11.2e} {vad_diff:>15.2e}")


if __name__ == "__main__":
    main()
