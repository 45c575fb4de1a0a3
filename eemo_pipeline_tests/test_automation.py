"""Automation on a real instance: observation of the sample's files, the sensor's conditions, schedule,
retry policies and the llm pool's slots."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from dagster import (
    AssetMaterialization,
    Backoff,
    DagsterEventType,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    evaluate_automation_conditions,
    instance_for_test,
    materialize,
)

from eemo_pipeline.sample import SAMPLE_LEXICON, write_sample
from eemo_pipeline.settings import LEXICON_ENV, root_variable

PER_SOURCE = {"raw_annotations", "image_manifest", "mapped_labels", "vad_scores", "vad_validation"}
# Paid language-model calls: launched by hand (the generate_text job, the UI), never by the sensor.
LLM_STAGES = {"image_descriptions", "emotion_reasoning", "descriptive_answers"}
SUBSETS = {"eemodb_qa", "eemodb_assess", "sft_dataset", "grpo_dataset"}


def _requested(result, graph) -> dict[str, set[str | None]]:
    return {key.to_user_string(): set(result.get_requested_partitions(key))
            for key in graph.get_all_asset_keys() if result.get_requested_partitions(key)}


def _report_materialized(instance: DagsterInstance, graph, partitions: dict[str, set[str | None]] | None = None):
    """Record materializations (every materializable asset partition, or those given) in dependency order."""
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        if not node.is_materializable:
            continue
        if partitions is None:
            keys = node.partitions_def.get_partition_keys() if node.partitions_def else [None]
        else:
            keys = partitions.get(key.to_user_string(), ())
        for partition in keys:
            instance.report_runless_asset_event(AssetMaterialization(key, partition=partition))


@pytest.fixture
def sample_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    roots = write_sample(tmp_path / "sample")
    for source, root in roots.items():
        monkeypatch.setenv(root_variable(source), str(root))
    monkeypatch.setenv("EEMO_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv(LEXICON_ENV, str(tmp_path / "sample" / SAMPLE_LEXICON))
    return roots


def test_a_changed_source_file_requests_exactly_its_partitions_and_downstream(sample_env) -> None:
    from eemo_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    observe = defs.resolve_job_def("observe_sources")
    with instance_for_test() as instance:
        assert observe.execute_in_process(instance=instance).success
        _report_materialized(instance, graph)  # the whole graph built once
        result = evaluate_automation_conditions(defs=defs, instance=instance)
        assert result.total_requested == 0

        # Observing unchanged files again yields the same data versions: nothing is requested.
        assert observe.execute_in_process(instance=instance).success
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.total_requested == 0

        truth = sample_env["emotion6"] / "ground_truth.txt"
        data = bytearray(truth.read_bytes())
        data[-2] = ord("7") if data[-2] != ord("7") else ord("8")  # one byte of one probability
        truth.write_bytes(bytes(data))
        assert observe.execute_in_process(instance=instance).success
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        requested = _requested(result, graph)
        assert requested == {asset: {"emotion6"} for asset in PER_SOURCE}

        # Once those partitions are rebuilt, the unpartitioned subsets that read every partition follow, once.
        _report_materialized(instance, graph, requested)
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        requested = _requested(result, graph)
        assert requested == {asset: {None} for asset in SUBSETS}

        _report_materialized(instance, graph, requested)
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.total_requested == 0


def test_fingerprint_reads_only_changed_files_and_ignores_unconfigured_sources(
    sample_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eemo_pipeline.definitions import defs

    monkeypatch.delenv(root_variable("oasis"))
    with instance_for_test() as instance:
        result = defs.resolve_job_def("observe_sources").execute_in_process(instance=instance)
        first = {e.partition: e.tags["dagster/data_version"] for e in _observations(result)}
        assert set(first) == set(sample_env) - {"oasis"}  # no root, no observation, nothing requested downstream
        (sample_env["gaped"] / "A" / "new.txt").write_text("added\n")
        result = defs.resolve_job_def("observe_sources").execute_in_process(instance=instance)
        second = {e.partition: e.tags["dagster/data_version"] for e in _observations(result)}
        logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert {s for s in first if first[s] != second[s]} == {"gaped"}
    assert any(m.startswith("gaped: 20 files") and "(1 hashed)" in m for m in logs)  # only the new file is read
    assert any(m.startswith("emotion6: 11 files") and "(0 hashed)" in m for m in logs)


def _observations(result):
    return [e.event_specific_data.asset_observation for e in result.all_events
            if e.event_type == DagsterEventType.ASSET_OBSERVATION]


def test_schedule_and_sensor_run_by_default_and_expensive_assets_are_never_automated() -> None:
    from eemo_pipeline.definitions import defs

    schedule = defs.resolve_schedule_def("observe_sources_daily")
    assert schedule.default_status == DefaultScheduleStatus.RUNNING and schedule.job_name == "observe_sources"
    sensor = defs.resolve_sensor_def("source_changes")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    automated = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition}
    assert PER_SOURCE | SUBSETS <= automated
    expensive = [a for a in automated if a.startswith(("sft_checkpoint", "grpo_checkpoint", "benchmark"))]
    assert expensive == [] and not automated & LLM_STAGES


def test_llm_and_ingestion_steps_retry_with_exponential_backoff() -> None:
    from eemo_pipeline.definitions import defs

    for name in ("raw_annotations", "image_manifest", "image_descriptions", "emotion_reasoning", "descriptive_answers"):
        policy = defs.resolve_assets_def(name).op.retry_policy
        assert policy is not None and policy.max_retries >= 2 and policy.backoff == Backoff.EXPONENTIAL, name
        assert policy.jitter is not None and policy.delay > 0, name
    for name in ("image_descriptions", "emotion_reasoning", "descriptive_answers"):
        assert defs.resolve_assets_def(name).op.pool == "llm"


def test_an_unconfigured_root_fails_at_once_without_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eemo_pipeline.assets.ingestion import raw_annotations
    from eemo_pipeline.resources import InputPathsResource, StorageResource

    monkeypatch.delenv(root_variable("oasis"), raising=False)
    started = time.perf_counter()
    resources = {"storage": StorageResource(root=str(tmp_path)), "input_paths": InputPathsResource()}
    result = materialize([raw_annotations], partition_key="oasis", resources=resources,
                         raise_on_error=False)
    assert not result.success and time.perf_counter() - started < 10
    assert [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY] == []
    assert "set EEMO_OASIS_ROOT" in result.get_step_failure_events()[0].step_failure_data.error.to_string()


def test_the_repository_dagster_yaml_frees_pool_slots_and_retries_runs(tmp_path: Path, monkeypatch) -> None:
    from eemo_pipeline.instance import ensure_dagster_home

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = ensure_dagster_home(tmp_path / "home")
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
        assert instance.run_monitoring_enabled and instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0


@pytest.mark.slow
def test_an_llm_step_waits_for_a_pool_slot_and_frees_it_when_the_run_ends(sample_env, tmp_path: Path) -> None:
    from eemo_pipeline.assets.generation import image_descriptions
    from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations
    from eemo_pipeline.assets.labels import label_taxonomy, mapped_labels
    from eemo_pipeline.resources import InputPathsResource, LLMEndpointResource, ParquetIOManager, StorageResource

    storage = str(tmp_path / "storage")
    store = StorageResource(root=storage)
    resources = {"io_manager": ParquetIOManager(storage=store), "storage": store, "input_paths": InputPathsResource(),
                 "describer": LLMEndpointResource(role="describer")}
    assets = [raw_annotations, image_manifest, label_taxonomy, mapped_labels, image_descriptions]
    with instance_for_test() as instance:
        for source in ("emotic", "oasis"):
            materialize(assets, selection=[raw_annotations, image_manifest], partition_key=source,
                        resources=resources, instance=instance)
        materialize(assets, selection=[label_taxonomy], resources=resources, instance=instance,
                    run_config={"ops": {"label_taxonomy": {"config": {"folds": 2, "repeats": 1}}}})
        materialize(assets, selection=[mapped_labels], partition_key="oasis", resources=resources, instance=instance)

        # The pool has one slot and another run holds it: the step must wait, then run once it is freed.
        storage_log = instance.event_log_storage
        storage_log.set_concurrency_slots("llm", 1)
        assert storage_log.claim_concurrency_slot("llm", "other-run", "other-step").is_claimed
        outcome = {}
        # OASIS has ratings but no labels, so nothing is sent to an endpoint: the step only needs its slot.
        worker = threading.Thread(target=lambda: outcome.setdefault("result", materialize(
            assets, selection=[image_descriptions], partition_key="oasis", resources=resources, instance=instance)))
        worker.start()
        deadline = time.monotonic() + 30
        while storage_log.get_concurrency_info("llm").pending_step_count == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert storage_log.get_concurrency_info("llm").pending_step_count == 1 and worker.is_alive()
        storage_log.free_concurrency_slots_for_run("other-run")
        worker.join(60)
        assert outcome["result"].success
        info = storage_log.get_concurrency_info("llm")
        assert (info.slot_count, info.active_slot_count, info.pending_step_count) == (1, 0, 0)


def _sensor_ticks(instance: DagsterInstance, name: str) -> list:
    """The ticks of sensor ``name`` that ended (newest first), from the state the daemon keeps for it."""
    from dagster._core.scheduler.instigation import TickStatus

    ticks = []
    for state in instance.all_instigator_state():
        if state.name == name:
            ticks += [tick for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id)
                      if tick.status != TickStatus.STARTED]
    return ticks


@pytest.mark.slow
def test_the_daemon_requests_no_never_built_partition_on_an_instance_built_by_hand(sample_env, tmp_path: Path) -> None:
    """Issue 19: with the daemon on, a fresh instance whose sources were then ingested and refined by hand got
    image_descriptions, emotion_reasoning and descriptive_answers (paid LLM calls) requested by the
    `source_changes` sensor for partitions never built. A never-built partition is now never requested."""
    from eemo_pipeline.definitions import defs
    from eemo_pipeline.instance import ensure_dagster_home
    from eemo_pipeline_tests.conftest import REPO, running_daemon

    home = ensure_dagster_home(tmp_path / "dagster_home")
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    by_hand = [("ingest_sources", "emotic", {}), ("ingest_sources", "emotion6", {}),
               ("reference_tables", None, {"ops": {"label_taxonomy": {"config": {"folds": 2, "repeats": 1}}}}),
               ("refine_sources", "emotion6", {})]
    workspace = (f"load_from:\n  - python_module:\n      module_name: eemo_pipeline.definitions\n"
                 f"      working_directory: {REPO}\n")
    with DagsterInstance.from_config(str(home)) as instance, running_daemon(tmp_path, home, workspace) as daemon:
        # The sensor's first tick sets its cursor; what is materialized after it counts as updated.
        daemon.wait_for("the first tick of the source_changes sensor",
                        lambda: _sensor_ticks(instance, "source_changes"), timeout=600, interval=2)
        for job, partition, config in by_hand:
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, partition_key=partition, run_config={**quiet, **config})
            assert result.success, job
        built = time.time()
        manual_runs = {run.run_id for run in instance.get_runs()}
        # image_descriptions[emotion6] now has every input built, and was never built itself.
        graph = defs.resolve_asset_graph()
        descriptions = next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "image_descriptions")
        assert all(instance.get_latest_materialization_event(dep) for dep in graph.get(descriptions).parent_keys)
        # The sensor runs at most once a minute: wait for its first tick after the runs by hand.
        ticks = daemon.wait_for("a tick of the source_changes sensor after the runs by hand", lambda: [
            tick for tick in _sensor_ticks(instance, "source_changes") if tick.timestamp > built], timeout=600, interval=2)
        requested = {key.to_user_string(): sorted(partitions)
                     for tick in ticks for key, partitions in tick.requested_assets_and_partitions.items()}
        assert requested == {}, requested
        assert instance.get_backfills() == []
        assert {run.run_id for run in instance.get_runs()} == manual_runs
