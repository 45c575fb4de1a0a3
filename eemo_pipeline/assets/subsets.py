"""eemodb_qa, eemodb_assess and their trainer-ready exports (unpartitioned; read every source partition)."""

from pathlib import Path

import polars as pl
from dagster import AssetCheckSpec, AssetExecutionContext, Config, Output, asset
from pydantic import Field

from eemo_pipeline.automation import ON_SOURCE_CHANGE
from eemo_pipeline.checks import contract_check, frame_metadata
from eemo_pipeline.contracts import table_contract
from eemo_pipeline.resources import InputPathsResource, StorageResource
from eemo_pipeline.sources import SOURCES, source_root

GROUP = "subsets"
# PNG copies of images the trainers cannot decode (BMP), under the storage root.
TRAINER_IMAGES = "trainer_images"


class SubsetConfig(Config):
    seed: int = Field(default=0, description="Seed of every deterministic choice (sampling, pairing, option order).")


def input_versions(storage: Path, assets: list[str]) -> dict[str, str]:
    """Content hash of every upstream Parquet file, keyed "asset[partition]" (unpartitioned: "asset")."""
    from eemo_pipeline.lineage import file_data_version, input_key

    versions = {}
    for name in assets:
        for path in sorted((storage / name).glob("*.parquet")):
            versions[input_key(name, path.stem)] = file_data_version(path)
        single = storage / f"{name}.parquet"
        if single.is_file():
            versions[input_key(name, None)] = file_data_version(single)
    return versions


def _roots(input_paths: InputPathsResource) -> dict[str, Path]:
    """Roots of the configured sources, to resolve image paths in the exports."""
    settings = input_paths.settings()
    return {source: source_root(source, settings.root(source)) for source in SOURCES if settings.root(source)}


def _subset_output(name: str, frame: pl.DataFrame):
    counts = frame.group_by("task", "sub_task").len().sort("task", "sub_task")
    yield Output(frame, metadata={**frame_metadata(frame), **{f"{t}/{s}": n for t, s, n in counts.iter_rows()},
                                  "images": frame.select(pl.col("image_paths").explode().n_unique()).item()})
    yield contract_check(name, table_contract(name).violations(frame))


@asset(group_name=GROUP, kinds={"polars", "parquet"}, code_version="2", automation_condition=ON_SOURCE_CHANGE,
       check_specs=[AssetCheckSpec("contract", asset="eemodb_qa", blocking=True,
                                   description="data_contracts/eemodb_qa.yaml holds")])
def eemodb_qa(context: AssetExecutionContext, config: SubsetConfig, storage: StorageResource,
              mapped_labels: pl.DataFrame, vad_scores: pl.DataFrame, image_manifest: pl.DataFrame,
              descriptive_answers: pl.DataFrame, emotion_reasoning: pl.DataFrame, raw_annotations: pl.DataFrame):
    """EEmoDB-QA (paper 3.3, C.4): perception, ranking and description instructions on single images and pairs."""
    from eemo_pipeline.sources.categories import content_categories
    from eemo_pipeline.subsets.qa import build_qa

    inputs = input_versions(storage.path, ["mapped_labels", "vad_scores", "image_manifest", "descriptive_answers",
                                           "emotion_reasoning", "raw_annotations"])
    yield from _subset_output("eemodb_qa", build_qa(mapped_labels, vad_scores, image_manifest, descriptive_answers,
                                                    inputs, seed=config.seed, reasoning=emotion_reasoning,
                                                    categories=content_categories(raw_annotations)))


@asset(group_name=GROUP, kinds={"polars", "parquet"}, code_version="2", automation_condition=ON_SOURCE_CHANGE,
       check_specs=[AssetCheckSpec("contract", asset="eemodb_assess", blocking=True,
                                   description="data_contracts/eemodb_assess.yaml holds")])
def eemodb_assess(context: AssetExecutionContext, config: SubsetConfig, storage: StorageResource,
                  mapped_labels: pl.DataFrame, vad_scores: pl.DataFrame, image_manifest: pl.DataFrame,
                  raw_annotations: pl.DataFrame):
    """EEmoDB-Assess (paper 3.4): Emotion6 rankings, bin-balanced VAD scores, dominant emotion per source."""
    from eemo_pipeline.subsets.assess import build_assess

    inputs = input_versions(storage.path, ["mapped_labels", "vad_scores", "image_manifest", "raw_annotations"])
    yield from _subset_output("eemodb_assess", build_assess(mapped_labels, vad_scores, image_manifest,
                                                            raw_annotations, inputs, seed=config.seed))


@asset(group_name=GROUP, kinds={"polars", "parquet"}, code_version="1", automation_condition=ON_SOURCE_CHANGE)
def sft_dataset(storage: StorageResource, input_paths: InputPathsResource, eemodb_qa: pl.DataFrame) -> Output[pl.DataFrame]:
    """EEmoDB-QA in TRL SFTTrainer's conversational vision format: ``messages`` (image parts, question,
    answer) and ``images`` (paths resolved against the configured source roots)."""
    from eemo_pipeline.subsets.export import sft_records

    records = sft_records(eemodb_qa, _roots(input_paths) or None, storage.path / TRAINER_IMAGES, storage.path)
    return Output(records, metadata=frame_metadata(records, preview_rows=2))


@asset(group_name=GROUP, kinds={"polars", "parquet"}, code_version="1", automation_condition=ON_SOURCE_CHANGE)
def grpo_dataset(storage: StorageResource, input_paths: InputPathsResource,
                 eemodb_assess: pl.DataFrame) -> Output[pl.DataFrame]:
    """EEmoDB-Assess as TRL GRPOTrainer records: conversational ``prompt``, ``image``, ``solution``, task columns."""
    from eemo_pipeline.subsets.export import grpo_records

    records = grpo_records(eemodb_assess, _roots(input_paths) or None, converted_dir=storage.path / TRAINER_IMAGES,
                           storage=storage.path)
    return Output(records, metadata=frame_metadata(records, preview_rows=2))
