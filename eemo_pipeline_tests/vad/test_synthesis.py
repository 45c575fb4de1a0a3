from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from eemo_pipeline.contracts import table_contract
from eemo_pipeline.sample import write_sample
from eemo_pipeline.sources import SOURCES
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.vad.bounds import VadBounds, shipped_vad_bounds
from eemo_pipeline.vad.lexicon import read_lexicon, write_sample_lexicon
from eemo_pipeline.vad.synthesis import (
    KEYWORD_STOPLIST,
    comments,
    label_words,
    lemmatize,
    match_keywords,
    match_vocabulary,
    normalize_lexicon_vad,
    rated_vad,
    rescale,
    synthesize_vad,
    tertile_levels,
    tokenize,
    vad_scores,
    vad_violations,
    validation_report,
)

# Toy norms with round numbers, 1-9 like Warriner's.
TOY = pl.DataFrame(
    {
        "word": ["happy", "sad", "dog", "bare", "bear", "amused", "amuse", "smile", "be", "will", "do", "child",
                 "tv", "TV", "TRUE", "alarm clock", "doubt", "confusion", "joy"],
        "valence": [9.0, 1.0, 7.0, 5.5, 5.33, 7.05, 7.1, 7.89, 6.18, 5.32, 5.41, 7.2,
                    6.05, 5.42, 7.51, 3.0, 3.0, 4.0, 8.0],
        "arousal": [5.0, 3.0, 5.0, 4.65, 4.5, 4.27, 5.17, 4.62, 3.43, 2.9, 3.67, 5.33,
                    4.24, 4.29, 4.98, 6.0, 5.0, 6.0, 6.0],
        "dominance": [7.0, 3.0, 5.0, 5.58, 3.59, 5.93, 6.8, 7.72, 5.5, 6.61, 6.35, 5.2,
                      5.24, 6.23, 7.0, 5.0, 3.0, 4.0, 7.0],
    }
)


def canonical(rows: list[dict[str, Any]]) -> pl.DataFrame:
    base = {"source": "test", "source_file": "f", "source_line": 1}
    return table_contract("raw_annotations").conform(pl.DataFrame([{**base, **r} for r in rows], infer_schema_length=None))


def rating(image: str, measure: str, value: float, low: float, high: float, annotator: str | None = None,
           subject: int | None = None) -> dict[str, Any]:
    return {"image_id": image, "measure": measure, "value": value, "scale_min": low, "scale_max": high,
            "annotator": annotator, "subject": subject}


def label(image: str, measure: str, name: str, value: float = 1.0, text: str | None = None,
          annotator: str | None = None) -> dict[str, Any]:
    return {"image_id": image, "measure": measure, "label": name, "value": value, "text": text, "annotator": annotator}


def by_image(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["image_id"]: row for row in frame.iter_rows(named=True)}


# --- rescaling and rated sources ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "value", "expected"),
    [
        (1, 9, 3.0, 0.25),            # Emotion6 (and Warriner)
        (1, 10, 7.0, 6 / 9),          # EMOTIC
        (-3, 3, 1.5, 0.75),           # FindingEmo valence
        (0, 6, 2.0, 1 / 3),           # FindingEmo arousal
        (0, 100, 18.43, 0.1843),      # GAPED
        (1, 7, 4.0, 0.5),             # OASIS
        (1, 9, 9.0, 1.0),
        (1, 9, 1.0, 0.0),
    ],
)
def test_rescale_to_unit_interval(low: float, high: float, value: float, expected: float) -> None:
    assert pl.select(rescale(pl.lit(value), low, high)).item() == pytest.approx(expected, abs=1e-12)
    # Through rated_vad, each row with its own scale columns.
    scores = rated_vad(canonical([rating("i", "valence", value, low, high)]))
    assert scores["valence"][0] == pytest.approx(expected, abs=1e-12)


