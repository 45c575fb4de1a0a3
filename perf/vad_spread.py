"""How VAD synthesized from real comments spreads over 0-1, and whether an image's VAD depends on its partition.

Reads the EEmo-Logic authors' released ArtEmis test file (``test_data/test_ArtEmis.json`` of the public
``workerred/EEmo-Logic`` repository: 1,920 artworks, 240 per dominant emotion, each with its ArtEmis utterances,
the same kind of comments as Affection's) and the Warriner norms.

Spread: for each method, per dimension, how many of the ten 0.1-wide bins the images reach and the 5th-95th
percentile band, the share of images in the outer hundredths (below 0.01 or above 0.99, where the versioned
map squeezes what lies beyond its bounds), and the mean valence of the images whose dominant emotion is negative (anger, disgust, fear,
sadness) against the positive ones. Targets for the method the pipeline uses: at least 8 of 10 bins in each
dimension, and at least 0.2 between the negative and positive mean valence. The shipped bounds
(``data_contracts/vad_bounds.yaml``) were computed from these same comments, so two more rows test them where
they were not fitted: bounds from the even-numbered artworks applied to the odd-numbered ones (held out), and
bounds from references that need no comment corpus per image: keyword means of random draws from the lexicon
(uniform over its non-stop-list words) or from the keyword occurrences of the comments (pooled, no image
structure), as many keywords per draw as each artwork has.

Stability: the same artworks as Affection partitions of different make-up, through ``vad_scores`` as the asset
calls it: all 1,920; the 960 negative ones; two artworks (the first negative and the first positive); all 1,920
plus one more image (a copy of artwork 0's comments under a new id). Printed: the largest change of any value
against the full partition, how many values are exactly 0 or 1, and how many values appending one image changes.
Target: at most 0.02 apart, nothing pinned to 0 or 1 by the partition's make-up.

    .venv/bin/python perf/vad_spread.py --artemis-json PATH/test_ArtEmis.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eemo_pipeline.contracts import table_contract  # noqa: E402
from eemo_pipeline.vad.bounds import VadBounds, shipped_vad_bounds  # noqa: E402
from eemo_pipeline.vad.lexicon import load_lexicon  # noqa: E402
from eemo_pipeline.vad.reference import QUANTILES, reference_bounds  # noqa: E402
from eemo_pipeline.vad.synthesis import (  # noqa: E402
    DIMENSIONS,
    KEYWORD_STOPLIST,
    match_keywords,
    normalize_lexicon_vad,
    synthesize_vad,
    tokenize,
    vad_scores,
)

NEGATIVE = ("anger", "disgust", "fear", "sadness")
MIN_BINS = 8
MIN_VALENCE_GAP = 0.2
MAX_MOVEMENT = 0.02


def artworks(path: Path) -> list[dict]:
    """The released items, each with ``image_id`` (``artemis/<new_id>``) added."""
    items = json.loads(path.read_text(encoding="utf-8"))
    return [{**item, "image_id": f"artemis/{item['new_id']:05d}"} for item in items]


def comments_of(items: list[dict]) -> pl.DataFrame:
    """``image_id, text, dominant_emotion``: one row per utterance."""
    return pl.DataFrame(
        [(item["image_id"], text, item["dominant_emotion"]) for item in items for text in item["utterance"]],
        schema=["image_id", "text", "dominant_emotion"], orient="row",
    )


def annotations_of(items: list[dict]) -> pl.DataFrame:
    """The items as an Affection partition of ``raw_annotations``: one ``label_choice`` row per utterance."""
    rows = [
        {"source": "affection", "image_id": item["image_id"], "measure": "label_choice", "label": emotion,
         "value": 1.0, "text": text, "annotator": str(k), "source_file": "test_ArtEmis.json",
         "source_line": n * 100 + k}
        for n, item in enumerate(items) for k, (emotion, text) in enumerate(zip(item["emotion"], item["utterance"]))
    ]
    return table_contract("raw_annotations").conform(pl.DataFrame(rows))


def spread(scores: pl.DataFrame, emotions: pl.DataFrame) -> dict:
    scored = scores.join(emotions, on="image_id").filter(pl.col("valence").is_not_null())
    figures: dict = {"images": scored.height}
    for dimension in DIMENSIONS:
        values = scored[dimension]
        figures[f"{dimension}_bins"] = int((values * 10).floor().clip(0, 9).n_unique())
        figures[f"{dimension}_p05_p95"] = (round(values.quantile(0.05), 3), round(values.quantile(0.95), 3))
        figures[f"{dimension}_outer"] = round(float(((values < 0.01) | (values > 0.99)).mean()), 3)
    negative = pl.col("dominant_emotion").is_in(NEGATIVE)
    means = scored.group_by(negative.alias("negative")).agg(pl.col("valence").mean())
    by_side = dict(means.iter_rows())
    figures["valence_negative"] = round(by_side[True], 3)
    figures["valence_positive"] = round(by_side[False], 3)
    figures["valence_gap"] = round(by_side[False] - by_side[True], 3)
    return figures


def with_bounds(scores: pl.DataFrame, reference: pl.DataFrame) -> pl.DataFrame:
    """``scores`` normalised by bounds computed from the keyword means of ``reference``."""
    return normalize_lexicon_vad(scores, VadBounds(0, QUANTILES, reference_bounds(reference)))


def random_draws(norms: pl.DataFrame, counts: pl.Series, seed: int = 0) -> pl.DataFrame:
    """``*_raw`` keyword means of ``counts[i]`` rows drawn at random (with replacement) from ``norms``."""
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, norms.height, n) for n in counts.to_list()]
    return pl.DataFrame({f"{d}_raw": [float(norms[d].to_numpy()[p].mean()) for p in picks] for d in DIMENSIONS})


def alternatives(texts: pl.DataFrame, keywords: pl.DataFrame, lexicon: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The rows that test the bounds away from the comments they were fitted on (module docstring)."""
    odd = keywords.filter(pl.col("image_id").str.extract(r"(\d+)$").cast(pl.Int64) % 2 == 1)
    even = keywords.join(odd.select("image_id"), on="image_id", how="anti")
    stop = list(KEYWORD_STOPLIST)
    content_words = lexicon.filter(~pl.col("word").str.to_lowercase().is_in(stop))
    tokens = tokenize(texts.select("image_id", "text"))
    occurrences = tokens.join(match_keywords(tokens["token"].unique(), lexicon), on="token")
    counts = keywords["n_lexicon_words"]
    return {
        "keywords, bounds from the even artworks (odd ones shown)": with_bounds(odd, even),
        "keywords, bounds from uniform lexicon draws": with_bounds(keywords, random_draws(content_words, counts)),
        "keywords, bounds from pooled comment-keyword draws": with_bounds(keywords, random_draws(occurrences, counts)),
    }


