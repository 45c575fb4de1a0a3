from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.contracts import table_contract
from eemo_pipeline.labels.mapping import map_labels, mapped_violations
from eemo_pipeline.labels.taxonomy import TARGETS, mapping_table, taxonomy_of
from eemo_pipeline.sample import write_sample
from eemo_pipeline.sources.ingest import ingest


def facts(*rows: tuple) -> pl.DataFrame:
    """Canonical rows from (image_id, measure, label, value[, annotator, subject])."""
    records = [
        {"source": "x", "image_id": r[0], "measure": r[1], "label": r[2], "value": float(r[3]),
         "annotator": r[4] if len(r) > 4 else None, "subject": r[5] if len(r) > 5 else None,
         "source_file": "f", "source_line": i + 2}
        for i, r in enumerate(rows)
    ]
    return table_contract("raw_annotations").conform(pl.DataFrame(records))


def row(result, image_id: str) -> dict:
    return result.labels.filter(pl.col("image_id") == image_id).row(0, named=True)


def probabilities(record: dict) -> dict[str, float]:
    return {t: record[f"p_{t}"] for t in TARGETS if record[f"p_{t}"]}


def test_every_native_label_of_every_vocabulary_is_mapped_or_explicitly_excluded() -> None:
    from eemo_pipeline.contracts import source_facts

    table = mapping_table()
    for source in ("affection", "abstract8", "emotic", "emotion6", "findingemo"):
        taxonomy = taxonomy_of(source)
        labels = set(table.filter(pl.col("taxonomy") == taxonomy)["label"])
        assert labels == set(source_facts(source).labels), source
    excluded = table.filter(pl.col("target").is_null())
    assert excluded.select("taxonomy", "label").rows() == [("artemis9", "something else")]
    assert table.filter((pl.col("method") == "synonym") & (pl.col("label").str.to_lowercase() != pl.col("target")))[
        "why"
    ].null_count() == 0


def test_mikels_votes_map_to_a_distribution_with_a_strict_ranking() -> None:
    votes = [("Amusement", 3), ("Anger", 0), ("Awe", 2), ("Content", 4), ("Disgust", 1), ("Excitement", 0),
             ("Fear", 3), ("Sad", 1)]
    result = map_labels("abstract8", facts(*[("a1", "label_vote", label, n) for label, n in votes]))
    record = row(result, "a1")
    # joy = amusement + content + excitement = 7, fear 3, surprise (awe) 2, disgust 1, sadness 1 of 14 votes.
    assert probabilities(record) == pytest.approx({"joy": 0.5, "fear": 3 / 14, "surprise": 2 / 14,
                                                   "disgust": 1 / 14, "sadness": 1 / 14})
    assert record["dominant_emotion"] == "joy" and record["ranking"] == ["joy", "fear", "surprise"]
    assert record["n_labels"] == 8  # label facts mapped to a target, zero votes included
    assert mapped_violations(result.labels) == []


def test_a_tie_inside_or_at_the_end_of_the_top_three_drops_the_ranking() -> None:
    result = map_labels(
        "emotion6",
        facts(
            ("tie3", "label_prob", "joy", 0.5), ("tie3", "label_prob", "fear", 0.2), ("tie3", "label_prob", "anger", 0.15),
            ("tie3", "label_prob", "sadness", 0.15),
            ("tie1", "label_prob", "joy", 0.4), ("tie1", "label_prob", "fear", 0.4), ("tie1", "label_prob", "anger", 0.2),
            ("two", "label_prob", "joy", 0.7), ("two", "label_prob", "fear", 0.3),
            ("noise", "label_prob", "sadness", 0.666667), ("noise", "label_prob", "neutral", 0.133334),
            ("noise", "label_prob", "fear", 0.133333), ("noise", "label_prob", "anger", 0.066666),
        ),
    )
    assert row(result, "tie3")["ranking"] is None and row(result, "tie3")["dominant_emotion"] == "joy"
    assert row(result, "tie1")["ranking"] is None and row(result, "tie1")["dominant_emotion"] is None
    assert row(result, "two")["ranking"] == ["joy", "fear"]  # fewer than three emotions: a shorter ranking
    assert row(result, "noise")["ranking"] is None  # 0.133334 vs 0.133333 is rounding, a tie
    assert result.stats["ranking_tied"] == 3 and result.stats["ranked"] == 1 and result.stats["dominant_tied"] == 1


def test_something_else_is_excluded_and_counted() -> None:
    result = map_labels(
        "affection",
        facts(("i", "label_choice", "awe", 1, "w1"), ("i", "label_choice", "something else", 1, "w2"),
              ("i", "label_choice", "awe", 1, "w3"), ("j", "label_choice", "something else", 1, "w1")),
    )
    assert probabilities(row(result, "i")) == {"surprise": 1.0}
    assert result.stats["unmapped_label_facts"] == 2 and result.stats["images_without_target"] == 1
    assert result.labels["image_id"].to_list() == ["i"]