def test_rated_vad_mixes_scales_per_row() -> None:
    rows = canonical([
        rating("findingemo", "valence", -1.5, -3, 3, annotator="u1"),    # 0.25
        rating("findingemo", "arousal", 6.0, 0, 6, annotator="u1"),      # 1.0
        rating("gaped", "valence", 80.0, 0, 100),                         # 0.8
        rating("gaped", "arousal", 30.0, 0, 100),                         # 0.3
        rating("oasis", "valence", 7.0, 1, 7),                            # 1.0
        rating("emotion6", "arousal", 5.0, 1, 9),                         # 0.5
        rating("findingemo", "ambiguity", 6.0, 0, 6, annotator="u1"),    # no VAD measure: ignored
    ])
    scores = by_image(rated_vad(rows))
    assert {k: (v["valence"], v["arousal"], v["dominance"], v["n_ratings"]) for k, v in scores.items()} == {
        "emotion6": (None, 0.5, None, 1),
        "findingemo": (0.25, 1.0, None, 2),
        "gaped": (0.8, 0.3, None, 2),
        "oasis": (1.0, None, None, 1),
    }
    assert all(v["vad_origin"] == "rated" and v["n_lexicon_words"] is None for v in scores.values())


def test_emotic_per_annotator_ratings_win_over_combined() -> None:
    rows = canonical([
        # val image, person 0: three annotators plus their combination (not to be counted again).
        rating("val/a", "valence", 2.0, 1, 10, "0", 0),
        rating("val/a", "valence", 3.0, 1, 10, "1", 0),
        rating("val/a", "valence", 2.0, 1, 10, "2", 0),
        rating("val/a", "valence", 7 / 3, 1, 10, None, 0),
        # person 1: two annotators plus combined.
        rating("val/a", "valence", 4.0, 1, 10, "0", 1),
        rating("val/a", "valence", 6.0, 1, 10, "1", 1),
        rating("val/a", "valence", 5.0, 1, 10, None, 1),
        # The CSV variant keeps only the combined ratings: then they are what there is.
        rating("csv/b", "valence", 5.5, 1, 10, None, 0),
        rating("csv/b", "arousal", 10.0, 1, 10, None, 0),
        # The choice is per measure: arousal per annotator, valence only combined.
        rating("val/c", "arousal", 1.0, 1, 10, "0", 0),
        rating("val/c", "arousal", 4.0, 1, 10, None, 0),
        rating("val/c", "valence", 4.0, 1, 10, None, 0),
        # An image with labels only keeps a row without scores.
        label("val/d", "label_choice", "Peace", annotator="0"),
    ])
    scores = by_image(rated_vad(rows))
    # (2, 3, 2, 4, 6) on 1-10 -> (1, 2, 1, 3, 5) / 9, mean 12/45.
    assert scores["val/a"]["valence"] == pytest.approx(12 / 45, abs=1e-12)
    assert scores["val/a"]["n_ratings"] == 5
    assert (scores["csv/b"]["valence"], scores["csv/b"]["arousal"], scores["csv/b"]["n_ratings"]) == (0.5, 1.0, 2)
    assert scores["val/c"]["arousal"] == 0.0 and scores["val/c"]["valence"] == pytest.approx(1 / 3)
    assert scores["val/c"]["n_ratings"] == 2
    assert (scores["val/d"]["valence"], scores["val/d"]["n_ratings"]) == (None, 0)


def test_rated_vad_refuses_a_rating_without_scale() -> None:
    rows = canonical([rating("i", "valence", 3.0, 1, 9), {"image_id": "j", "measure": "arousal", "value": 2.0}])
    with pytest.raises(ValueError, match="1 rating rows lack a valid scale"):
        rated_vad(rows)


# --- words and lemmas --------------------------------------------------------------------------------------


