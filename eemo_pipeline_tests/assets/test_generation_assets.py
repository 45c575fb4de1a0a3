from __future__ import annotations

import polars as pl
import pytest
from dagster import instance_for_test, materialize

from eemo_pipeline.assets.generation import DescribeConfig, descriptive_answers, emotion_reasoning, image_descriptions
from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations
from eemo_pipeline.assets.labels import label_taxonomy, mapped_labels
from eemo_pipeline.assets.vad import vad_lexicon, vad_scores, vad_validation
from eemo_pipeline.generation.offline_server.chat_api import DEFAULT_MODEL
from eemo_pipeline.generation.offline_server.server import running_in_thread
from eemo_pipeline.generation.stages.reason import image_comments
from eemo_pipeline.sample import SAMPLE_LEXICON, write_sample
from eemo_pipeline_tests.assets.conftest import generation_resources, point_generation_at

CANARY = "sk-canary-5be1c0ffee9d"
SOURCES = ("affection", "emotic", "findingemo")
GENERATE = [image_descriptions, emotion_reasoning, descriptive_answers]
ALL = [raw_annotations, image_manifest, label_taxonomy, vad_lexicon, mapped_labels, vad_scores, vad_validation, *GENERATE]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    """Sample sources through generation against a local server that demands a canary key."""
    work = tmp_path_factory.mktemp("work")
    storage, home = work / "storage", work / "dagster_home"
    home.mkdir()
    roots = write_sample(work / "sample")
    with pytest.MonkeyPatch.context() as patch, running_in_thread(api_key=CANARY) as server:
        point_generation_at(patch, roots, work / "sample" / SAMPLE_LEXICON, server.base_url, CANARY)
        resources = generation_resources(storage)
        results = {}
        with instance_for_test(temp_dir=str(home)) as instance:
            for source in SOURCES:
                materialize(ALL, selection=[raw_annotations, image_manifest], partition_key=source,
                            resources=resources, instance=instance)
            materialize(ALL, selection=[label_taxonomy, vad_lexicon], resources=resources, instance=instance)
            for source in SOURCES:
                materialize(ALL, selection=[mapped_labels, vad_scores], partition_key=source,
                            resources=resources, instance=instance)
                results[source] = materialize(ALL, selection=GENERATE, partition_key=source, resources=resources,
                                              instance=instance)
            requests = server.total_requests()
            # A second run of the same partition is served from the response cache.
            rerun = materialize(ALL, selection=GENERATE, partition_key="affection", resources=resources,
                                instance=instance)
            rerun_requests = server.total_requests() - requests
    return work, storage, results, rerun, rerun_requests


def test_generation_assets_answer_every_selected_item(generated) -> None:
    _, storage, results, _, _ = generated
    for source, result in results.items():
        assert result.success, source
        assert all(c.passed for c in result.get_asset_check_evaluations()), source
    descriptions = pl.read_parquet(storage / "image_descriptions" / "*.parquet")
    reasoning = pl.read_parquet(storage / "emotion_reasoning" / "*.parquet")
    answers = pl.read_parquet(storage / "descriptive_answers" / "*.parquet")
    ranked = pl.read_parquet(storage / "mapped_labels" / "*.parquet").filter(pl.col("ranking").is_not_null())
    manifest = pl.read_parquet(storage / "image_manifest" / "*.parquet").filter("decodable")
    commented = image_comments(pl.read_parquet(storage / "raw_annotations" / "*.parquet")).select(
        "source", "image_id").unique()
    # The paper's selection (DescribeConfig.selection's default): ranked images with comments, i.e. Affection's.
    assert DescribeConfig().selection == "commented"
    expected = ranked.join(manifest, on=["source", "image_id"]).join(commented, on=["source", "image_id"], how="semi")
    assert descriptions.height == expected.height > 0 and set(descriptions["source"]) == {"affection"}
    assert set(reasoning["image_id"]) == set(descriptions["image_id"])
    assert set(answers["template"]) == {"narrative", "causal", "evocation", "reasoning_choice", "pair_ranking",
                                        "pair_dimension"}
    choices = answers.filter(pl.col("template") == "reasoning_choice")
    assert set(choices["image_id"]) == set(reasoning["image_id"])  # every validated reasoning, none quarantined
    assert set(descriptions["model"]) == {DEFAULT_MODEL}  # tagged with the model that wrote them


def test_metadata_counts_calls_cache_hits_and_tokens(generated) -> None:
    _, _, results, rerun, rerun_requests = generated
    metadata = results["affection"].asset_materializations_for_node("image_descriptions")[0].metadata
    assert metadata["calls"].value == metadata["items"].value > 0 and metadata["cache_hits"].value == 0
    assert metadata["completion_tokens"].value > 0 and metadata["answered_by"].value == DEFAULT_MODEL
    again = rerun.asset_materializations_for_node("image_descriptions")[0].metadata
    assert again["calls"].value == 0 and again["cache_hits"].value == metadata["items"].value
    assert rerun_requests == 0


def test_the_key_is_nowhere_in_files_metadata_or_logs(generated, capfd) -> None:
    work, _, results, _, _ = generated
    leaked = [p for p in work.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaked == []
    for result in results.values():
        for event in result.all_events:
            assert CANARY not in str(event)
    captured = capfd.readouterr()
    assert CANARY not in captured.out + captured.err
