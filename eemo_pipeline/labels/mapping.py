"""Per-image distributions over the seven targets, dominant emotion and top-3 ranking (paper 3.2, C.5).

Two ranking rules, chosen per source by its ``ranking_rule`` in ``data_contracts/sources.yaml``:

- ``distribution`` (Emotion6 probabilities, Abstract-8 votes, Affection and FindingEmo choices):
  targets ordered by mapped probability; a ranking is kept only when its members have distinct
  probabilities (and the last member beats the next one), else it is dropped as tied;
- ``selections``, for multi-annotator unranked sources (EMOTIC): each (person, annotator) selection is mapped
  to its set of targets; targets are ordered by selection frequency, then concentration (a selection of n
  targets gives each 1/n), then primacy (a target listed at 0-based position i of n gets (n - i) / n); a ranking still
  tied on all three is dropped. The distribution is the normalised concentration (equal mass per selection).

The dominant emotion is the first target of the same order, null when the top two tie.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from eemo_pipeline.contracts import source_facts, table_contract
from eemo_pipeline.frames import fixed_order_sum
from eemo_pipeline.labels.taxonomy import PROBABILITY_COLUMNS, TARGETS, mapping_table, taxonomy_of

RANKING_LENGTH = 3
# Weights closer than this count as equal: Emotion6 publishes probabilities to six decimals, so two
# equal shares can differ by rounding (0.133333 vs 0.133334); votes and choices are whole numbers.
TIE_TOLERANCE = 1e-5
_DISTRIBUTION_MEASURES = ("label_prob", "label_vote", "label_choice")
_KEYS = ("k1", "k2", "k3")


@dataclass(frozen=True)
class MappedLabels:
    labels: pl.DataFrame
    stats: dict[str, int]


def _mapped(
    annotations: pl.DataFrame, taxonomy: str, measures: tuple[str, ...], mapping: pl.DataFrame
) -> pl.DataFrame:
    table = mapping.filter(pl.col("taxonomy") == taxonomy).select("label", "target")
    rows = annotations.filter(pl.col("measure").is_in(measures)).with_row_index("_order")
    return rows.join(table, on="label", how="left", maintain_order="left")


def _distribution_keys(rows: pl.DataFrame) -> pl.DataFrame:
    """Per (image, target): k1 = summed weight (probability, votes or choices)."""
    return (
        rows.filter(pl.col("target").is_not_null() & (pl.col("value") > 0))
        .group_by("image_id", "target")
        .agg(fixed_order_sum(pl.col("value")).alias("k1"), pl.len().alias("_facts"))
        .with_columns(pl.lit(0.0).alias("k2"), pl.lit(0.0).alias("k3"), pl.col("k1").alias("_mass"))
    )


def _progressive_keys(rows: pl.DataFrame) -> pl.DataFrame:
    """Per (image, target): frequency, concentration and primacy over (person, annotator) selections."""
    selection = ["image_id", "subject", "annotator"]
    distinct = (
        rows.filter(pl.col("target").is_not_null())
        .sort("_order")
        .unique(subset=[*selection, "target"], keep="first", maintain_order=True)
        .with_columns(
            pl.int_range(pl.len()).over(selection).alias("_position"),
            pl.len().over(selection).alias("_n"),
        )
    )
    return (
        distinct.group_by("image_id", "target")
        .agg(
            pl.len().cast(pl.Float64).alias("k1"),
            fixed_order_sum(1.0 / pl.col("_n")).alias("k2"),
            fixed_order_sum((pl.col("_n") - pl.col("_position")) / pl.col("_n")).alias("k3"),
        )
        .with_columns(pl.col("k2").alias("_mass"), pl.col("k1").cast(pl.UInt32).alias("_facts"))
    )


def _rank(keys: pl.DataFrame) -> pl.DataFrame:
    """Order targets per image by (k1, k2, k3) and derive dominant emotion and ranking."""
    ordered = keys.sort(["image_id", *_KEYS, "target"], descending=[False, True, True, True, False])
    same_as_next = pl.all_horizontal(
        [(pl.col(k) - pl.col(k).shift(-1).over("image_id")).abs() <= TIE_TOLERANCE for k in _KEYS]
    ).fill_null(False)
    ordered = ordered.with_columns(
        pl.int_range(pl.len()).over("image_id").alias("_rank"),
        pl.len().over("image_id").alias("_targets"),
        same_as_next.alias("_tied_next"),
    )
    length = pl.min_horizontal(pl.col("_targets"), pl.lit(RANKING_LENGTH))
    ranked = ordered.group_by("image_id", maintain_order=True).agg(
        pl.col("_tied_next").first().alias("_top_tied"),
        pl.col("target").first().alias("_top"),
        pl.col("_tied_next").filter(pl.col("_rank") < length).any().alias("_ranking_tied"),
        pl.col("target").filter(pl.col("_rank") < length).alias("_ranking"),
    )
    return ranked.select(
        "image_id",
        pl.when(~pl.col("_top_tied")).then(pl.col("_top")).alias("dominant_emotion"),
        pl.when(~pl.col("_ranking_tied")).then(pl.col("_ranking")).alias("ranking"),
    )


def map_labels(source: str, annotations: pl.DataFrame, mapping: pl.DataFrame | None = None) -> MappedLabels:
    """The mapped_labels rows of one source, with counts for asset metadata.

    ``mapping`` is the label_taxonomy table (``taxonomy, label, target``); by default the versioned contract.
    """
    contract = table_contract("mapped_labels")
    taxonomy = taxonomy_of(source)
    images = annotations["image_id"].n_unique() if annotations.height else 0
    if taxonomy is None:
        return MappedLabels(contract.empty(), {"images": images, "images_labelled": 0, "ranked": 0, "ranking_tied": 0,
                                               "dominant_tied": 0, "unmapped_label_facts": 0, "images_without_target": 0})
    progressive = source_facts(source).ranking_rule == "selections"
    measures = ("label_choice",) if progressive else _DISTRIBUTION_MEASURES
    rows = _mapped(annotations, taxonomy, measures, mapping_table() if mapping is None else mapping)
    keys = _progressive_keys(rows) if progressive else _distribution_keys(rows)
    total = fixed_order_sum(pl.col("_mass")).over("image_id")
    wide = (
        keys.with_columns((pl.col("_mass") / total).alias("p"))
        .pivot(on="target", index="image_id", values="p", on_columns=list(TARGETS))
        .rename({t: f"p_{t}" for t in TARGETS})
        .with_columns(pl.col(PROBABILITY_COLUMNS).fill_null(0.0))
    )
    counts = rows.filter(pl.col("target").is_not_null()).group_by("image_id").agg(pl.len().alias("n_labels"))
    labels = (
        wide.join(_rank(keys), on="image_id", how="left")
        .join(counts, on="image_id", how="left")
        .with_columns(pl.lit(source).alias("source"), pl.lit(taxonomy).alias("taxonomy"))
        .sort("image_id")
    )
    labels = contract.conform(labels)
    labelled_images = rows["image_id"].n_unique() if rows.height else 0
    stats = {
        "images": images,
        "images_labelled": labels.height,
        "ranked": int(labels["ranking"].is_not_null().sum()),
        "ranking_tied": int(labels["ranking"].is_null().sum()),
        "dominant_tied": int(labels["dominant_emotion"].is_null().sum()),
        "unmapped_label_facts": int(rows["target"].is_null().sum()),
        "images_without_target": labelled_images - labels.height,
    }
    return MappedLabels(labels, stats)


def mapped_violations(frame: pl.DataFrame) -> list[str]:
    """Contract problems: schema, nulls, keys, probabilities summing to 1, rankings drawn from the targets."""
    contract = table_contract("mapped_labels")
    problems = contract.violations(frame)
    if problems or frame.is_empty():
        return problems
    sums = pl.sum_horizontal(PROBABILITY_COLUMNS)
    rules = {
        "probabilities do not sum to 1": (sums - 1).abs() > 1e-9,
        "negative probability": pl.min_horizontal(PROBABILITY_COLUMNS) < 0,
        "dominant emotion outside the targets": ~pl.col("dominant_emotion").is_in(TARGETS).fill_null(True),
        "ranking longer than three": pl.col("ranking").list.len() > RANKING_LENGTH,
        "ranking repeats an emotion": pl.col("ranking").list.n_unique() != pl.col("ranking").list.len(),
        "ranking names an emotion outside the targets": ~pl.col("ranking").list.eval(pl.element().is_in(TARGETS)).list.all(),
        "empty ranking": pl.col("ranking").list.len() == 0,
    }
    counts = frame.select([rule.fill_null(False).sum().alias(name) for name, rule in rules.items()]).row(0, named=True)
    return problems + [f"{n} rows: {name}" for name, n in counts.items() if n]
