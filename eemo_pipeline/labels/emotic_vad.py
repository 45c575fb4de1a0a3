"""EMOTIC's 26 categories placed in VAD space and clustered onto Ekman six + neutral (paper appendix C.1).

The method, as plain functions (no Dagster here; the ``label_taxonomy`` asset wraps :func:`emotic_centroids`):

1. :func:`regression_samples`: one sample per (image, subject, annotator) holding both chosen categories and
   all three ratings. ``P`` spreads probability mass 1 uniformly over the annotator's chosen categories (the
   paper's "uniform contribution hypothesis"); ``Y`` is the annotator's (valence, arousal, dominance) min-max
   rescaled to 0-1 from the rows' ``scale_min``/``scale_max``.
2. :func:`fit_centroids`: ``Y = P W + e`` by least squares without intercept, ``W`` estimated on the training
   part of every fold of repeated k-fold cross-validation (k and the repeats were not published: defaults
   :data:`DEFAULT_FOLDS` x :data:`DEFAULT_REPEATS`) and averaged. Row j of ``W`` (column j of ``W^T``) is
   category j's VAD centroid.
3. :func:`assign_clusters`: every category goes to the Table 6 anchor nearest to its centroid (Euclidean in
   0-1 VAD) when that anchor lies within the clustering radius; the radius rule the paper leaves open is
   :func:`default_radius`.
4. :func:`emotic_centroids`: 1-3 end to end, beside the reviewed mapping shipped in
   ``data_contracts/label_taxonomy.yaml`` (the paper's final step was manual review, so the reviewed table is
   what maps labels; this function reports where the re-estimated clustering agrees with it).

Categories without a centroid get NaN, never a made-up value: a category nobody chose has no column in the
regression, and the minimum-norm coefficient ``np.linalg.lstsq`` returns for it (0) is not a centroid.
The same holds for any category whose coefficient the data do not identify (it is only ever chosen together
with the same others, so ``P`` is rank deficient in its direction): it is masked too, and counted in
``CentroidFit.identifiable``. On the full EMOTIC every category is chosen on its own often enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import yaml

from eemo_pipeline.contracts import contracts_dir

TAXONOMY = "emotic26"
SOURCE = "emotic"
# The 26 EMOTIC categories as the source spells them; the column order of ``P`` and the row order of ``W``.
EMOTIC_CATEGORIES: tuple[str, ...] = (
    "Affection", "Anger", "Annoyance", "Anticipation", "Aversion", "Confidence", "Disapproval", "Disconnection",
    "Disquietment", "Doubt/Confusion", "Embarrassment", "Engagement", "Esteem", "Excitement", "Fatigue", "Fear",
    "Happiness", "Pain", "Peace", "Pleasure", "Sadness", "Sensitivity", "Suffering", "Surprise", "Sympathy",
    "Yearning",
)
RATINGS: tuple[str, ...] = ("valence", "arousal", "dominance")
CHOICE_MEASURE = "label_choice"  # per-annotator categories; ``label_combined`` (val/test aggregate) is skipped
# Not published (REFERENCE section 1): our defaults for the repeated k-fold cross-validation.
DEFAULT_FOLDS = 5
DEFAULT_REPEATS = 10
DEFAULT_SEED = 0
RADIUS_RULE = "max_nearest_anchor_distance"  # the rule :func:`default_radius` implements, named in metadata
# A category is identifiable in a fit when its weight in every null-space direction of P is below this.
_NULL_WEIGHT_TOL = 1e-6

Anchors = dict[str, tuple[str, tuple[float, float, float]]]


# --- samples -------------------------------------------------------------------------------------------


def regression_samples(
    annotations: pl.DataFrame, categories: list[str] | tuple[str, ...] = EMOTIC_CATEGORIES
) -> tuple[np.ndarray, np.ndarray]:
    """``(P, Y)`` from EMOTIC rows of the canonical long table (``raw_annotations``).

    A sample is one (image, subject, annotator) with at least one ``label_choice`` and finite ``valence``,
    ``arousal`` and ``dominance``. Combined val/test rows (annotator null; ``label_combined`` for categories,
    ``"combined": true`` in ``attributes`` for ratings) are skipped: they aggregate the per-annotator rows
    already counted. With a ``source`` column only ``emotic`` rows are used. ``P`` (n x len(categories))
    gives each of the annotator's distinct chosen categories the mass 1/count; ``Y`` (n x 3) is
    ``(value - scale_min) / (scale_max - scale_min)``. Rows are sorted by (image_id, subject, annotator).
    A chosen category outside ``categories`` raises ``ValueError`` (it would silently change the masses).
    """
    categories = list(categories)
    key = ["image_id", "subject", "annotator"]
    rows = annotations
    if "source" in rows.columns:
        rows = rows.filter(pl.col("source") == SOURCE)
    per_annotator = pl.col("annotator").is_not_null()
    if "attributes" in rows.columns:
        per_annotator &= pl.col("attributes").str.json_path_match("$.combined").fill_null("false") != "true"
    rows = rows.filter(per_annotator)

    choices = rows.filter(pl.col("measure") == CHOICE_MEASURE, pl.col("label").is_not_null()).select(
        *key, "label"
    ).unique()
    unknown = sorted(set(choices.get_column("label").unique().to_list()) - set(categories))
    if unknown:
        raise ValueError(f"EMOTIC categories {unknown} are not among the {len(categories)} expected categories")
    mass = choices.with_columns((1.0 / pl.len().over(key)).alias("mass")).pivot(
        on="label", on_columns=categories, index=key, values="mass"
    )

    ratings = (
        rows.filter(pl.col("measure").is_in(RATINGS))
        .with_columns(
            ((pl.col("value") - pl.col("scale_min")) / (pl.col("scale_max") - pl.col("scale_min"))).alias("scaled")
        )
        .filter(pl.col("scaled").is_finite())
        .pivot(on="measure", on_columns=list(RATINGS), index=key, values="scaled", aggregate_function="mean")
        .drop_nulls(list(RATINGS))
    )

    samples = mass.join(ratings, on=key, how="inner").sort(key)
    p = samples.select(pl.col(categories).fill_null(0.0)).to_numpy().astype(np.float64, copy=False)
    y = samples.select(RATINGS).to_numpy().astype(np.float64, copy=False)
    return p.reshape(samples.height, len(categories)), y.reshape(samples.height, len(RATINGS))


# --- regression ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CentroidFit:
    """Cross-validated ``Y = P W`` fit; arrays are indexed like the columns of ``P``.

    ``centroids`` (k x 3): mean of the fold coefficients (NaN where no fit identified the category);
    ``std`` (k x 3): their standard deviation across fits; ``n_fits``: folds x repeats; ``cv_rmse``: mean
    over fits of the held-out RMSE (all three dimensions pooled); ``counts`` (k): samples choosing each
    category; ``identifiable`` (k): whether the full data identify the category's coefficient; ``rank``:
    rank of the full ``P``.
    """

    centroids: np.ndarray
    std: np.ndarray
    n_fits: int
    cv_rmse: float
    counts: np.ndarray
    identifiable: np.ndarray
    rank: int


def _least_squares(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimum-norm ``W`` of ``Y = P W``, a mask of the columns whose coefficient the data identify, the rank.

    Column j is identified when it has no weight in the null space of ``P`` (rows of ``V^T`` beyond the rank
    ``lstsq`` reports, with lstsq's own cut-off); a column of zeros (category absent) never is.
    """
    w, _, rank, _ = np.linalg.lstsq(p, y, rcond=None)
    n, k = p.shape
    if rank == k:
        return w, np.ones(k, dtype=bool), int(rank)
    v_t = np.linalg.svd(p, full_matrices=n < k)[2]  # all k right singular vectors, U kept small
    return w, np.sqrt((v_t[rank:] ** 2).sum(axis=0)) < _NULL_WEIGHT_TOL, int(rank)