def test_tokenize_words_apostrophes_case_punctuation_hyphens() -> None:
    texts = pl.DataFrame({
        "image_id": ["a", "b", "c", "d", "e", "f"],
        "weight": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "text": [
            "It's a DOG'S life;don't   cry!",
            "well-being, New-York & Doubt/Confusion",
            "\u2018cheesy\u2019 grins, It\u2019s 3 dogs 4ever... dogs' bones rock'n'roll",
            "Caf\u00e9 NA\u00cfVE \u00fcber",
            None,
            " ?! 42 -- ",
        ],
    })
    tokens = tokenize(texts)
    assert tokens.columns == ["image_id", "weight", "token"]
    assert tokens.group_by("image_id", maintain_order=True).agg("token").rows() == [
        ("a", ["it's", "a", "dog's", "life", "don't", "cry"]),
        ("b", ["well", "being", "new", "york", "doubt", "confusion"]),
        ("c", ["cheesy", "grins", "it's", "dogs", "ever", "dogs", "bones", "rock'n'roll"]),
        ("d", ["caf\u00e9", "na\u00efve", "\u00fcber"]),
    ]
    assert tokens.filter(pl.col("image_id") == "b")["weight"].unique().to_list() == [2.0]
    other = tokenize(pl.DataFrame({"id": [1], "comment": ["Hi there"]}), text_column="comment")
    assert other.rows() == [(1, "hi"), (1, "there")]


def test_lemmatize_once_per_distinct_word() -> None:
    lemmas = lemmatize(pl.Series(["dogs", "running", "dogs", None, "mice", "happier", "was"]))
    assert lemmas.rows() == [("dogs", "dog"), ("running", "run"), ("mice", "mouse"), ("happier", "happy"), ("was", "be")]


def test_match_vocabulary_surface_then_lemma_then_clitic() -> None:
    tokens = ["bare", "amused", "dogs", "smiling", "happier", "dog's", "children's", "was", "tv", "true",
              "won't", "don't", "it's", "alarm", "clock", "zzz", "dogs"]
    matched = match_vocabulary(tokens, TOY)
    assert dict(matched.select("token", "word").rows()) == {
        "bare": "bare",          # an entry itself: not lemmatized to "bear"
        "amused": "amused",      # not "amuse"
        "dogs": "dog",           # plural -> lemma
        "smiling": "smile",      # verb form -> lemma
        "happier": "happy",      # comparative -> lemma
        "dog's": "dog",          # clitic 's stripped
        "children's": "child",   # stripped, then lemmatized
        "was": "be",
        "tv": "tv",              # tv/TV share a key: the lower-case entry wins
        "true": "TRUE",          # the real entry TRUE, matched case-insensitively
    }
    assert matched.filter(pl.col("token") == "tv").row(0)[2:] == (6.05, 4.24, 5.24)


def test_synthesize_weighted_mean_rescaled_and_nothing_dropped() -> None:
    texts = pl.DataFrame({
        "image_id": ["a", "a", "b", "c", "d", "e", "e"],
        "text": ["Happy dogs!", "So SAD...", "happy happy, sad", "nothing to see", None, "happy", "unknown"],
        "weight": [1.0, 3.0, None, 1.0, 1.0, 0.0, 1.0],
    })
    scores = by_image(synthesize_vad(texts, TOY))
    assert list(scores) == ["a", "b", "c", "d", "e"]
    # a: happy (9, 5, 7) and dog (7, 5, 5) with weight 1, sad (1, 3, 3) with weight 3:
    # V = (9 + 7 + 3) / 5 = 3.8 -> 0.35; A = (5 + 5 + 9) / 5 = 3.8 -> 0.35; D = (7 + 5 + 9) / 5 = 4.2 -> 0.4.
    a = scores["a"]
    assert (a["valence"], a["arousal"], a["dominance"]) == pytest.approx((0.35, 0.35, 0.4), abs=1e-12)
    assert a["n_lexicon_words"] == 3 and a["vad_origin"] == "lexicon" and a["n_ratings"] is None
    # b: null weight counts as 1; a repeated word counts twice: V = (9 + 9 + 1) / 3 -> (19/3 - 1) / 8 = 2/3.
    assert scores["b"]["valence"] == pytest.approx(2 / 3, abs=1e-12) and scores["b"]["n_lexicon_words"] == 3
    # No matched word, no text, or a zero weight: kept, without scores.
    for image in "cde":
        assert (scores[image]["valence"], scores[image]["dominance"], scores[image]["n_lexicon_words"]) == (None, None, 0)
    unweighted = synthesize_vad(texts.drop("weight").filter(pl.col("image_id") == "b"), TOY)
    assert unweighted["valence"][0] == pytest.approx(2 / 3, abs=1e-12)
    assert synthesize_vad(texts.head(0), TOY).schema == synthesize_vad(texts, TOY).schema


