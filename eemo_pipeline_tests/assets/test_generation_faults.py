"""The generation assets in real Dagster runs against the offline server with injected faults: they fail
loudly (the endpoint's last error, no downstream step), never wait on a hostile Retry-After or a hung request,
keep the key out of every file, log and metadata, cache only accepted answers and stop asking an item after a
bounded number of rejected runs."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterEventType, instance_for_test, materialize

from eemo_pipeline.assets.generation import CACHE_FILE, descriptive_answers, emotion_reasoning, image_descriptions
from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations
from eemo_pipeline.assets.labels import label_taxonomy, mapped_labels
from eemo_pipeline.assets.vad import vad_lexicon, vad_scores, vad_validation
from eemo_pipeline.generation.offline_server.faults import FaultPlan
from eemo_pipeline.generation.offline_server.server import running_in_thread
from eemo_pipeline.resources import InputPathsResource, LLMEndpointResource, ParquetIOManager, StorageResource
from eemo_pipeline.sample import SAMPLE_LEXICON, write_sample
from eemo_pipeline.settings import EndpointSettings, redact
from eemo_pipeline_tests.assets.conftest import (
    generation_resources,
    materialize_generation_inputs,
    point_generation_at,
)

CANARY = "sk-canary-91d2e0a7b4f3"
SOURCE = "affection"
IMAGES = 4  # images described per run (DescribeConfig.limit)
GENERATE = [image_descriptions, emotion_reasoning, descriptive_answers]
ALL = [raw_annotations, image_manifest, label_taxonomy, vad_lexicon, mapped_labels, vad_scores, vad_validation, *GENERATE]
REFUSAL = "I'm sorry, I cannot describe this image."  # an answer every validator rejects


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory):
    """The sample's upstream assets of one source built once, and a running server that demands the key."""
    work = tmp_path_factory.mktemp("upstream")
    storage, home = work / "storage", work / "dagster_home"
    home.mkdir()
    roots = write_sample(work / "sample", [SOURCE, "emotic"])  # label_taxonomy reads emotic
    with pytest.MonkeyPatch.context() as patch, running_in_thread(api_key=CANARY) as server:
        point_generation_at(patch, roots, work / "sample" / SAMPLE_LEXICON, server.base_url, CANARY)
        resources = generation_resources(storage)
        with instance_for_test(temp_dir=str(home)) as instance:
            materialize_generation_inputs(ALL, roots, SOURCE, resources, instance)
        yield storage, server


class Runs:
    """Generation runs of one test: its own copy of the upstream storage (so its own response cache) and
    Dagster home, the module's server with this test's fault plan."""

    def __init__(self, work: Path, upstream: Path, server):
        self.work, self.server = work, server
        self.storage = work / "storage"
        shutil.copytree(upstream, self.storage)
        self.home = work / "dagster_home"
        self.home.mkdir()

    def forget_answers(self) -> None:
        for path in self.storage.glob(f"{CACHE_FILE}*"):  # the database and its WAL files
            path.unlink()

    def run(self, faults: FaultPlan, selection=GENERATE, **endpoint: object):
        self.server.faults = faults
        self.server.reset_log()
        store = StorageResource(root=str(self.storage))
        resources = {
            "io_manager": ParquetIOManager(storage=store), "storage": store, "input_paths": InputPathsResource(),
            "describer": LLMEndpointResource(role="describer", **endpoint),
            "reasoner": LLMEndpointResource(role="reasoner", **endpoint),
        }
        run_config = {"ops": {"image_descriptions": {"config": {"limit": IMAGES}}}}
        started = time.monotonic()
        with instance_for_test(temp_dir=str(self.home)) as instance:
            result = materialize(ALL, selection=selection, partition_key=SOURCE, resources=resources,
                                 instance=instance, run_config=run_config, raise_on_error=False)
        return result, time.monotonic() - started


@pytest.fixture
def runs(endpoint, tmp_path: Path) -> Runs:
    upstream, server = endpoint
    return Runs(tmp_path, upstream, server)