def _pinned(scores: pl.DataFrame) -> int:
    return int(scores.select(pl.sum_horizontal((pl.col(d).is_in([0.0, 1.0])).sum() for d in DIMENSIONS)).item())


def stability(items: list[dict], lexicon: pl.DataFrame) -> dict:
    """Values of the same artworks in partitions of different make-up, against the full partition."""
    negative = [item for item in items if item["dominant_emotion"] in NEGATIVE]
    two = [negative[0], next(item for item in items if item["dominant_emotion"] not in NEGATIVE)]
    extra = {**items[0], "image_id": "artemis/extra"}
    makeups = {"full": items, "negative_only": negative, "two_images": two, "one_appended": [*items, extra]}
    scores = {name: vad_scores("affection", annotations_of(part), lexicon) for name, part in makeups.items()}
    full = scores["full"].select("image_id", *DIMENSIONS)
    figures: dict = {"pinned_full": _pinned(scores["full"])}
    for name in ("negative_only", "two_images", "one_appended"):
        joined = scores[name].select("image_id", *DIMENSIONS).join(full, on="image_id", suffix="_full")
        moved = joined.select(*((pl.col(d) - pl.col(f"{d}_full")).abs().max().alias(d) for d in DIMENSIONS)).row(0)
        figures[f"max_movement_{name}"] = {d: round(m, 4) for d, m in zip(DIMENSIONS, moved)}
        figures[f"pinned_{name}"] = f"{_pinned(scores[name].filter(pl.col('image_id') != 'artemis/extra'))} of " \
                                    f"{3 * (joined.height)}"
        if name == "one_appended":
            changed = joined.select(pl.sum_horizontal((pl.col(d) != pl.col(f"{d}_full")).sum() for d in DIMENSIONS))
            valence = int((joined["valence"] != joined["valence_full"]).sum())
            figures["changed_by_appending"] = {"valence": f"{valence} of {joined.height}",
                                               "all": f"{changed.item()} of {3 * joined.height}"}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artemis-json", type=Path, required=True, help="the authors' test_ArtEmis.json")
    args = parser.parse_args()
    items = artworks(args.artemis_json)
    texts = comments_of(items)
    emotions = texts.unique("image_id").select("image_id", "dominant_emotion")
    lexicon = load_lexicon()
    keywords = synthesize_vad(texts.select("image_id", "text"), lexicon)
    methods = {
        "all_words_rescaled (before)": synthesize_vad(texts.select("image_id", "text"), lexicon, stoplist=frozenset()),
        "keywords_rescaled": keywords,
        "keywords_normalized (pipeline)": vad_scores("affection", annotations_of(items), lexicon),
        **alternatives(texts, keywords, lexicon),
    }
    bounds = shipped_vad_bounds()
    print(f"{texts.height:,} utterances of {emotions.height:,} artworks from {args.artemis_json}; "
          f"pipeline bounds: vad_bounds version {bounds.version} ({bounds.provenance.get('corpus')})")
    for name, scores in methods.items():
        print(f"{name}: {json.dumps(spread(scores, emotions))}")
    final = spread(methods["keywords_normalized (pipeline)"], emotions)
    bins_ok = all(final[f"{d}_bins"] >= MIN_BINS for d in DIMENSIONS)
    gap_ok = final["valence_gap"] >= MIN_VALENCE_GAP
    print(f"targets: >= {MIN_BINS} bins per dimension {'met' if bins_ok else 'MISSED'}; "
          f"valence gap >= {MIN_VALENCE_GAP} {'met' if gap_ok else 'MISSED'}")
    figures = stability(items, lexicon)
    print(f"stability: {json.dumps(figures)}")
    worst = max(m for key, moved in figures.items() if key.startswith("max_movement") for m in moved.values())
    pinned = sum(int(figures[f"pinned_{n}"].split()[0]) for n in ("negative_only", "two_images", "one_appended"))
    print(f"targets: movement <= {MAX_MOVEMENT} {'met' if worst <= MAX_MOVEMENT else 'MISSED'} (worst {worst:.4f}); "
          f"pinned values in the other make-ups: {pinned}")


if __name__ == "__main__":
    main()