def test_keywords_leave_out_the_stop_list() -> None:
    # "is" and "will" are rated (as be, will) but frame any comment; "do" too. Only happy, dog and sad count.
    texts = pl.DataFrame({"image_id": ["a"], "text": ["The dog is happy, it will do; so sad"]})
    assert set(match_keywords(tokenize(texts)["token"], TOY)["token"]) == {"dog", "happy", "sad"}
    assert {"is", "will", "do"} <= set(match_vocabulary(tokenize(texts)["token"], TOY)["token"])
    scores = synthesize_vad(texts, TOY)
    assert scores["n_lexicon_words"][0] == 3 and scores["valence_raw"][0] == pytest.approx((7 + 9 + 1) / 3)
    every_word = synthesize_vad(texts, TOY, stoplist=frozenset())
    assert every_word["n_lexicon_words"][0] == 6
    assert {"be", "look", "like", "make", "feel", "remind"} <= KEYWORD_STOPLIST


def test_normalization_spreads_a_narrow_band_and_keeps_order() -> None:
    raw = [5.0 + i / 100 for i in range(101)]  # 5.00 .. 6.00: a narrow band on 1-9
    scores = pl.DataFrame({"image_id": [str(i) for i in range(101)], "valence_raw": raw, "arousal_raw": raw,
                           "dominance_raw": [None] * 101}, schema_overrides={"dominance_raw": pl.Float64})
    bounds = VadBounds(version=1, quantiles=(0.01, 0.99), bounds={d: (5.01, 5.99) for d in ("valence", "arousal",
                                                                                           "dominance")})
    normalized = normalize_lexicon_vad(scores, bounds)
    valence = normalized["valence"]
    assert valence[1] == pytest.approx(0.01) and valence[99] == pytest.approx(0.99) and valence[50] == pytest.approx(0.5)
    assert 0 < valence[0] < 0.01 and 0.99 < valence[100] < 1  # beyond the bounds: squeezed, not pinned
    assert valence.is_sorted() and (valence * 10).floor().clip(0, 9).n_unique() == 10
    assert normalized["dominance"].null_count() == 101


def test_synthesize_rejects_negative_weights() -> None:
    texts = pl.DataFrame({"image_id": ["a"], "text": ["happy"], "weight": [-1.0]})
    with pytest.raises(ValueError, match="negative or NaN weight"):
        synthesize_vad(texts, TOY)


def test_comments_and_label_words() -> None:
    rows = canonical([
        label("i", "label_choice", "Doubt/Confusion", annotator="0"),
        label("i", "label_choice", "Joy", annotator="1"),
        label("i", "label_combined", "Sadness"),
        label("j", "label_vote", "Amusement", 2.0),
        label("j", "label_vote", "Fear", 0.0),
        label("k", "label_prob", "joy", 0.6),
        label("m", "label_choice", "awe", text="Wow, so big.", annotator="w1"),
        rating("k", "valence", 5.0, 1, 9),
    ])
    assert comments(rows).rows() == [("m", "Wow, so big.")]
    words = label_words(rows)
    assert words.rows() == [
        ("i", "Doubt/Confusion", 1.0), ("i", "Joy", 1.0), ("j", "Amusement", 2.0), ("j", "Fear", 0.0),
        ("k", "joy", 0.6), ("m", "awe", 1.0),
    ]
    # Doubt (3) and Confusion (4) each carry the choice's weight, Joy (8) its own: (3 + 4 + 8) / 3 = 5 -> 0.5.
    scores = by_image(synthesize_vad(words, TOY))
    assert scores["i"]["valence"] == pytest.approx(0.5) and scores["i"]["n_lexicon_words"] == 3


