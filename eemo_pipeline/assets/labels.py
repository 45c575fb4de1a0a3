"""label_taxonomy, emotic_vad_centroids and mapped_labels: native labels to Ekman six + neutral."""

import polars as pl
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    Config,
    MetadataValue,
    Output,
    SpecificPartitionsPartitionMapping,
    asset,
    multi_asset,
)
from pydantic import Field

from eemo_pipeline.automation import ON_SOURCE_CHANGE
from eemo_pipeline.checks import contract_check, frame_metadata
from eemo_pipeline.contracts import with_contract_versions
from eemo_pipeline.labels.emotic_vad import emotic_centroids
from eemo_pipeline.labels.mapping import map_labels, mapped_violations
from eemo_pipeline.labels.taxonomy import mapping_table, taxonomy_version
from eemo_pipeline.partitions import source_partitions

GROUP = "labels"
# Both outputs read data_contracts/label_taxonomy.yaml (the mapping; the Table 6 anchors and reviewed targets).
TAXONOMY_CODE_VERSION = with_contract_versions("1", "label_taxonomy")


class CentroidConfig(Config):
    folds: int = Field(default=5, description="k of the repeated k-fold cross-validation (not published: 5)")
    repeats: int = Field(default=10, description="repeats of the k-fold split (not published: 10)")
    seed: int = Field(default=0, description="seed of the fold shuffles")
    radius: float = Field(default=0.0, description="clustering radius in 0-1 VAD space; 0 picks the default rule")


@multi_asset(
    outs={
        "label_taxonomy": AssetOut(
            group_name=GROUP, kinds={"polars", "parquet"}, code_version=TAXONOMY_CODE_VERSION,
            automation_condition=ON_SOURCE_CHANGE, description="Versioned mapping of every native label to the seven targets (data_contracts/label_taxonomy.yaml).",
        ),
        "emotic_vad_centroids": AssetOut(
            group_name=GROUP, kinds={"polars", "parquet"}, code_version=TAXONOMY_CODE_VERSION,
            automation_condition=ON_SOURCE_CHANGE, description="The 26 EMOTIC categories' VAD centroids re-estimated by the paper's regression, "
            "with their nearest anchor beside the reviewed mapping.",
        ),
    },
    ins={"raw_annotations": AssetIn(partition_mapping=SpecificPartitionsPartitionMapping(["emotic"]))},
)
def label_taxonomy(context: AssetExecutionContext, config: CentroidConfig, raw_annotations: pl.DataFrame):
    table = mapping_table()
    yield Output(
        table,
        output_name="label_taxonomy",
        metadata={
            **frame_metadata(table),
            "version": taxonomy_version(),
            "excluded_labels": ", ".join(table.filter(pl.col("target").is_null())["label"].to_list()) or "none",
        },
    )
    centroids, summary = emotic_centroids(
        raw_annotations, folds=config.folds, repeats=config.repeats, seed=config.seed, radius=config.radius or None
    )
    context.log.info(f"EMOTIC centroids: {summary}")
    yield Output(
        centroids,
        output_name="emotic_vad_centroids",
        metadata={**frame_metadata(centroids, preview_rows=26), **{k: v for k, v in summary.items() if v is not None}},
    )


@asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"polars", "parquet"},
    code_version="1",
    automation_condition=ON_SOURCE_CHANGE,
    check_specs=[
        AssetCheckSpec("contract", asset="mapped_labels", blocking=True,
                       description="probabilities sum to 1; rankings are drawn from the seven targets without repeats"),
    ],
)
def mapped_labels(context: AssetExecutionContext, raw_annotations: pl.DataFrame, label_taxonomy: pl.DataFrame):
    """Per image: the seven-target distribution, dominant emotion and top-3 ranking (paper 3.2, C.5)."""
    result = map_labels(context.partition_key, raw_annotations, label_taxonomy)
    context.log.info(f"{context.partition_key}: {result.stats}")
    distribution = result.labels.select(pl.col("dominant_emotion").value_counts(sort=True)).unnest("dominant_emotion")
    yield Output(
        result.labels,
        metadata={
            **frame_metadata(result.labels),
            **result.stats,
            "dominant_emotions": MetadataValue.md(
                "\n".join(f"- {e or 'tied'}: {n}" for e, n in distribution.iter_rows()) or "none"
            ),
        },
    )
    yield contract_check("mapped_labels", mapped_violations(result.labels))
