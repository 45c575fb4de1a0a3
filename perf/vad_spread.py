"""How VAD synthesized from real comments spreads over 0-1, before and after keywords and normalisation.

Reads the EEmo-Logic authors' released ArtEmis test file (``test_data/test_ArtEmis.json`` of the public
``workerred/EEmo-Logic`` repository: 1,920 artworks, 240 per dominant emotion, each with its ArtEmis utterances,
the same kind of comments as Affection's) and the Warriner norms. For each method it prints, per dimension, how
many of the ten 0.1-wide bins the images reach and the 5th-95th percentile band, and the mean valence of the
images whose dominant emotion is negative (anger, disgust, fear, sadness) against the positive ones. Issue #13's
targets for the method the pipeline uses (``keywords_normalized``): at least 8 of 10 bins in each dimension,
and at least 0.2 between the negative and positive mean valence.

    .venv/bin/python perf/vad_spread.py --artemis-json PATH/test_ArtEmis.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eemo_pipeline.vad.lexicon import load_lexicon  # noqa: E402
from eemo_pipeline.vad.synthesis import (  # noqa: E402
    DIMENSIONS,
    normalization_bounds,
    normalize_lexicon_vad,
    synthesize_vad,
)

NEGATIVE = ("anger", "disgust", "fear", "sadness")
MIN_BINS = 8
MIN_VALENCE_GAP = 0.2


def comments_of(path: Path) -> pl.DataFrame:
    """``image_id, text, dominant_emotion``: one row per utterance of the released file."""
    items = json.loads(path.read_text(encoding="utf-8"))
    return pl.DataFrame(
        [(str(item["new_id"]), text, item["dominant_emotion"]) for item in items for text in item["utterance"]],
        schema=["image_id", "text", "dominant_emotion"], orient="row",
    )


def spread(scores: pl.DataFrame, emotions: pl.DataFrame) -> dict:
    scored = scores.join(emotions, on="image_id").filter(pl.col("valence").is_not_null())
    figures: dict = {"images": scored.height}
    for dimension in DIMENSIONS:
        values = scored[dimension]
        figures[f"{dimension}_bins"] = int((values * 10).floor().clip(0, 9).n_unique())
        figures[f"{dimension}_p05_p95"] = (round(values.quantile(0.05), 3), round(values.quantile(0.95), 3))
    negative = pl.col("dominant_emotion").is_in(NEGATIVE)
    means = scored.group_by(negative.alias("negative")).agg(pl.col("valence").mean())
    by_side = dict(means.iter_rows())
    figures["valence_negative"] = round(by_side[True], 3)
    figures["valence_positive"] = round(by_side[False], 3)
    figures["valence_gap"] = round(by_side[False] - by_side[True], 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artemis-json", type=Path, required=True, help="the authors' test_ArtEmis.json")
    args = parser.parse_args()
    texts = comments_of(args.artemis_json)
    emotions = texts.unique("image_id").select("image_id", "dominant_emotion")
    lexicon = load_lexicon()
    every_word = synthesize_vad(texts.select("image_id", "text"), lexicon, stoplist=frozenset())
    keywords = synthesize_vad(texts.select("image_id", "text"), lexicon)
    methods = {
        "all_words_rescaled (before)": every_word,
        "keywords_rescaled": keywords,
        "keywords_normalized (pipeline)": normalize_lexicon_vad(keywords, normalization_bounds(keywords)),
    }
    print(f"{texts.height:,} utterances of {emotions.height:,} artworks from {args.artemis_json}")
    for name, scores in methods.items():
        print(f"{name}: {json.dumps(spread(scores, emotions))}")
    final = spread(methods["keywords_normalized (pipeline)"], emotions)
    bins_ok = all(final[f"{d}_bins"] >= MIN_BINS for d in DIMENSIONS)
    gap_ok = final["valence_gap"] >= MIN_VALENCE_GAP
    print(f"targets: >= {MIN_BINS} bins per dimension {'met' if bins_ok else 'MISSED'}; "
          f"valence gap >= {MIN_VALENCE_GAP} {'met' if gap_ok else 'MISSED'}")


if __name__ == "__main__":
    main()
