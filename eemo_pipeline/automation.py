"""Automation: what re-runs when a source changes, the daily observation of the sources, retry policies.

The flow: ``observe_sources_daily`` (a schedule) runs ``observe_sources``, which fingerprints every
configured source root (``source_files``, one data version per partition). A partition whose fingerprint
changed counts as updated; the ``source_changes`` sensor then evaluates ``ON_SOURCE_CHANGE`` on every asset
downstream and requests the affected partitions as one backfill.

Training and benchmark assets carry no condition: a source change never starts them (they are expensive);
launch them from the UI or their jobs once the new subsets look right.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    Backoff,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Failure,
    Jitter,
    RetryPolicy,
    ScheduleDefinition,
    define_asset_job,
)

SOURCE_FILES = "source_files"
# Run tag of the unpartitioned jobs, naming the files they write: dagster.yaml lets one queued run per value
# run at a time, as it does per `dagster/partition` value for the partitioned jobs.
WRITES_TAG = "eemo/writes"

# `eager()` without its `newly_missing` branch, and never for a partition that was never built: an asset partition
# is requested only when it was built before and a dependency changed since it was last handled (or is requested
# in the same tick), so a changed Emotion6 file requests raw_annotations[emotion6], every partition mapped from it
# (identity, so emotion6 only), and the unpartitioned subsets that read all partitions (once), and nothing else.
# `~missing()` keeps a fresh instance, a newly configured root or partitions built by hand from starting the rest
# of the graph, paid LLM calls included, before anyone asked for it (dropping `newly_missing` alone did not: a
# never-built partition whose inputs were then built by hand counted as "dependency updated"); missing
# partitions are built by the jobs or the UI. Assets with a missing or in-progress dependency wait, so a
# half-built graph is never read.
ON_SOURCE_CHANGE = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.missing()
    & ~AutomationCondition.any_deps_missing()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("on_source_change")

# Step retries for transient faults (a network file system, an endpoint restarting). Deterministic errors
# (a malformed file, an unconfigured root or endpoint) are raised through `permanent_errors` and fail at once.
SOURCE_RETRY = RetryPolicy(max_retries=2, delay=15, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
# The client already retries each request; this covers a whole step dying (endpoint down, worker killed).
LLM_RETRY = RetryPolicy(max_retries=3, delay=30, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


@contextmanager
def permanent_errors(*errors: type[BaseException]) -> Iterator[None]:
    """Turn ``errors`` into a ``Failure`` that the step's retry policy does not retry (same message)."""
    try:
        yield
    except errors as error:
        raise Failure(description=f"{type(error).__name__}: {error}", allow_retries=False) from error


observe_sources_job = define_asset_job(
    "observe_sources",
    selection=AssetSelection.assets(SOURCE_FILES),
    description="Fingerprint every configured source root; a changed fingerprint triggers the source_changes sensor.",
)

observe_sources_daily = ScheduleDefinition(
    name="observe_sources_daily",
    job=observe_sources_job,
    cron_schedule="0 5 * * *",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Observe the source roots once a day (05:00 UTC); changed sources re-run downstream.",
)

# Backfills (the default) rather than single-partition runs: the request mixes partitioned assets with the
# unpartitioned subsets, and only a backfill orders the subsets after the partitions they read.
source_changes_sensor = AutomationConditionSensorDefinition(
    "source_changes",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Requests the partitions downstream of a changed source (assets with ON_SOURCE_CHANGE).",
)
