"""A code location for the run-queue tests (eemo_pipeline_tests/test_run_queue.py): one partitioned asset that
takes an `llm` pool slot and sleeps, run like the pipeline's steps (queued, multiprocess executor, the pipeline's
storage resource)."""

import time

from dagster import Config, Definitions, MaterializeResult, StaticPartitionsDefinition, asset, define_asset_job

from eemo_pipeline.resources import StorageResource


class HoldConfig(Config):
    seconds: float = 5.0


@asset(partitions_def=StaticPartitionsDefinition(["emotion6", "oasis"]), pool="llm")
def holds_llm_slot(config: HoldConfig, storage: StorageResource) -> MaterializeResult:
    time.sleep(config.seconds)
    return MaterializeResult(metadata={"slept_seconds": config.seconds})


hold_llm_job = define_asset_job("hold_llm", selection=[holds_llm_slot])

defs = Definitions(assets=[holds_llm_slot], jobs=[hold_llm_job], resources={"storage": StorageResource()})
