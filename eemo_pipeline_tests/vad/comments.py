"""Comments shaped like ArtEmis/Affection utterances, written here from a lexicon's own words (no third-party text).

Each image has a mood (a position in the lexicon's words ordered by valence); its five to seven comments mix
three to six keywords near that mood with the filler and framing words real comments carry ("the", "looks",
"makes me feel"), so images spread over the scale the way real ones do and stop-listed words occur.
"""

from __future__ import annotations

import random
from typing import Any

import polars as pl

from eemo_pipeline.contracts import table_contract

FILLERS = ("the", "a", "this", "painting", "looks", "makes", "me", "feel", "like", "of", "and", "with", "is")
NEGATIVE_EMOTIONS = ("anger", "disgust", "fear", "sadness")


def artworks(lexicon: pl.DataFrame, images: int, seed: int = 0) -> list[dict[str, Any]]:
    """``images`` items in the authors' ``test_ArtEmis.json`` layout: ``new_id``, ``utterance``, ``emotion``,
    ``dominant_emotion`` (sadness for a mood below the middle word's valence, contentment above)."""
    rng = random.Random(seed)
    words = lexicon.filter(~pl.col("word").str.contains(" ")).sort("valence", "word")["word"].to_list()
    middle = len(words) // 2
    items = []
    for new_id in range(images):
        mood = rng.randrange(len(words))
        window = words[max(0, mood - 4): mood + 5]
        dominant = "sadness" if mood < middle else "contentment"
        utterances = []
        for _ in range(rng.randint(5, 7)):
            chosen = [rng.choice(window) for _ in range(rng.randint(3, 6))] + rng.sample(FILLERS, 4)
            rng.shuffle(chosen)
            utterances.append(" ".join(chosen).capitalize() + ".")
        items.append({"new_id": new_id, "utterance": utterances, "emotion": [dominant] * len(utterances),
                      "dominant_emotion": dominant})
    return items


def affection_annotations(items: list[dict[str, Any]]) -> pl.DataFrame:
    """The items as an Affection partition of ``raw_annotations`` (one ``label_choice`` with its comment each)."""
    rows = [
        {"source": "affection", "image_id": f"art/{item['new_id']:05d}", "measure": "label_choice", "label": emotion,
         "value": 1.0, "text": text, "annotator": str(k), "source_file": "comments", "source_line": n * 100 + k}
        for n, item in enumerate(items)
        for k, (emotion, text) in enumerate(zip(item["emotion"], item["utterance"], strict=True))
    ]
    return table_contract("raw_annotations").conform(pl.DataFrame(rows))
