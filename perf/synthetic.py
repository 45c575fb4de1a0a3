"""Generated stand-ins for full-size source files (same columns and shapes, random content)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

AFFECTION_ROWS = 526_749
AFFECTION_IMAGES = 85_007
_EMOTIONS = ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness", "something else"]
_DATASETS = ["coco_affective", "visual_genome_affective", "flickr30k_affective", "you_aaai_affective",
             "emotional_machines_affective"]
_WORDS = ("the a man woman child dog sky dark bright smiling crying alone together storm sunny happy sad angry "
          "calm peaceful scary beautiful ugly old new broken warm cold, feels makes me think of \"home\" "
          "because it's lonely joyful tense relaxed").split()


def _vocabulary(rng: np.random.Generator, size: int = 50_000) -> np.ndarray:
    """Common words plus ``size`` pseudo-words, so tokenizing and lemmatizing see a realistic vocabulary."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 11, size)
    pseudo = ["".join(w[:n]) for w, n in zip(letters[rng.integers(0, 26, (size, 10))], lengths)]
    return np.array(_WORDS + pseudo)


def write_affection_csv(path: Path, rows: int = AFFECTION_ROWS, images: int = AFFECTION_IMAGES, seed: int = 0) -> Path:
    """An Affection-shaped CSV (``workerid, utterance, emotion, dataset, image_name``) with ``rows`` rows."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, images, rows)
    vocabulary = _vocabulary(rng)
    # Zipf-like draws: a few words are very common, most are rare (as in real comments).
    ranks = np.minimum(rng.zipf(1.3, (rows, 12)) - 1, len(vocabulary) - 1)
    words = vocabulary[ranks]
    lengths = rng.integers(4, 13, rows)
    utterances = [" ".join(w[:n]) for w, n in zip(words, lengths)]
    frame = pl.DataFrame(
        {
            "workerid": [f"A{w:012X}" for w in rng.integers(0, 6_000, rows)],
            "utterance": utterances,
            "emotion": np.array(_EMOTIONS)[rng.integers(0, len(_EMOTIONS), rows)],
            "dataset": np.array(_DATASETS)[image % len(_DATASETS)],
            "image_name": [f"img_{i:07d}.jpg" for i in image],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path
