"""The dominant-emotion reward's similarity matrices (REFERENCE.md section 4; authors' code).

Per label set, ``S_vad`` from the labels' Warriner (v, a, d) norms and ``S_sem`` from their definitions'
sentence embeddings (``training/embeddings.py`` computes those; until installed, S_sem falls back to S_vad).
The reward of a predicted label is ``(SIM_A * S_vad + (1 - SIM_A) * S_sem ** SIM_K) ** SIM_P``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# Emotion similarity reward (authors' code): R = (a * S_vad + (1 - a) * S_sem ** k) ** p.
SIM_A = 0.6
SIM_K = 2.0
SIM_P = 3.0
# Weights of valence, arousal and dominance in the Euclidean distance between two emotions' norms.
VAD_DISTANCE_WEIGHTS = (0.5, 0.3, 0.2)

# Lexicon words tried for a label word that the Warriner norms lack (lower case; tried in order).
LEXICON_ALIASES: dict[str, tuple[str, ...]] = {
    "disquietment": ("disquiet", "unease", "uneasiness", "anxiety"),
    "disconnection": ("disconnect", "detachment", "isolation", "lonely"),
    "pensiveness": ("pensive", "thoughtful"),
    "distraction": ("distracted", "distract"),
    "apprehension": ("apprehensive", "worry"),
    "vigilance": ("vigilant", "alert"),
    "loathing": ("loathe", "hatred"),
    "sad": ("sadness",),
    "content": ("contentment",),
}


@dataclass(frozen=True)
class SimilarityMatrices:
    """Intra-label-set similarities: ``s_vad[i, j]`` and ``s_sem[i, j]`` for ground truth ``labels[i]`` and
    prediction ``labels[j]``, both in [0, 1] with diagonal 1. ``semantic`` is ``"embeddings"`` or
    ``"vad_fallback"`` (S_sem = S_vad when no embeddings were given); ``missing`` lists label words the norms
    lacked (informational)."""

    labels: tuple[str, ...]
    s_vad: np.ndarray
    s_sem: np.ndarray
    semantic: str
    missing: tuple[str, ...] = ()
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {label.lower(): i for i, label in enumerate(self.labels)})

    def reward(self, ground_truth: str, predicted: str | None) -> float:
        """1.0 for the exact label (case-insensitive), 0.0 for a prediction outside the set (or None), else
        ``(SIM_A * S_vad + (1 - SIM_A) * S_sem ** SIM_K) ** SIM_P``. Raises KeyError for an unknown ground truth."""
        i = self.index[ground_truth.strip().lower()]
        j = self.index.get((predicted or "").strip().lower())
        if j is None:
            return 0.0
        if i == j:
            return 1.0
        value = SIM_A * self.s_vad[i, j] + (1.0 - SIM_A) * self.s_sem[i, j] ** SIM_K
        return float(np.clip(value, 0.0, 1.0) ** SIM_P)


def vad_similarity(norms: np.ndarray, weights: Sequence[float] = VAD_DISTANCE_WEIGHTS) -> np.ndarray:
    """S_vad(i, j) = 1 - d_ij / max_j d_ij with d the weighted Euclidean distance of rows of ``norms`` (n x 3).
    Row-normalized as written (so not necessarily symmetric); a row whose distances are all 0 is all 1."""
    diff = norms[:, None, :] - norms[None, :, :]
    distance = np.sqrt((np.asarray(weights, dtype=float) * diff**2).sum(axis=-1))
    row_max = distance.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = np.where(row_max > 0, 1.0 - distance / np.where(row_max > 0, row_max, 1.0), 1.0)
    return np.clip(similarity, 0.0, 1.0)


def semantic_similarity(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity divided by its largest off-diagonal value, diagonal set to 1, clipped to [0, 1]."""
    vectors = np.asarray(vectors, dtype=float)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    cosine = unit @ unit.T
    n = len(cosine)
    off = cosine[~np.eye(n, dtype=bool)]
    top = off.max() if off.size else 1.0
    scaled = cosine / top if top > 0 else cosine
    np.fill_diagonal(scaled, 1.0)
    return np.clip(scaled, 0.0, 1.0)