@pytest.fixture
def without_step_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A transient failure is retried by the step's policy (LLM_RETRY: 30 s, 60 s, 120 s later), which the
    in-process executor of ``materialize`` always honours; these tests look at the failure itself."""
    for asset in GENERATE:
        monkeypatch.setattr(asset.op, "_retry_policy", None)


def steps(result, event_type: DagsterEventType) -> set[str]:
    return {event.step_key for event in result.all_events if event.event_type == event_type}


def failure(result, step: str = "image_descriptions") -> str:
    data = result.failure_data_for_node(step)
    return data.user_failure_data.description if data.user_failure_data else data.error.message


@pytest.mark.usefixtures("without_step_retries")
def test_an_endpoint_that_is_down_fails_the_step_with_its_last_error_and_nothing_downstream_runs(runs: Runs) -> None:
    result, _ = runs.run(FaultPlan(down=True), max_retries=1)
    assert not result.success
    assert steps(result, DagsterEventType.STEP_FAILURE) == {"image_descriptions"}
    assert steps(result, DagsterEventType.STEP_START) == {"image_descriptions"}  # no downstream step started
    message = failure(result)
    assert f"none of {IMAGES} items answered" in message
    assert "gave up after 2 attempts: HTTP 503: Service unavailable (injected fault: the endpoint is down)" in message
    # Its health probe (GET /models) answers, so each 503 counts against the item's retries: no wait for it.
    assert runs.server.outcome_counts()["down"] == 2 * IMAGES and runs.server.outcome_counts()["models"] >= 1
    assert not (runs.storage / "image_descriptions").exists()  # no empty table for downstream to read


@pytest.mark.usefixtures("without_step_retries")
def test_retry_after_is_waited_out_within_the_cap_and_fails_the_items_at_once_beyond_it(runs: Runs) -> None:
    assert EndpointSettings("describer").retry_after_cap_s == 60  # the default cap
    # One 429 per request asking for 1 s: waited out, the run succeeds.
    result, _ = runs.run(FaultPlan(rate_limit_first=1, retry_after_s=1), retry_after_cap_s=2)
    assert result.success
    metadata = result.asset_materializations_for_node("image_descriptions")[0].metadata
    assert metadata["answered"].value == IMAGES and metadata["retries"].value == IMAGES
    # Always 429 asking for an hour: beyond the cap, so every item fails at once naming the server's Retry-After,
    # and no request is sent after the first 429 (one slot: one request in all).
    runs.forget_answers()
    result, seconds = runs.run(FaultPlan(rate_limit_first=1000, retry_after_s=3600), concurrency=1)
    assert not result.success and seconds < 30
    assert runs.server.total_requests() == 1
    assert "the server's Retry-After holds every request for another" in failure(result)
    # Within the cap but beyond the item's budget: the item stops at its budget.
    runs.forget_answers()
    result, seconds = runs.run(FaultPlan(rate_limit_first=1000, retry_after_s=5), item_budget_s=3.0)
    assert not result.success and seconds < 30
    assert "time budget of 3 s spent after 1 attempts: HTTP 429" in failure(result)


@pytest.mark.usefixtures("without_step_retries")
def test_a_hung_endpoint_is_cut_off_by_the_item_budget(runs: Runs) -> None:
    result, seconds = runs.run(FaultPlan(hang_s=60), selection=[image_descriptions], item_budget_s=1.5)
    assert not result.success and seconds < 20
    assert "no answer within the item's time budget of 1.5 s" in failure(result)


def test_a_key_quoted_in_a_401_body_reaches_no_file_log_or_metadata(runs: Runs, capfd) -> None:
    # Some items refused (401 quoting the key): the step succeeds and quarantines them with a scrubbed reason.
    partial, _ = runs.run(FaultPlan(unauthorized_rate=0.4, seed=3), selection=[image_descriptions])
    assert partial.success
    quarantine = pl.read_parquet(runs.storage / "quarantine" / "image_descriptions" / "*.parquet")
    assert 0 < quarantine.height < IMAGES
    assert quarantine["reason"].str.contains("Incorrect API key provided: [redacted]", literal=True).all()
    assert quarantine["reason"].str.contains("Authorization: Bearer [redacted]", literal=True).all()
    # Every request refused: the step fails with the scrubbed error and is not retried (a 401 will not clear).
    runs.forget_answers()
    refused, seconds = runs.run(FaultPlan(unauthorized_first=100))
    assert not refused.success and seconds < 30
    assert steps(refused, DagsterEventType.STEP_UP_FOR_RETRY) == set()
    assert "Incorrect API key provided: [redacted]" in failure(refused)
    leaked = [p for p in runs.work.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaked == []
    for result in (partial, refused):
        assert all(CANARY not in str(event) for event in result.all_events)
    captured = capfd.readouterr()
    assert CANARY not in captured.out + captured.err


def test_redaction_covers_configured_keys_and_bearer_tokens(monkeypatch) -> None:
    monkeypatch.setenv("EEMO_JUDGE_API_KEY", "sk-judge-0123456789")
    text = "bad key sk-judge-0123456789; header Authorization: Bearer tok_unconfigured_42, also bearer xyz"
    assert redact(text, ["extra-secret"]) == (
        "bad key [redacted]; header Authorization: Bearer [redacted] also bearer [redacted]")
    assert redact("the extra-secret leaked", ["extra-secret"]) == "the [redacted] leaked"


def test_rejected_answers_are_not_cached_so_a_rerun_after_the_fix_asks_again(runs: Runs) -> None:
    rejected, _ = runs.run(FaultPlan(answer_text=REFUSAL), selection=[image_descriptions])
    assert not rejected.success and "refusal" in failure(rejected)
    assert runs.server.total_requests() == 2 * IMAGES  # the answer and one fresh sample per item
    fixed, _ = runs.run(FaultPlan())
    assert fixed.success
    assert runs.server.total_requests() > 0
    metadata = fixed.asset_materializations_for_node("image_descriptions")[0].metadata
    assert metadata["answered"].value == IMAGES and metadata["calls"].value == IMAGES
    assert metadata["cache_hits"].value == 0
    assert all(check.passed for check in fixed.get_asset_check_evaluations())


def test_an_always_rejected_item_is_asked_in_a_bounded_number_of_runs(runs: Runs) -> None:
    for _ in range(2):
        result, _ = runs.run(FaultPlan(answer_text=REFUSAL), selection=[image_descriptions], max_item_runs=2)
        assert not result.success and runs.server.total_requests() == 2 * IMAGES
    result, _ = runs.run(FaultPlan(answer_text=REFUSAL), selection=[image_descriptions], max_item_runs=2)
    assert not result.success and runs.server.total_requests() == 0  # not asked again
    assert f"{IMAGES} not asked again (rejected in too many runs)" in failure(result)
    assert "not asked again: its answers were rejected in 2 runs (max_item_runs 2)" in failure(result)
    with sqlite3.connect(runs.storage / CACHE_FILE) as db:
        assert db.execute("select count(*), min(runs), max(runs) from rejections").fetchone() == (IMAGES, 2, 2)
        assert db.execute("select count(*) from responses").fetchone() == (0,)


def test_answers_of_another_model_or_with_unreadable_usage_are_kept_and_recorded(runs: Runs) -> None:
    # Another model's name in every answer: the answers are kept under that name and the mismatch is recorded.
    result, _ = runs.run(FaultPlan(answer_model="gpt-4o-mini"), selection=[image_descriptions])
    assert result.success
    metadata = result.asset_materializations_for_node("image_descriptions")[0].metadata
    assert metadata["model_mismatches"].value == IMAGES and metadata["answered_by"].value == "gpt-4o-mini"
    assert f"{IMAGES} answers came from another model than the configured " in metadata["notes"].value
    frame = pl.read_parquet(runs.storage / "image_descriptions" / f"{SOURCE}.parquet")
    assert frame["model"].to_list() == ["gpt-4o-mini"] * IMAGES
    # Token counts that are no numbers: every paid answer kept (table and cache), the usage counted as unreadable.
    runs.forget_answers()
    result, _ = runs.run(FaultPlan(usage_value="n/a"), selection=[image_descriptions])
    assert result.success
    metadata = result.asset_materializations_for_node("image_descriptions")[0].metadata
    assert metadata["answered"].value == IMAGES and metadata["unreadable_usage"].value == IMAGES
    assert metadata["prompt_tokens"].value == 0
    with sqlite3.connect(runs.storage / CACHE_FILE) as db:
        assert db.execute("select count(*) from responses").fetchone() == (IMAGES,)


def test_a_damaged_response_cache_is_moved_aside_and_the_step_goes_on(runs: Runs, capfd) -> None:
    cache = runs.storage / CACHE_FILE
    assert runs.run(FaultPlan(), selection=[image_descriptions])[0].success
    with sqlite3.connect(cache) as db:  # every answer into the main file, then cut it in half
        db.execute("pragma wal_checkpoint(truncate)")
    with cache.open("r+b") as handle:
        handle.truncate(cache.stat().st_size // 2)
    for damage in ("database disk image is malformed", "file is not a database"):
        result, _ = runs.run(FaultPlan(), selection=[image_descriptions])
        assert result.success
        assert runs.server.total_requests() == IMAGES  # the lost answers are asked again, nothing else
        aside = sorted(runs.storage.glob(f"{CACHE_FILE}.corrupt-*[0-9]"))[-1]
        note = f"response cache {cache} is not a readable SQLite database ({damage}): moved aside to {aside}"
        metadata = result.asset_materializations_for_node("image_descriptions")[0].metadata
        assert note in metadata["notes"].value
        assert note in capfd.readouterr().err  # the step's warning in the run's log
        cache.write_bytes(b"overwritten by another program " * 500)  # the next round's damage
    assert len(list(runs.storage.glob(f"{CACHE_FILE}.corrupt-*[0-9]"))) == 2