def fit_centroids(
    p: np.ndarray,
    y: np.ndarray,
    folds: int = DEFAULT_FOLDS,
    repeats: int = DEFAULT_REPEATS,
    seed: int = DEFAULT_SEED,
) -> CentroidFit:
    """Repeated k-fold least squares without intercept, coefficients averaged over all folds and repeats.

    Each repeat shuffles the samples with one ``np.random.default_rng(seed)`` (so a seed fixes every split)
    and cuts them into ``folds`` near-equal parts; each part in turn is held out and ``W`` is fit on the rest
    with ``np.linalg.lstsq``. A category unidentified in a training part (absent there, or rank deficient)
    is NaN in that fit and left out of its mean; held-out predictions use the minimum-norm ``W`` as fitted.
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, k = p.shape
    if y.shape != (n, len(RATINGS)):
        raise ValueError(f"Y has shape {y.shape}; expected ({n}, {len(RATINGS)})")
    if not (np.isfinite(p).all() and np.isfinite(y).all()):
        raise ValueError("P and Y must be finite (regression_samples drops missing ratings)")
    if folds < 2 or repeats < 1:
        raise ValueError(f"need folds >= 2 and repeats >= 1, got folds={folds}, repeats={repeats}")
    if n < folds:
        raise ValueError(f"{n} samples cannot be split into {folds} folds")

    counts = (p > 0).sum(axis=0)
    present = counts > 0
    _, identifiable, rank = _least_squares(p[:, present], y)
    full_identifiable = np.zeros(k, dtype=bool)
    full_identifiable[present] = identifiable

    rng = np.random.default_rng(seed)
    coefficients = np.full((repeats * folds, k, len(RATINGS)), np.nan)
    rmse = np.empty(repeats * folds)
    fit = 0
    for _ in range(repeats):
        for test in np.array_split(rng.permutation(n), folds):
            train = np.ones(n, dtype=bool)
            train[test] = False
            columns = present & (p[train] > 0).any(axis=0)
            w, known, _ = _least_squares(p[train][:, columns], y[train])
            coefficients[fit, np.flatnonzero(columns)[known]] = w[known]
            residual = p[test][:, columns] @ w - y[test]
            rmse[fit] = float(np.sqrt(np.mean(residual**2)))
            fit += 1

    seen = ~np.isnan(coefficients[..., 0])  # (fits, k): where a fit identified the category
    kept = full_identifiable & seen.any(axis=0)
    centroids = np.full((k, len(RATINGS)), np.nan)
    std = np.full((k, len(RATINGS)), np.nan)
    if kept.any():
        centroids[kept] = np.nanmean(coefficients[:, kept], axis=0)
        std[kept] = np.nanstd(coefficients[:, kept], axis=0)
    return CentroidFit(
        centroids=centroids,
        std=std,
        n_fits=repeats * folds,
        cv_rmse=float(rmse.mean()),
        counts=counts.astype(np.int64),
        identifiable=full_identifiable,
        rank=rank,
    )


# --- clustering ----------------------------------------------------------------------------------------


def _anchor_distances(centroids: np.ndarray, anchors: Anchors) -> np.ndarray:
    """(k x number of anchors) Euclidean distances in VAD from each centroid to each anchor's table VAD."""
    vad = np.asarray([values for _, values in anchors.values()], dtype=np.float64).reshape(-1, len(RATINGS))
    centroids = np.asarray(centroids, dtype=np.float64).reshape(-1, len(RATINGS))
    return np.sqrt(((centroids[:, None, :] - vad[None, :, :]) ** 2).sum(axis=2))