def build_similarity(
    labels: Sequence[str],
    vad_norms: Mapping[str, Sequence[float]],
    embeddings: Mapping[str, Sequence[float]] | None = None,
    *,
    missing: Sequence[str] = (),
) -> SimilarityMatrices:
    """The similarity matrices of one label set from each label's (v, a, d) norms (any one scale) and, when
    given, each label's definition embedding. Without embeddings S_sem falls back to S_vad (until the embedding
    model arrives with the training issue). Raises KeyError naming a label without norms or embedding."""
    labels = tuple(labels)
    norms = np.array([vad_norms[label] for label in labels], dtype=float)
    s_vad = vad_similarity(norms)
    if embeddings is None:
        return SimilarityMatrices(labels, s_vad, s_vad.copy(), "vad_fallback", tuple(missing))
    vectors = np.array([embeddings[label] for label in labels], dtype=float)
    return SimilarityMatrices(labels, s_vad, semantic_similarity(vectors), "embeddings", tuple(missing))


@functools.cache
def norm_table() -> dict[str, tuple[float, float, float]]:
    """Lower-cased Warriner word -> (v, a, d) on 0-1, read once through ``load_lexicon``."""
    from eemo_pipeline.vad.lexicon import load_lexicon, lookup_table

    table = lookup_table(load_lexicon())
    return {
        key: ((v - 1.0) / 8.0, (a - 1.0) / 8.0, (d - 1.0) / 8.0)
        for key, v, a, d in table.select("key", "valence", "arousal", "dominance").iter_rows()
    }


def label_norms(
    labels: Sequence[str], table: Mapping[str, Sequence[float]]
) -> tuple[dict[str, tuple[float, float, float]], list[str]]:
    """Each label's (v, a, d): the mean over its words (split on '/', '-' and blanks; each word tried as is, then
    through LEXICON_ALIASES) found in ``table``. A label with no word found gets the scale's midpoint
    (0.5, 0.5, 0.5), a neutral placeholder; every word not found is returned in the second list."""
    norms: dict[str, tuple[float, float, float]] = {}
    missing: list[str] = []
    for label in labels:
        found = []
        for word in re.split(r"[/\-\s]+", label.lower()):
            if not word:
                continue
            hit = next((table[w] for w in (word, *LEXICON_ALIASES.get(word, ())) if w in table), None)
            if hit is None:
                missing.append(word)
            else:
                found.append(hit)
        norms[label] = tuple(np.mean(found, axis=0)) if found else (0.5, 0.5, 0.5)
    return norms, missing


_MATRICES: dict[str, SimilarityMatrices] = {}


def label_set(name: str) -> tuple[str, ...]:
    """The native labels of taxonomy ``name`` as spelled in data_contracts/label_taxonomy.yaml (KeyError if unknown)."""
    from eemo_pipeline.labels.taxonomy import taxonomy_document

    return tuple(taxonomy_document()["taxonomies"][name]["labels"])


def similarity_matrices(name: str) -> SimilarityMatrices:
    """The cached matrices of taxonomy ``name``, built on first use from the Warriner norms (S_sem = S_vad until
    ``set_similarity_matrices`` installs embedding-based ones)."""
    if name not in _MATRICES:
        labels = label_set(name)
        norms, missing = label_norms(labels, norm_table())
        _MATRICES[name] = build_similarity(labels, norms, None, missing=missing)
    return _MATRICES[name]


def set_similarity_matrices(name: str, matrices: SimilarityMatrices) -> None:
    """Install precomputed matrices for taxonomy ``name`` (e.g. with definition embeddings)."""
    _MATRICES[name] = matrices


def clear_similarity_cache() -> None:
    """Forget cached matrices and the norms table (e.g. after pointing EEMO_VAD_LEXICON elsewhere)."""
    _MATRICES.clear()
    norm_table.cache_clear()
