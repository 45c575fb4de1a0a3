"""raw_annotations and image_manifest: one partition per source data set."""

from pathlib import Path

import polars as pl
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    Config,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from eemo_pipeline.assets.common import (
    InputPathsResource,
    StorageResource,
    contract_check,
    frame_metadata,
    share_check,
    source_partitions,
)
from eemo_pipeline.automation import ON_SOURCE_CHANGE, SOURCE_FILES, SOURCE_RETRY, permanent_errors
from eemo_pipeline.sources import source_root
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.manifest import build_manifest, manifest_violations
from eemo_pipeline.sources.validate import contract_violations

GROUP = "ingestion"


class SourceConfig(Config):
    root: str = Field(default="", description="Root folder of this partition's source; empty means the input paths' "
                      "root of the source (EEMO_<SOURCE>_ROOT).")
    max_quarantine_share: float = Field(
        default=0.05, description="Warn (non-blocking check) when more than this share of rows is quarantined."
    )


@asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"polars", "parquet"},
    code_version="1",
    deps=[SOURCE_FILES],
    automation_condition=ON_SOURCE_CHANGE,
    retry_policy=SOURCE_RETRY,
    check_specs=[
        AssetCheckSpec("contract", asset="raw_annotations", blocking=True,
                       description="data_contracts/raw_annotations.yaml and sources.yaml hold for every kept row"),
        AssetCheckSpec("quarantine_share", asset="raw_annotations",
                       description="share of quarantined rows stays under the configured limit"),
    ],
)
def raw_annotations(context: AssetExecutionContext, config: SourceConfig, storage: StorageResource,
                    input_paths: InputPathsResource):
    """Every source's native annotation files as one canonical long table; bad rows quarantined."""
    source = context.partition_key
    with permanent_errors(ValueError, FileNotFoundError):  # unconfigured root, malformed file: no retry
        root = source_root(source, config.root or input_paths.settings().root(source))
        context.log.info(f"reading {source} from {root}")
        result = ingest(source, root)
    quarantine = storage.write_quarantine("raw_annotations", source, result.quarantine)
    counts = result.counts
    context.log.info(f"{source}: {counts}")
    yield Output(
        result.annotations,
        metadata={
            **frame_metadata(result.annotations),
            **counts,
            "images": result.annotations["image_id"].n_unique(),
            "source_root": MetadataValue.path(str(root)),
            "quarantine_path": MetadataValue.path(quarantine),
        },
    )
    yield contract_check("raw_annotations", contract_violations(result.annotations, source))
    yield share_check("quarantine_share", "raw_annotations", counts["rows_quarantined"],
                            counts["rows_read"], config.max_quarantine_share)


@asset(
    partitions_def=source_partitions,
    group_name=GROUP,
    kinds={"polars", "parquet"},
    code_version="1",
    ins={"raw_annotations": AssetIn()},
    automation_condition=ON_SOURCE_CHANGE,
    retry_policy=SOURCE_RETRY,
    check_specs=[
        AssetCheckSpec("contract", asset="image_manifest", blocking=True,
                       description="data_contracts/image_manifest.yaml holds; decodable images have hash and size"),
        AssetCheckSpec("decodable_share", asset="image_manifest",
                       description="share of missing or undecodable images stays under the configured limit"),
    ],
)
def image_manifest(
    context: AssetExecutionContext, config: SourceConfig, storage: StorageResource, input_paths: InputPathsResource,
    raw_annotations: pl.DataFrame,
):
    """Every referenced image: path, sha256, size, and whether it decodes; unusable images quarantined."""
    source = context.partition_key
    with permanent_errors(ValueError, FileNotFoundError):
        root = source_root(source, config.root or input_paths.settings().root(source))
    manifest, quarantine = build_manifest(
        raw_annotations, Path(root), source, progress=lambda done, total: context.log.info(f"{done}/{total} images")
    )
    path = storage.write_quarantine("image_manifest", source, quarantine)
    yield Output(
        manifest,
        metadata={
            **frame_metadata(manifest),
            "images_decodable": int(manifest["decodable"].sum()),
            "images_quarantined": quarantine.height,
            "total_bytes": int(manifest["size_bytes"].sum() or 0),
            "quarantine_path": MetadataValue.path(path),
        },
    )
    yield contract_check("image_manifest", manifest_violations(manifest))
    yield share_check("decodable_share", "image_manifest", quarantine.height, manifest.height,
                            config.max_quarantine_share)
