"""EMOTIC -> Ekman by VAD clustering (paper appendix C.1): samples, cross-validated centroids, clusters."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from eemo_pipeline.labels import emotic_vad as ev
from eemo_pipeline.sources import emotic
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline_tests.floats import assert_floats_close

CATEGORIES = list(ev.EMOTIC_CATEGORIES)
K = len(CATEGORIES)
TABLE6 = {  # paper Table 6: target -> (anchor category, 0-1 VAD)
    "joy": ("Pleasure", (0.6605, 0.5017, 0.6320)),
    "surprise": ("Surprise", (0.5069, 0.5077, 0.5326)),
    "anger": ("Anger", (0.2160, 0.6575, 0.5032)),
    "disgust": ("Aversion", (0.3651, 0.4591, 0.5024)),
    "sadness": ("Sadness", (0.2098, 0.3250, 0.3707)),
    "fear": ("Fear", (0.4093, 0.7010, 0.4415)),
    "neutral": ("Peace", (0.5283, 0.3603, 0.6027)),
}


def _choices(n: int, rng: np.random.Generator, absent: tuple[str, ...] = ()) -> np.ndarray:
    """(n x K) booleans: each annotator picks 1-4 distinct categories uniformly among those not ``absent``."""
    keys = rng.random((n, K))
    keys[:, [CATEGORIES.index(c) for c in absent]] = np.inf
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
    return ranks < rng.integers(1, 5, size=n)[:, None]


def _synthetic(w: np.ndarray, n: int, noise: float, seed: int, absent: tuple[str, ...] = ()):
    rng = np.random.default_rng(seed)
    chosen = _choices(n, rng, absent)
    p = chosen / chosen.sum(axis=1, keepdims=True)
    y = p @ w + noise * rng.standard_normal((n, 3))
    return chosen, p, y


def _long_frame(chosen: np.ndarray, y: np.ndarray) -> pl.DataFrame:
    """Canonical EMOTIC rows for samples (two subjects per image, annotator "0"), ratings on 1-10, plus a
    combined annotation per person (``label_combined`` + ``"combined": true`` ratings) that must be skipped."""
    n = chosen.shape[0]
    sample, column = np.nonzero(chosen)
    ident = {"image_id": [f"val/img{s // 2:05d}.jpg" for s in range(n)], "subject": np.arange(n) % 2}
    people = pl.DataFrame(ident, schema_overrides={"subject": pl.Int32}).with_row_index("s")
    labels = pl.DataFrame({"s": sample.astype(np.uint32), "label": np.asarray(CATEGORIES)[column]}).with_columns(
        pl.lit("label_choice").alias("measure"), pl.lit(1.0).alias("value"), pl.lit("0").alias("annotator"),
        pl.lit('{"bbox": [1, 2, 3, 4]}').alias("attributes"),
    )
    ratings = pl.DataFrame({"s": np.arange(n, dtype=np.uint32), **{r: 1 + 9 * y[:, i] for i, r in enumerate(ev.RATINGS)}})
    ratings = ratings.unpivot(index="s", variable_name="measure", value_name="value").with_columns(
        pl.lit(None, pl.String).alias("label"), pl.lit("0").alias("annotator"), pl.lit("{}").alias("attributes"),
    )
    combined_labels = labels.with_columns(
        pl.lit("label_combined").alias("measure"), pl.lit(None, pl.String).alias("annotator")
    )
    combined_ratings = ratings.with_columns(
        pl.lit(9.5).alias("value"), pl.lit(None, pl.String).alias("annotator"),
        pl.lit('{"combined": true}').alias("attributes"),
    )
    columns = ["s", "annotator", "measure", "label", "value", "attributes"]
    frame = pl.concat([f.select(columns) for f in (labels, ratings, combined_labels, combined_ratings)])
    is_rating = pl.col("measure").is_in(ev.RATINGS)
    return (
        frame.join(people, on="s")
        .with_columns(
            pl.lit("emotic").alias("source"),
            pl.when(is_rating).then(1.0).alias("scale_min"),
            pl.when(is_rating).then(10.0).alias("scale_max"),
        )
        .drop("s")
    )


@pytest.fixture(scope="module")
def true_w() -> np.ndarray:
    return np.random.default_rng(7).uniform(0.1, 0.9, size=(K, 3))


@pytest.fixture(scope="module")
def sample_annotations(tmp_path_factory) -> pl.DataFrame:
    root = tmp_path_factory.mktemp("emotic")
    emotic.write_sample(root)
    return ingest("emotic", root).annotations


# --- regression_samples ---------------------------------------------------------------------------------


def test_regression_samples_on_embedded_sample(sample_annotations):
    p, y = ev.regression_samples(sample_annotations, CATEGORIES)
    # By hand from emotic._SAMPLE: train 2 persons (the NaN-valence and the valence-11 persons lose a rating
    # to the quarantine), val 3 + 2 + 2 annotators, test 3 annotators; combined annotations are not samples.
    assert p.shape == (12, K) and y.shape == (12, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert ((y >= 0) & (y <= 1)).all()
    # The one annotator choosing Fear + Surprise (val, ratings 2, 9, 2): 0.5 each, rescaled (v - 1) / 9.
    row = np.flatnonzero(p[:, CATEGORIES.index("Surprise")] > 0)
    assert row.size == 1
    expected = np.zeros(K)
    expected[[CATEGORIES.index("Fear"), CATEGORIES.index("Surprise")]] = 0.5
    np.testing.assert_allclose(p[row[0]], expected)
    np.testing.assert_allclose(y[row[0]], [1 / 9, 8 / 9, 1 / 9])
    # The train person with Engagement, Happiness, Pleasure (7, 6, 7): a third each.
    row = np.flatnonzero(p[:, CATEGORIES.index("Pleasure")] > 0)
    np.testing.assert_allclose(p[row[0], p[row[0]] > 0], [1 / 3] * 3)
    np.testing.assert_allclose(y[row[0]], [6 / 9, 5 / 9, 6 / 9])
    # Masses per sample: 1 / (number of chosen categories), as 1, 0.5 or 1/3.
    masses = np.unique(np.round(p[p > 0], 6))
    np.testing.assert_allclose(masses, [1 / 3, 0.5, 1.0], atol=1e-6)


def test_regression_samples_round_trip_skips_combined_rows(true_w):
    chosen, p, y = _synthetic(true_w, 200, noise=0.0, seed=3)
    frame = _long_frame(chosen, y)
    got_p, got_y = ev.regression_samples(frame, CATEGORIES)
    # _long_frame orders samples by image then subject, which is the function's sort order.
    np.testing.assert_allclose(got_p, p, atol=1e-12)
    np.testing.assert_allclose(got_y, y, atol=1e-12)


def test_equal_mass_per_annotator_and_duplicates_counted_once():
    key = {"image_id": "train/a.jpg", "subject": 0, "scale_min": None, "scale_max": None, "attributes": "{}"}
    rows = [
        {**key, "annotator": "0", "measure": "label_choice", "label": "Anger", "value": 1.0},
        {**key, "annotator": "0", "measure": "label_choice", "label": "Fear", "value": 1.0},
        {**key, "annotator": "0", "measure": "label_choice", "label": "Fear", "value": 1.0},  # duplicate
        {**key, "annotator": "1", "measure": "label_choice", "label": "Peace", "value": 1.0},
        {**key, "annotator": "2", "measure": "label_choice", "label": "Pain", "value": 1.0},  # no ratings
    ]
    for annotator, values in (("0", (4.0, 7.0, 1.0)), ("1", (10.0, 1.0, 5.5))):
        rows += [
            {**key, "annotator": annotator, "measure": m, "label": None, "value": v, "scale_min": 1.0, "scale_max": 10.0}
            for m, v in zip(ev.RATINGS, values)
        ]
    rows.append({**key, "annotator": "3", "measure": "valence", "label": None, "value": 5.0, "scale_min": 1.0,
                 "scale_max": 10.0})  # ratings without categories: no sample
    p, y = ev.regression_samples(pl.DataFrame(rows), CATEGORIES)
    assert p.shape == (2, K)
    assert dict(zip(np.asarray(CATEGORIES)[p[0] > 0], p[0][p[0] > 0])) == {"Anger": 0.5, "Fear": 0.5}
    assert dict(zip(np.asarray(CATEGORIES)[p[1] > 0], p[1][p[1] > 0])) == {"Peace": 1.0}
    np.testing.assert_allclose(y, [[1 / 3, 2 / 3, 0.0], [1.0, 0.0, 0.5]])


def test_unknown_category_raises():
    frame = pl.DataFrame(
        {"image_id": ["x"], "subject": [0], "annotator": ["0"], "measure": ["label_choice"], "label": ["Joyful"],
         "value": [1.0], "scale_min": [None], "scale_max": [None]},
        schema_overrides={"scale_min": pl.Float64, "scale_max": pl.Float64},
    )
    with pytest.raises(ValueError, match="Joyful"):
        ev.regression_samples(frame, CATEGORIES)


# --- fit_centroids --------------------------------------------------------------------------------------


def test_recovers_known_centroids_with_noise(true_w):
    _, p, y = _synthetic(true_w, 3000, noise=0.02, seed=11)
    fit = ev.fit_centroids(p, y)
    error = np.abs(fit.centroids - true_w)
    assert error.max() < 0.03, error.max()
    assert fit.n_fits == 50
    assert fit.centroids.shape == fit.std.shape == (K, 3)
    np.testing.assert_array_equal(fit.counts, (p > 0).sum(axis=0))
    assert fit.identifiable.all() and fit.rank == K
    assert 0.015 < fit.cv_rmse < 0.025  # held-out error is the noise (sd 0.02)
    assert (fit.std < 0.02).all()


def test_noise_free_recovery_is_exact(true_w):
    _, p, y = _synthetic(true_w, 2000, noise=0.0, seed=5)
    fit = ev.fit_centroids(p, y)
    np.testing.assert_allclose(fit.centroids, true_w, rtol=0, atol=1e-9)
    assert fit.cv_rmse < 1e-9


def test_cross_validation_is_deterministic_for_a_seed(true_w):
    _, p, y = _synthetic(true_w, 600, noise=0.05, seed=2)
    first = ev.fit_centroids(p, y, folds=4, repeats=3, seed=42)
    again = ev.fit_centroids(p, y, folds=4, repeats=3, seed=42)
    other = ev.fit_centroids(p, y, folds=4, repeats=3, seed=43)
    assert_floats_close(first.centroids, again.centroids)  # up to rounding: BLAS may sum in another order
    assert_floats_close(first.std, again.std)
    assert_floats_close(first.cv_rmse, again.cv_rmse)
    assert first.n_fits == 12
    assert not np.allclose(first.centroids, other.centroids, rtol=1e-6, atol=0)


def test_absent_category_is_nan_with_count_zero_and_unassigned(true_w):
    _, p, y = _synthetic(true_w, 2000, noise=0.0, seed=9, absent=("Yearning",))
    fit = ev.fit_centroids(p, y)
    j = CATEGORIES.index("Yearning")
    assert np.isnan(fit.centroids[j]).all() and np.isnan(fit.std[j]).all()
    assert fit.counts[j] == 0 and not fit.identifiable[j]
    others = np.arange(K) != j
    np.testing.assert_allclose(fit.centroids[others], true_w[others], atol=1e-9)
    table = ev.assign_clusters(fit.centroids, CATEGORIES, TABLE6, radius=None, counts=fit.counts)
    row = table.row(j, named=True)
    assert row["n_samples"] == 0
    assert row["valence"] is None and row["distance"] is None
    assert row["nearest_target"] is None and row["cluster_target"] is None
    assert table.filter(pl.col("category") != "Yearning").get_column("cluster_target").null_count() == 0


def test_categories_only_chosen_together_are_masked(true_w):
    rng = np.random.default_rng(4)
    chosen = _choices(1500, rng)
    pain, suffering = CATEGORIES.index("Pain"), CATEGORIES.index("Suffering")
    chosen[:, suffering] = chosen[:, pain]  # never one without the other: only their sum is identified
    chosen = chosen[chosen.any(axis=1)]
    p = chosen / chosen.sum(axis=1, keepdims=True)
    fit = ev.fit_centroids(p, p @ true_w)
    assert fit.counts[pain] == fit.counts[suffering] > 0
    assert not fit.identifiable[[pain, suffering]].any() and fit.rank == K - 1
    assert np.isnan(fit.centroids[[pain, suffering]]).all()
    rest = ~np.isin(np.arange(K), [pain, suffering])
    np.testing.assert_allclose(fit.centroids[rest], true_w[rest], atol=1e-9)


def test_fit_rejects_too_few_samples_and_non_finite_input():
    with pytest.raises(ValueError, match="folds"):
        ev.fit_centroids(np.eye(3, K), np.zeros((3, 3)), folds=5)
    y = np.zeros((K, 3))
    y[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        ev.fit_centroids(np.eye(K), y)


# --- assign_clusters ------------------------------------------------------------------------------------


def _anchor_centroids() -> np.ndarray:
    centroids = np.full((K, 3), np.nan)
    for anchor, vad in TABLE6.values():
        centroids[CATEGORIES.index(anchor)] = vad
    return centroids


def test_table6_anchor_values_assign_each_anchor_to_its_target():
    centroids = _anchor_centroids()
    assert ev.default_radius(centroids, TABLE6) == 0.0
    table = ev.assign_clusters(centroids, CATEGORIES, TABLE6, radius=None)
    assert table.columns == [
        "category", "valence", "arousal", "dominance", "n_samples", "nearest_target", "distance", "cluster_target",
    ]
    anchors = table.filter(pl.col("category").is_in([a for a, _ in TABLE6.values()]))
    assert anchors.height == 7
    assert dict(anchors.select("category", "cluster_target").rows()) == {a: t for t, (a, _) in TABLE6.items()}
    assert anchors.get_column("distance").max() == 0.0
    assert table.filter(pl.col("distance").is_null()).height == K - 7


def test_default_radius_assigns_everything_and_a_smaller_one_drops_the_farthest(true_w):
    table = ev.assign_clusters(true_w, CATEGORIES, TABLE6, radius=None)
    radius = ev.default_radius(true_w, TABLE6)
    distances = table.get_column("distance").to_numpy()
    assert radius == pytest.approx(distances.max())
    assert table.get_column("cluster_target").null_count() == 0
    assert table.get_column("cluster_target").to_list() == table.get_column("nearest_target").to_list()

    farthest = table.row(int(np.argmax(distances)), named=True)["category"]
    smaller = float(np.sort(distances)[-2] + radius) / 2  # between the two largest distances
    tighter = ev.assign_clusters(true_w, CATEGORIES, TABLE6, radius=smaller)
    dropped = tighter.filter(pl.col("cluster_target").is_null()).get_column("category").to_list()
    assert dropped == [farthest]
    assert tighter.filter(pl.col("category") == farthest).get_column("nearest_target").item() is not None


# --- contract and end to end ----------------------------------------------------------------------------


def test_contract_anchors_and_reviewed_mapping():
    anchors = ev.load_anchors()
    assert anchors == TABLE6
    reviewed = ev.reviewed_mapping()
    assert set(reviewed) == set(CATEGORIES)
    for target, (anchor, _) in anchors.items():
        assert reviewed[anchor] == target


def test_emotic_centroids_end_to_end_on_reviewed_geometry():
    # Each category sits near the anchor of its reviewed target, except Yearning, placed at the sadness anchor.
    anchors, reviewed = ev.load_anchors(), ev.reviewed_mapping()
    rng = np.random.default_rng(21)
    w = np.asarray([anchors[reviewed[c]][1] for c in CATEGORIES]) + rng.uniform(-0.02, 0.02, size=(K, 3))
    for anchor, vad in anchors.values():
        w[CATEGORIES.index(anchor)] = vad
    w[CATEGORIES.index("Yearning")] = anchors["sadness"][1]
    chosen, _, y = _synthetic(w, 3000, noise=0.02, seed=8)

    table, summary = ev.emotic_centroids(_long_frame(chosen, y))
    assert table.columns[-2:] == ["reviewed_target", "agrees"]
    assert table.get_column("reviewed_target").to_list() == [reviewed[c] for c in CATEGORIES]
    disagree = table.filter(~pl.col("agrees"))
    assert disagree.select("category", "cluster_target", "reviewed_target").rows() == [("Yearning", "sadness", "joy")]
    assert table.get_column("agrees").sum() == K - 1
    centroids = table.select(ev.RATINGS).to_numpy()
    assert np.abs(centroids - w).max() < 0.03
    assert summary["n_samples"] == 3000 and summary["n_fits"] == 50
    assert summary["categories_with_centroid"] == summary["categories_assigned"] == K
    assert summary["agreement"] == pytest.approx((K - 1) / K)
    assert summary["disagreements"] == ["Yearning: sadness -> joy"]
    assert summary["radius_rule"] == ev.RADIUS_RULE
    assert summary["radius"] == pytest.approx(table.get_column("distance").max())
    json.dumps(summary)  # ready for asset metadata

    _, tight = ev.emotic_centroids(_long_frame(chosen, y), radius=0.0)
    assert tight["radius_rule"] == "given" and tight["categories_assigned"] == 0 and tight["agreement"] == 0.0


def test_emotic_centroids_on_embedded_sample(sample_annotations):
    table, summary = ev.emotic_centroids(sample_annotations)
    assert summary["n_samples"] == 12
    no_centroid = table.filter(pl.col("valence").is_null())
    assert no_centroid.get_column("n_samples").to_list() == [0] * no_centroid.height
    assert no_centroid.get_column("agrees").null_count() == no_centroid.height
    assert summary["categories_with_centroid"] == K - no_centroid.height