# --- the vad_scores table ----------------------------------------------------------------------------------


def test_vad_scores_by_kind_of_source() -> None:
    contract = table_contract("vad_scores")
    votes = canonical([label("x", "label_vote", "Awe", 3.0)])
    assert vad_scores("abstract8", votes, TOY).equals(contract.empty())
    rated = vad_scores("emotion6", canonical([rating("x", "valence", 5.0, 1, 9)]), None)
    assert rated.schema == contract.schema
    assert rated.rows() == [("emotion6", "x", 0.5, None, None, "rated", 1, None, None, None, None)]
    said = canonical([
        label("p", "label_choice", "awe", text="A happy dog", annotator="w1"),
        label("q", "label_choice", "awe", text=None, annotator="w2"),       # every comment empty
        label("r", "label_choice", "fear", text="Nothing known", annotator="w3"),
    ])
    scores = vad_scores("affection", said, TOY)
    assert scores.schema == contract.schema
    assert scores.select("source", "image_id", "vad_origin", "n_lexicon_words").rows() == [
        ("affection", "p", "lexicon", 2), ("affection", "q", "lexicon", 0), ("affection", "r", "lexicon", 0),
    ]
    # The versioned bounds map the keyword mean, whatever else the partition holds: 8.0 lies above the high bound.
    low, high = shipped_vad_bounds().bounds["valence"]
    assert scores["valence_raw"][0] == pytest.approx(8.0)
    assert scores["valence"][0] == pytest.approx(0.99 + (8.0 - high) / (9.0 - high) * 0.01)
    assert vad_violations(scores) == [] and vad_violations(rated) == []
    with pytest.raises(ValueError, match="needs the VAD lexicon"):
        vad_scores("affection", said, None)


def test_vad_violations() -> None:
    clean = vad_scores("emotion6", canonical([rating("x", "valence", 5.0, 1, 9), rating("y", "arousal", 9.0, 1, 9)]), None)
    assert vad_violations(clean) == []
    broken = pl.concat([
        clean,
        clean.head(1).with_columns(pl.lit(1.25).alias("valence")),                      # duplicate key, too high
        clean.head(1).with_columns(pl.lit("z").alias("image_id"), pl.lit(float("nan")).alias("arousal"),
                                   pl.lit("guess").alias("vad_origin")),
        clean.head(1).with_columns(pl.lit("w").alias("image_id"), pl.lit(None, pl.Int32).alias("n_ratings")),
        clean.head(1).with_columns(pl.lit("v").alias("image_id"), pl.lit("lexicon").alias("vad_origin")),
    ])
    assert vad_violations(broken) == [
        "2 rows share a key ['source', 'image_id'] with another row",
        "1 valence values outside [0, 1]",
        "1 arousal values outside [0, 1]",
        "1 rows with vad_origin outside ['rated', 'lexicon']",
        "1 rated rows without a non-negative n_ratings",
        "1 lexicon rows without a non-negative n_lexicon_words",
    ]
    assert vad_violations(clean.with_columns(pl.col("n_ratings").cast(pl.Int64))) == [
        "column 'n_ratings' is Int64, expected Int32"
    ]
    assert vad_violations(clean.with_columns(pl.lit(None, pl.String).alias("source"))) == [
        "2 null values in non-nullable column 'source'"
    ]


# --- validation ------------------------------------------------------------------------------------------


