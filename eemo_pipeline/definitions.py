"""The Dagster code location: assets, checks, resources and jobs. Imports nothing heavy (loads in < 3 s)."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from eemo_pipeline.assets.common import ParquetIOManager, StorageResource
from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations

ingest_job = define_asset_job(
    "ingest_sources",
    selection=AssetSelection.assets(raw_annotations, image_manifest),
    description="Read every source's native files and inspect its images, one partition per source.",
)

defs = Definitions(
    assets=[raw_annotations, image_manifest],
    jobs=[ingest_job],
    resources={"io_manager": ParquetIOManager(), "storage": StorageResource()},
)
