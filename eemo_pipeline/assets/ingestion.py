"""raw_annotations and image_manifest: one partition per source data set."""

from pathlib import Path

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetRecordsFilter,
    Config,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from eemo_pipeline.automation import ON_SOURCE_CHANGE, SOURCE_FILES, SOURCE_RETRY, permanent_errors
from eemo_pipeline.checks import contract_check, frame_metadata, share_check
from eemo_pipeline.contracts import source_facts
from eemo_pipeline.partitions import source_partitions
from eemo_pipeline.resources import InputPathsResource, StorageResource
from eemo_pipeline.sources import source_root
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.manifest import build_manifest, manifest_violations
from eemo_pipeline.sources.reading import remember_files
from eemo_pipeline.sources.validate import contract_violations, rebuild_shrink

GROUP = "ingestion"
# Per source under the storage root: the version of each annotation file read before, the evidence that a
# later version was cut (eemo_pipeline/sources/reading.py).
LAST_READ = "_last_read"


class SourceConfig(Config):
    root: str = Field(default="", description="Root folder of this partition's source; empty means the input paths' "
                      "root of the source (EEMO_<SOURCE>_ROOT).")
    max_quarantine_share: float = Field(
        default=0.05, description="Warn (non-blocking check) when more than this share of rows is quarantined."
    )
    accept_shrink: bool = Field(
        default=False, description="Accept a rebuild that keeps fewer rows than min_rebuild_share of the last good one."
    )


def _last_good_rows(context: AssetExecutionContext) -> int | None:
    """Rows kept by the last build of this partition that passed the rebuild check (its metadata says; a
    build from before the check counts with its row count)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("raw_annotations"), asset_partitions=[context.partition_key]), limit=1
    ).records
    metadata = records[0].asset_materialization.metadata if records else {}
    entry = metadata.get("last_good_rows") or metadata.get("dagster/row_count")
    return None if entry is None else int(entry.value)


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
        AssetCheckSpec("rebuild_share", asset="raw_annotations", blocking=True,
                       description="a rebuild keeps at least min_rebuild_share (sources.yaml) of the last good "
                                   "build's rows"),
    ],
)
def raw_annotations(context: AssetExecutionContext, config: SourceConfig, storage: StorageResource,
                    input_paths: InputPathsResource):
    """Every source's native annotation files as one canonical long table; bad rows quarantined."""
    source = context.partition_key
    # An unconfigured root or a damaged file (SourceFormatError is a ValueError; a polars error on the same
    # bytes recurs) fails at once: retrying cannot help. I/O errors stay retryable.
    last_read = storage.path / LAST_READ / source
    with permanent_errors(ValueError, FileNotFoundError, pl.exceptions.PolarsError):
        root = source_root(source, config.root or input_paths.settings().root(source))
        context.log.info(f"reading {source} from {root}")
        result = ingest(source, root, last_read)
    remember_files(last_read, root, result.files)
    for note in result.notes:
        context.log.warning(note)
    quarantine = storage.stage_quarantine("raw_annotations", source, result.quarantine)
    counts = result.counts
    last_good = _last_good_rows(context)
    shrink = None if config.accept_shrink else rebuild_shrink(
        result.annotations.height, last_good, source_facts(source).min_rebuild_share
    )
    context.log.info(f"{source}: {counts}")
    yield Output(
        result.annotations,
        metadata={
            **frame_metadata(result.annotations),
            **counts,
            "images": result.annotations["image_id"].n_unique(),
            "source_root": MetadataValue.path(str(root)),
            "quarantine_path": MetadataValue.path(quarantine),
            "files_read": MetadataValue.json({path: {"bytes": read.size, "sha256": read.sha256}
                                              for path, read in result.files.items()}),
            # Files that end without a line break: how each was judged; those no evidence could check.
            "file_endings": MetadataValue.md("\n".join(f"- {note}" for note in result.notes) or "every file read "
                                             "ends with a line break"),
            "unchecked_last_records": MetadataValue.json(list(result.unchecked)),
            # The baseline of the next rebuild check: this build's rows unless the check holds it back.
            "last_good_rows": last_good if shrink else result.annotations.height,
        },
    )
    yield contract_check("raw_annotations", contract_violations(result.annotations, source))
    yield AssetCheckResult(
        check_name="rebuild_share", asset_key="raw_annotations", passed=shrink is None,
        severity=AssetCheckSeverity.ERROR,
        metadata={"rows_kept": result.annotations.height, "last_good_rows": last_good or 0},
        description=shrink or f"kept {result.annotations.height} rows (last good build: {last_good or 'none'})",
    )
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
    path = storage.stage_quarantine("image_manifest", source, quarantine)
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