def test_tertile_levels() -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "ties": [0.0, 0.0, 0.0, 1.0, 2.0, 2.0],
                          "gaps": [None, 1.0, 2.0, 3.0, None, None]})
    levels = frame.select(tertile_levels(pl.col(c)).alias(c) for c in frame.columns)
    assert levels["x"].to_list() == ["low", "low", "medium", "medium", "high", "high"]
    # Quantiles 0 and 1.333: tied values share a level, the lower bound itself is medium.
    assert levels["ties"].to_list() == ["medium", "medium", "medium", "medium", "high", "high"]
    assert levels["gaps"].to_list() == [None, "low", "medium", "high", None, None]


def test_validation_report_perfect_and_reversed() -> None:
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    rated = pl.DataFrame({"image_id": list("abcdef"), "valence": values, "arousal": values,
                          "dominance": [None] * 6}, schema_overrides={"dominance": pl.Float64})
    synthesized = pl.DataFrame({
        "image_id": list("fedcbaz"),                 # other order, one image not rated
        "valence": [0.9, 0.8, 0.7, 0.4, 0.3, 0.2, 0.5],  # same ranking as rated after the join
        "arousal": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.5],  # reversed
        "dominance": [0.5] * 7,
    })
    report = validation_report(rated, synthesized)
    assert report.columns == ["dimension", "n_images", "tertile_agreement", "pearson", "spearman"]
    rows = {r["dimension"]: r for r in report.iter_rows(named=True)}
    assert set(rows) == {"valence", "arousal"}  # dominance: never present in both
    assert (rows["valence"]["n_images"], rows["valence"]["tertile_agreement"], rows["valence"]["spearman"]) == (6, 1.0, 1.0)
    # x = 1..6 against y = 2, 3, 4, 7, 8, 9 (times 0.1): sum of products of deviations 26.5, squares 17.5 and 41.5.
    assert rows["valence"]["pearson"] == pytest.approx(26.5 / (17.5 * 41.5) ** 0.5, abs=1e-12)
    # Reversed: low and high swap, only the two medium images agree.
    assert rows["arousal"]["tertile_agreement"] == pytest.approx(2 / 6)
    assert (rows["arousal"]["pearson"], rows["arousal"]["spearman"]) == pytest.approx((-1.0, -1.0))
    identical = validation_report(rated, rated).row(0, named=True)
    assert identical == {"dimension": "valence", "n_images": 6, "tertile_agreement": 1.0,
                         "pearson": pytest.approx(1.0), "spearman": pytest.approx(1.0)}
    constant = validation_report(rated, synthesized.with_columns(pl.lit(0.5).alias("valence")))
    assert constant.filter(pl.col("dimension") == "valence").select("pearson", "spearman").row(0) == (None, None)
    assert validation_report(rated.head(0), synthesized).height == 0


# --- end to end ----------------------------------------------------------------------------------------------

# Affection's image with the 'bliss' utterance is quarantined whole (no partial distribution): 11 of 12.
SAMPLE_IMAGES = {"affection": 11, "abstract8": 0, "emotic": 6, "emotion6": 10, "findingemo": 10, "gaped": 12, "oasis": 8}


@pytest.fixture(scope="module")
def sample_annotations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    roots = write_sample(tmp_path_factory.mktemp("sample"))
    return {source: ingest(source, root).annotations for source, root in roots.items()}