def default_radius(centroids: np.ndarray, anchors: Anchors) -> float:
    """The clustering radius when none is given (rule :data:`RADIUS_RULE`).

    The paper "determines an appropriate clustering radius based on Euclidean distances" without giving it,
    then reviews by hand. Our default is the smallest radius that assigns every category with a finite
    centroid to its nearest anchor: the largest nearest-anchor distance over those categories (so the radius
    reports how far the loosest member sits, and nothing is left out before review). 0.0 when no category has
    a centroid.
    """
    distances = _anchor_distances(centroids, anchors)
    finite = np.isfinite(distances).all(axis=1) & (distances.shape[1] > 0)
    if not finite.any():
        return 0.0
    return float(distances[finite].min(axis=1).max())


def assign_clusters(
    centroids: np.ndarray,
    categories: list[str] | tuple[str, ...],
    anchors: Anchors,
    radius: float | None = None,
    counts: np.ndarray | None = None,
) -> pl.DataFrame:
    """Each category's nearest anchor and its cluster (null beyond ``radius``, or without a centroid).

    ``anchors`` maps target -> (anchor category, anchor VAD from Table 6); distances are to the table VAD.
    ``radius`` None applies :func:`default_radius`; a category at exactly ``radius`` is assigned. Ties go to
    the anchor listed first. ``counts`` fills ``n_samples`` (null when not given).
    Columns: category, valence, arousal, dominance, n_samples, nearest_target, distance, cluster_target.
    """
    categories = list(categories)
    if not anchors:
        raise ValueError("no anchors to cluster on")
    centroids = np.asarray(centroids, dtype=np.float64).reshape(len(categories), len(RATINGS))
    if radius is None:
        radius = default_radius(centroids, anchors)
    targets = list(anchors)
    distances = _anchor_distances(centroids, anchors)
    finite = np.isfinite(distances).all(axis=1)
    nearest = np.argmin(np.where(finite[:, None], distances, np.inf), axis=1)
    nearest_distance = np.where(finite, distances[np.arange(len(categories)), nearest], np.nan)
    frame = pl.DataFrame(
        {
            "category": categories,
            **{name: centroids[:, i] for i, name in enumerate(RATINGS)},
            "n_samples": [None] * len(categories) if counts is None else np.asarray(counts, dtype=np.int64),
            "nearest_target": [targets[j] if ok else None for j, ok in zip(nearest, finite)],
            "distance": nearest_distance,
        },
        schema={"category": pl.String, **dict.fromkeys(RATINGS, pl.Float64), "n_samples": pl.Int64,
                "nearest_target": pl.String, "distance": pl.Float64},
        nan_to_null=True,
    )
    return frame.with_columns(
        pl.when(pl.col("distance") <= radius).then(pl.col("nearest_target")).alias("cluster_target")
    )


