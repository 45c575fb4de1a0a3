"""An image's comment-synthesized VAD depends on its own comments and versioned constants only, not on which
other images share its partition (issue 18's probe, on comments written here)."""

from __future__ import annotations

import polars as pl
import pytest

from eemo_pipeline.vad.lexicon import read_lexicon, write_sample_lexicon
from eemo_pipeline.vad.synthesis import vad_scores
from eemo_pipeline_tests.vad.comments import NEGATIVE_EMOTIONS, affection_annotations, artworks

DIMENSIONS = ("valence", "arousal", "dominance")
MAX_MOVEMENT = 0.02


@pytest.fixture(scope="module")
def lexicon(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    path = tmp_path_factory.mktemp("lexicon") / "warriner.csv"
    write_sample_lexicon(path)
    return read_lexicon(path)


def scored(items: list[dict], lexicon: pl.DataFrame) -> pl.DataFrame:
    return vad_scores("affection", affection_annotations(items), lexicon).select("image_id", *DIMENSIONS)


def test_the_same_images_get_the_same_vad_in_any_partition(lexicon: pl.DataFrame) -> None:
    items = artworks(lexicon, 300, seed=1)
    negative = [item for item in items if item["dominant_emotion"] in NEGATIVE_EMOTIONS]
    positive = [item for item in items if item["dominant_emotion"] not in NEGATIVE_EMOTIONS]
    assert 50 < len(negative) < 250
    appended = {**items[0], "new_id": 999_999}
    full = scored(items, lexicon)
    assert full.height == 300 and full.null_count().sum_horizontal().item() == 0
    makeups = {
        "one-sided": scored(negative, lexicon),
        "two images": scored([negative[0], positive[0]], lexicon),
        "one appended": scored([*items, appended], lexicon),
    }
    for name, part in makeups.items():
        joined = part.join(full, on="image_id", suffix="_full")
        assert joined.height == min(part.height, full.height), name
        for dimension in DIMENSIONS:
            moved = (joined[dimension] - joined[f"{dimension}_full"]).abs().max()
            assert moved <= MAX_MOVEMENT, f"{name}: {dimension} moved by {moved:.3f}"
        values = pl.concat([part[d] for d in DIMENSIONS])
        assert not values.is_in([0.0, 1.0]).any(), f"{name}: values pinned to exactly 0 or 1"
    # The values still tell the images apart: a two-image partition is not forced to 0 and 1 but keeps its order.
    two = makeups["two images"].sort("image_id")
    assert two["valence"].n_unique() == 2 and two["valence"].is_between(0.0, 1.0, closed="none").all()


def test_a_rated_image_joining_the_partition_leaves_the_commented_images_alone(lexicon: pl.DataFrame) -> None:
    """The origin (rated or synthesized) is decided per image: one image with a valence rating in a partition of
    commented images gets its rating, and the others keep their comment VAD (before, every image of a partition
    with any rating took the rated path, and the commented ones became null)."""
    items = artworks(lexicon, 20, seed=3)
    annotations = affection_annotations(items)
    rated = annotations.head(1).with_columns(
        pl.lit("rated-image").alias("image_id"), pl.lit("valence").alias("measure"), pl.lit(None, pl.String).alias("label"),
        pl.lit(7.0).alias("value"), pl.lit(None, pl.String).alias("text"), pl.lit(1.0).alias("scale_min"),
        pl.lit(9.0).alias("scale_max"))
    alone = vad_scores("affection", annotations, lexicon)
    mixed = vad_scores("affection", pl.concat([annotations, rated], how="vertical_relaxed"), lexicon)
    assert mixed.filter(pl.col("image_id") == "rated-image").select("valence", "vad_origin").row(0) == (0.75, "rated")
    commented = mixed.filter(pl.col("image_id") != "rated-image").select(alone.columns)
    assert commented.equals(alone)
    assert (commented["vad_origin"] == "lexicon").all() and commented["valence"].null_count() == 0
