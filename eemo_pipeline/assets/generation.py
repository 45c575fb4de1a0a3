"""image_descriptions, emotion_reasoning and descriptive_answers through OpenAI-compatible endpoints."""

from collections.abc import Callable

import polars as pl
from dagster import AssetCheckSpec, AssetExecutionContext, AssetIn, Config, Failure, MetadataValue, Output, asset
from pydantic import Field

from eemo_pipeline.automation import LLM_RETRY, permanent_errors
from eemo_pipeline.checks import contract_check, frame_metadata, share_check
from eemo_pipeline.generation.batch import BatchFailed, raise_if_failed, run_batch_sync
from eemo_pipeline.generation.cache import CacheError
from eemo_pipeline.generation.images import image_data_url
from eemo_pipeline.generation.stages.answers import answers_frame, generated_text_violations
from eemo_pipeline.generation.stages.describe import (
    DEFAULT_DESCRIPTION_SELECTION,
    DESCRIPTION_SELECTIONS,
    description_items,
    select_for_description,
)
from eemo_pipeline.generation.stages.descriptive import DEFAULT_PAIRS_PER_SOURCE, descriptive_items
from eemo_pipeline.generation.stages.reason import reasoning_items
from eemo_pipeline.generation.validators import VALIDATORS
from eemo_pipeline.generation.work import WorkItem
from eemo_pipeline.partitions import source_partitions
from eemo_pipeline.resources import RESPONSE_CACHE_FILE, InputPathsResource, LLMEndpointResource, StorageResource
from eemo_pipeline.settings import EndpointNotConfigured
from eemo_pipeline.sources import source_root
from eemo_pipeline.sources.base import rejects
from eemo_pipeline.sources.categories import category_map, content_categories

GROUP = "generation"
CACHE_FILE = RESPONSE_CACHE_FILE  # the response cache when the instance is not on PostgreSQL


class DescribeConfig(Config):
    root: str = Field(default="", description="Root folder of this partition's images; empty means the input paths' "
                      "root of the source (EEMO_<SOURCE>_ROOT).")
    limit: int = Field(default=0, description="Describe at most this many images (a deterministic sample); 0 = all.")
    seed: int = Field(default=0, description="Seed of the deterministic sample.")
    selection: str = Field(
        default=DEFAULT_DESCRIPTION_SELECTION,
        description=f"Which ranked images are described, one of {list(DESCRIPTION_SELECTIONS)}: 'commented' (the "
                    "paper's rule: images with human comments, i.e. Affection's, whose ranking has distinct "
                    "intensities) or 'ranked' (every ranked image; reasoning then lacks comments).",
    )


class DescriptiveConfig(Config):
    pairs_per_source: int = Field(default=DEFAULT_PAIRS_PER_SOURCE, description="Image pairs per pair kind and source.")
    seed: int = Field(default=0, description="Seed of the deterministic pairing.")


def _checks(asset_name: str) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec("contract", asset=asset_name, blocking=True,
                       description="data_contracts/generated_text.yaml holds; pair columns consistent"),
        AssetCheckSpec("answered_share", asset=asset_name,
                       description="share of items quarantined (failed or invalid twice) stays under 5%"),
    ]


