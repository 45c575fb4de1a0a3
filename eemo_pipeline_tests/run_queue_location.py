"""A code location for the run-queue tests (eemo_pipeline_tests/test_run_queue.py): one partitioned asset that
takes an `llm` pool slot and holds it (a time, or until a file appears), run like the pipeline's steps (queued, multiprocess executor, the pipeline's
storage resource)."""

import time
from pathlib import Path

from dagster import Config, Definitions, MaterializeResult, StaticPartitionsDefinition, asset, define_asset_job

from eemo_pipeline.resources import StorageResource


class HoldConfig(Config):
    seconds: float = 5.0
    # When set, hold until this file exists (at most `seconds`): the test decides when the step ends.
    release_file: str = ""


@asset(partitions_def=StaticPartitionsDefinition(["emotion6", "oasis"]), pool="llm")
def holds_llm_slot(config: HoldConfig, storage: StorageResource) -> MaterializeResult:
    started = time.monotonic()
    while time.monotonic() - started < config.seconds and not (config.release_file and Path(config.release_file).exists()):
        time.sleep(0.2)
    return MaterializeResult(metadata={"held_seconds": round(time.monotonic() - started, 1)})


hold_llm_job = define_asset_job("hold_llm", selection=[holds_llm_slot])

defs = Definitions(assets=[holds_llm_slot], jobs=[hold_llm_job], resources={"storage": StorageResource()})