def test_embedded_sample_with_the_real_lexicon(sample_annotations: dict[str, pl.DataFrame],
                                               real_lexicon: pl.DataFrame) -> None:
    assert set(sample_annotations) == set(SOURCES)
    counts = {}
    for source, rows in sample_annotations.items():
        scores = vad_scores(source, rows, real_lexicon)
        assert vad_violations(scores) == [], source
        counts[source] = scores.height
        for dimension in ("valence", "arousal", "dominance"):
            assert scores[dimension].drop_nulls().is_between(0, 1).all()
        if scores.height:
            expected = "lexicon" if source == "affection" else "rated"
            assert scores["vad_origin"].unique().to_list() == [expected]
    assert {source: n for source, n in counts.items() if source in SAMPLE_IMAGES} == SAMPLE_IMAGES  # the seven
    emotion6 = by_image(vad_scores("emotion6", sample_annotations["emotion6"], real_lexicon))
    assert (emotion6["anger/1.jpg"]["valence"], emotion6["anger/1.jpg"]["arousal"]) == pytest.approx((2.1 / 8, 5.2 / 8))
    # fear/1.jpg's valence 9.6 was quarantined at ingestion: its arousal alone remains.
    assert (emotion6["fear/1.jpg"]["valence"], emotion6["fear/1.jpg"]["n_ratings"]) == (None, 1)
    emotic = by_image(vad_scores("emotic", sample_annotations["emotic"], real_lexicon))
    # Three annotators (6, 7, 6 on 1-10), not their combination 6.33 on top.
    assert emotic["val/mscoco/images/COCO_val2014_000000000139.jpg"]["valence"] == pytest.approx(16 / 27)
    affection = vad_scores("affection", sample_annotations["affection"], real_lexicon)
    assert affection["n_lexicon_words"].min() > 0


def test_embedded_sample_with_the_sample_lexicon(sample_annotations: dict[str, pl.DataFrame], tmp_path: Path) -> None:
    write_sample_lexicon(tmp_path / "warriner.csv")
    scores = by_image(vad_scores("affection", sample_annotations["affection"], read_lexicon(tmp_path / "warriner.csv")))
    # "A dog in a costume, how silly." / "Cute and cosy." / "I laughed out loud.": dog, silly, cute, laugh.
    image = scores["you_aaai_affective/amusement_0042.jpg"]
    assert image["n_lexicon_words"] == 4
    assert (image["valence_raw"], image["arousal_raw"], image["dominance_raw"]) == pytest.approx(
        (28.84 / 4, 21.96 / 4, 25.64 / 4), abs=1e-12
    )
    # Normalised by the versioned bounds: a mean above their high end lies in the top hundredth, below 1.
    high = shipped_vad_bounds().bounds["valence"][1]
    assert 28.84 / 4 > high
    assert image["valence"] == pytest.approx(0.99 + (28.84 / 4 - high) / (9 - high) * 0.01, abs=1e-12)


@pytest.mark.slow
def test_real_findingemo(tmp_path: Path, real_lexicon: pl.DataFrame) -> None:
    if importlib.util.find_spec("findingemo_light") is None:
        pytest.skip("findingemo-light is not installed (test extra): no real FindingEmo annotations")
    package = Path(importlib.util.find_spec("findingemo_light").submodule_search_locations[0])
    shutil.copy(package / "data" / "annotations_single.ann", tmp_path / "annotations_single.ann")
    annotations = ingest("findingemo", tmp_path).annotations
    scores = vad_scores("findingemo", annotations, real_lexicon)
    assert scores.height == 25_869
    assert vad_violations(scores) == []
    assert scores["dominance"].null_count() == 25_869  # FindingEmo rates valence and arousal only
    synthesized = synthesize_vad(label_words(annotations), real_lexicon)
    # One Plutchik word per image; "Pensiveness" (706 images) is no Warriner lemma.
    assert synthesized["n_lexicon_words"].value_counts().sort("n_lexicon_words").rows() == [(0, 706), (1, 25_163)]
    report = {r["dimension"]: r for r in validation_report(scores, synthesized).iter_rows(named=True)}
    assert set(report) == {"valence", "arousal"}
    valence, arousal = report["valence"], report["arousal"]
    assert valence["n_images"] == 25_163
    # Measured: valence pearson 0.764, spearman 0.735, tertile agreement 0.659; arousal 0.236 / 0.232 / 0.386.
    assert valence["pearson"] == pytest.approx(0.764, abs=0.01)
    assert valence["spearman"] == pytest.approx(0.735, abs=0.01)
    assert valence["tertile_agreement"] == pytest.approx(0.659, abs=0.01)
    assert arousal["pearson"] == pytest.approx(0.236, abs=0.02)
    assert arousal["tertile_agreement"] == pytest.approx(0.386, abs=0.02)