def _generate(
    context: AssetExecutionContext, asset_name: str, items: list[WorkItem], endpoint: LLMEndpointResource,
    storage: StorageResource, validate: Callable[[str, WorkItem], str | None],
):
    """Send ``items`` (cache first), store quarantine records, and yield the output and its checks.

    A batch where every item, or more than ``max_failed_share`` of them, failed fails the step with the
    endpoint's last error (scrubbed of keys), so no downstream step runs on an empty or gutted table; the step's
    retry policy applies only when that error may clear by itself (429, 5xx, timeouts)."""
    partition = context.partition_key
    if items:
        with permanent_errors(EndpointNotConfigured):
            config = endpoint.endpoint()
        # A cache that cannot be opened or written fails the step at once: a retry would pay for answers again.
        with permanent_errors(CacheError):
            cache = storage.response_cache()
            try:
                result = run_batch_sync(items, config, cache, validate,
                                        progress=lambda done, total: context.log.info(f"{done}/{total} answers"))
            finally:
                cache.close()
        answers, quarantine, stats = result.answers, result.quarantine, result.stats
        notes = cache.notes + result.notes
        for note in notes:
            context.log.warning(f"{asset_name}[{partition}]: {note}")
        try:
            raise_if_failed(result, config.max_failed_share)
        except BatchFailed as error:
            raise Failure(description=f"{asset_name}[{partition}]: {error}", metadata=stats,
                          allow_retries=error.transient) from None
        endpoint_metadata = {"endpoint": config.base_url, "model": config.model,
                             "notes": MetadataValue.md("\n".join(f"- {note}" for note in notes) or "none")}
    else:
        answers, quarantine, stats, endpoint_metadata = {}, [], {"items": 0}, {}
    frame = answers_frame(items, answers, [q["file"] for q in quarantine])
    path = storage.stage_quarantine(asset_name, partition, rejects(quarantine))
    models = sorted(set(frame["model"])) if frame.height else []
    context.log.info(f"{asset_name}[{partition}]: {stats}")
    yield Output(
        frame,
        metadata={
            **frame_metadata(frame),
            **stats,
            **endpoint_metadata,
            "answered_by": ", ".join(models) or "none",
            "quarantine_path": MetadataValue.path(path),
        },
    )
    yield contract_check(asset_name, generated_text_violations(frame))
    yield share_check("answered_share", asset_name, len(quarantine), len(items), 0.05, what="items quarantined")


@asset(
    partitions_def=source_partitions, group_name=GROUP, kinds={"openai", "parquet"}, code_version="2", pool="llm",
    retry_policy=LLM_RETRY, check_specs=_checks("image_descriptions"),
)
def image_descriptions(
    context: AssetExecutionContext, config: DescribeConfig, describer: LLMEndpointResource,
    storage: StorageResource, input_paths: InputPathsResource, mapped_labels: pl.DataFrame,
    image_manifest: pl.DataFrame, raw_annotations: pl.DataFrame,
):
    """The describer's (Qwen2.5-VL) short description of each selected image (``DescribeConfig.selection``)
    with a decodable file."""
    selected = select_for_description(mapped_labels, image_manifest, limit=config.limit or None, seed=config.seed,
                                      annotations=raw_annotations, selection=config.selection)
    source = context.partition_key
    items = description_items(selected, source_root(source, config.root or input_paths.settings().root(source)),
                              image_data_url) if selected.height else []
    yield from _generate(context, "image_descriptions", items, describer, storage, VALIDATORS["describe"])


@asset(
    partitions_def=source_partitions, group_name=GROUP, kinds={"openai", "parquet"}, code_version="1", pool="llm",
    retry_policy=LLM_RETRY, check_specs=_checks("emotion_reasoning"),
)
def emotion_reasoning(
    context: AssetExecutionContext, reasoner: LLMEndpointResource, storage: StorageResource,
    image_descriptions: pl.DataFrame, mapped_labels: pl.DataFrame, raw_annotations: pl.DataFrame,
    vad_scores: pl.DataFrame,
):
    """The reasoner's (DeepSeek) paragraph linking visual elements to the ranked emotions, grounded only in
    the description and the human comments."""
    items = reasoning_items(image_descriptions, mapped_labels, raw_annotations, vad_scores)
    yield from _generate(context, "emotion_reasoning", items, reasoner, storage, VALIDATORS["reason"])


@asset(
    partitions_def=source_partitions, group_name=GROUP, kinds={"openai", "parquet"}, code_version="2", pool="llm",
    ins={"emotion_reasoning": AssetIn()},
    retry_policy=LLM_RETRY, check_specs=_checks("descriptive_answers"),
)
def descriptive_answers(
    context: AssetExecutionContext, config: DescriptiveConfig, reasoner: LLMEndpointResource,
    storage: StorageResource, image_descriptions: pl.DataFrame, emotion_reasoning: pl.DataFrame,
    mapped_labels: pl.DataFrame, vad_scores: pl.DataFrame, raw_annotations: pl.DataFrame,
):
    """The five kinds of long answers (paper C.6: narrative, causal, evocation, pair ranking, pair dimension) and
    the reasoning-grounded multiple-choice candidates (paper 3.3: reasoning_choice)."""
    items = descriptive_items(image_descriptions, emotion_reasoning, mapped_labels, vad_scores,
                              pairs_per_source=config.pairs_per_source, seed=config.seed,
                              categories=category_map(content_categories(raw_annotations)))
    yield from _generate(context, "descriptive_answers", items, reasoner, storage,
                         lambda text, item: VALIDATORS[item.template](text, item))