def test_emotic_progressive_ranking_uses_frequency_then_concentration_then_order() -> None:
    # Three selections of one image: (Happiness, Fear), (Fear), (Sadness, Happiness, Peace).
    # frequency: joy 2, fear 2, sadness 1, neutral 1; concentration: fear 1/2 + 1 = 1.5 > joy 1/2 + 1/3;
    # sadness and neutral tie on frequency and concentration (1/3 each); primacy puts sadness (first) ahead.
    result = map_labels(
        "emotic",
        facts(
            ("img", "label_choice", "Happiness", 1, "0", 0), ("img", "label_choice", "Fear", 1, "0", 0),
            ("img", "label_choice", "Fear", 1, "1", 0),
            ("img", "label_choice", "Sadness", 1, "2", 0), ("img", "label_choice", "Happiness", 1, "2", 0),
            ("img", "label_choice", "Peace", 1, "2", 0),
            ("img", "label_combined", "Anger", 1, None, 0),  # consensus rows are not selections
        ),
    )
    record = row(result, "img")
    assert record["ranking"] == ["fear", "joy", "sadness"] and record["dominant_emotion"] == "fear"
    total = 1.5 + 5 / 6 + 1 / 3 + 1 / 3
    assert probabilities(record) == pytest.approx({"fear": 1.5 / total, "joy": (5 / 6) / total,
                                                   "sadness": (1 / 3) / total, "neutral": (1 / 3) / total})


def test_emotic_categories_of_one_target_count_once_per_selection() -> None:
    # Happiness and Pleasure both map to joy: the selection holds {joy, fear}, each with 1/2.
    result = map_labels(
        "emotic",
        facts(("img", "label_choice", "Happiness", 1, "0", 0), ("img", "label_choice", "Pleasure", 1, "0", 0),
              ("img", "label_choice", "Fear", 1, "0", 0), ("img", "label_choice", "Fear", 1, "0", 1)),
    )
    record = row(result, "img")
    assert probabilities(record) == pytest.approx({"joy": 0.5 / 2, "fear": 1.5 / 2})
    assert record["ranking"] == ["fear", "joy"]


def test_emotic_still_tied_after_three_stages_is_dropped() -> None:
    result = map_labels(
        "emotic",
        facts(("img", "label_choice", "Fear", 1, "0", 0), ("img", "label_choice", "Anger", 1, "1", 0)),
    )
    assert row(result, "img")["ranking"] is None and row(result, "img")["dominant_emotion"] is None


def test_sources_without_categories_produce_no_rows() -> None:
    empty = map_labels("gaped", facts(("g", "valence", None, 50)))
    assert empty.labels.is_empty() and empty.labels.schema == table_contract("mapped_labels").schema


def test_contract_check_catches_broken_rows() -> None:
    good = map_labels("findingemo", facts(("f", "label_choice", "Rage", 1, "u"))).labels
    assert good.row(0, named=True)["ranking"] == ["anger"] and mapped_violations(good) == []
    broken = good.with_columns(pl.lit(0.7).alias("p_anger"), pl.lit(["anger", "anger", "joy", "fear"]).alias("ranking"))
    assert mapped_violations(broken) == [
        "1 rows: probabilities do not sum to 1",
        "1 rows: ranking longer than three",
        "1 rows: ranking repeats an emotion",
    ]


def test_embedded_sample_maps_end_to_end(tmp_path: Path) -> None:
    roots = write_sample(tmp_path)
    # Affection's image with the 'bliss' utterance and Abstract-8's with 14 votes are quarantined whole.
    expected_rows = {"affection": 11, "abstract8": 9, "emotic": 6, "emotion6": 10, "findingemo": 10, "gaped": 0, "oasis": 0}
    for source, rows in expected_rows.items():
        result = map_labels(source, ingest(source, roots[source]).annotations)
        assert result.labels.height == rows, source
        assert mapped_violations(result.labels) == [], source


def test_real_findingemo_annotations_map_end_to_end(tmp_path: Path) -> None:
    package = pytest.importorskip("findingemo_light")
    shutil.copyfile(Path(package.__file__).parent / "data" / "annotations_single.ann", tmp_path / "annotations_single.ann")
    result = map_labels("findingemo", ingest("findingemo", tmp_path).annotations)
    assert result.labels.height == 25_869 and mapped_violations(result.labels) == []
    # One annotator per image: every image has a one-hot distribution, a dominant emotion and a one-item ranking.
    assert result.stats["ranked"] == 25_869 and result.stats["dominant_tied"] == 0
    assert (result.labels["ranking"].list.len() == 1).all()
    # With label_taxonomy.yaml v1 (the Anticipation family, Acceptance and Boredom map to neutral):
    assert dict(result.labels.group_by("dominant_emotion").len().iter_rows()) == {
        "joy": 9187, "neutral": 7876, "sadness": 2665, "anger": 2439, "fear": 2401, "surprise": 888, "disgust": 413}