# --- contract ------------------------------------------------------------------------------------------


def _emotic26() -> dict[str, Any]:
    with (contracts_dir() / "label_taxonomy.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)["taxonomies"][TAXONOMY]


def load_anchors() -> Anchors:
    """Table 6 anchors from ``label_taxonomy.yaml``: target -> (anchor category, (valence, arousal, dominance))."""
    anchors: Anchors = {}
    for target, spec in _emotic26()["anchors"].items():
        vad = tuple(float(v) for v in spec["vad"])
        if len(vad) != len(RATINGS):
            raise ValueError(f"label_taxonomy.yaml: anchor {target} has {len(vad)} VAD values, expected 3")
        anchors[target] = (str(spec["anchor"]), vad)  # type: ignore[assignment]
    return anchors


def reviewed_mapping() -> dict[str, str | None]:
    """The reviewed EMOTIC category -> target mapping from ``label_taxonomy.yaml`` (null = excluded)."""
    return {label: spec.get("target") for label, spec in _emotic26()["labels"].items()}


# --- end to end ----------------------------------------------------------------------------------------


def emotic_centroids(
    annotations: pl.DataFrame,
    folds: int = DEFAULT_FOLDS,
    repeats: int = DEFAULT_REPEATS,
    seed: int = DEFAULT_SEED,
    radius: float | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Re-estimate the 26 centroids from EMOTIC rows, cluster them on the Table 6 anchors, compare with review.

    Returns the :func:`assign_clusters` table plus ``reviewed_target`` (``label_taxonomy.yaml``) and
    ``agrees`` (cluster_target equals reviewed_target, a null cluster counting as disagreement; null for a
    category without centroid), and a JSON-ready summary for asset metadata: n_samples, n_fits, folds,
    repeats, seed, cv_rmse, rank, radius, radius_rule, categories_with_centroid, categories_assigned,
    agreement (share of categories with a centroid that agree; None when none has one) and disagreements
    (``"category: cluster -> reviewed"``).
    """
    categories = list(EMOTIC_CATEGORIES)
    anchors = load_anchors()
    reviewed = reviewed_mapping()
    p, y = regression_samples(annotations, categories)
    fit = fit_centroids(p, y, folds=folds, repeats=repeats, seed=seed)
    chosen_radius = default_radius(fit.centroids, anchors) if radius is None else float(radius)
    table = assign_clusters(fit.centroids, categories, anchors, chosen_radius, counts=fit.counts)
    has_centroid = pl.col("distance").is_not_null()
    table = table.with_columns(
        pl.col("category").replace_strict(reviewed, default=None, return_dtype=pl.String).alias("reviewed_target")
    ).with_columns(
        pl.when(has_centroid).then(pl.col("cluster_target").eq_missing(pl.col("reviewed_target"))).alias("agrees")
    )
    with_centroid = table.filter(has_centroid)
    disagreeing = with_centroid.filter(~pl.col("agrees"))
    summary = {
        "n_samples": int(p.shape[0]),
        "n_fits": fit.n_fits,
        "folds": folds,
        "repeats": repeats,
        "seed": seed,
        "cv_rmse": fit.cv_rmse,
        "rank": fit.rank,
        "radius": chosen_radius,
        "radius_rule": RADIUS_RULE if radius is None else "given",
        "categories_with_centroid": with_centroid.height,
        "categories_assigned": int(table.get_column("cluster_target").is_not_null().sum()),
        "agreement": float(with_centroid.get_column("agrees").mean()) if with_centroid.height else None,
        "disagreements": [
            f"{c}: {t} -> {r}" for c, t, r in disagreeing.select("category", "cluster_target", "reviewed_target").rows()
        ],
    }
    return table, summary
