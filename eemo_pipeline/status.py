"""``eemo status``: per asset and partition, what is materialized in the instance, what is stale, what fails.

State of one asset partition, most urgent first:

- ``failed``: its latest run failed or was canceled before materializing it, or one of its blocking checks
  failed on the latest materialization;
- ``running``: a run that will materialize it is queued or in progress;
- ``missing``: never materialized;
- ``stale``: materialized, but Dagster's data-version lineage says so (code version changed, an upstream
  missing or updated), or an input it read has different content now: the lineage record of its latest
  materialization (``eemo_pipeline.lineage``) holds the content hash of every input partition it loaded,
  compared with the ``content_hash`` of that input's latest materialization (so a rerun that rewrites
  identical bytes upstream does not make anything stale);
- ``fresh``: otherwise.

Non-blocking checks that failed are listed as warnings and do not change the state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import DagsterInstance
    from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph

STATES = ("failed", "running", "missing", "stale", "fresh")


@dataclass(frozen=True)
class PartitionStatus:
    asset: str
    partition: str | None
    state: str
    materialized_at: float | None = None  # POSIX timestamp of the latest materialization
    run_id: str | None = None  # the run of that materialization
    content_hash: str | None = None
    stale_causes: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        record = asdict(self)
        record["materialized_at"] = (
            datetime.fromtimestamp(self.materialized_at).astimezone().isoformat() if self.materialized_at else None
        )
        return record


@dataclass
class _Latest:
    """The latest materialization of one asset partition."""

    timestamp: float
    run_id: str
    content_hash: str | None


@dataclass
class _Observed:
    latest: dict[tuple[str, str | None], _Latest] = field(default_factory=dict)
    # input key ("asset[partition]") -> content hash of its latest materialization
    hashes: dict[str, str] = field(default_factory=dict)


def collect_status(instance: DagsterInstance, asset_graph: BaseAssetGraph | None = None,
                   storage: Path | None = None, assets: Sequence[str] | None = None) -> list[PartitionStatus]:
    """The status of every asset partition of ``asset_graph`` (default: the code location) in ``instance``,
    in dependency order. ``storage`` holds the lineage records (default: EEMO_STORAGE or ./.eemo/storage)."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._time import get_current_datetime

    from eemo_pipeline.settings import Settings

    if asset_graph is None:
        from eemo_pipeline.definitions import defs

        asset_graph = defs.resolve_asset_graph()
    keys = [key for key in asset_graph.toposorted_asset_keys if asset_graph.get(key).is_materializable]
    if assets:
        unknown = sorted(set(assets) - {key.to_user_string() for key in keys})
        if unknown:
            raise KeyError(f"unknown asset(s): {', '.join(unknown)}")
        keys = [key for key in keys if key.to_user_string() in set(assets)]
    observed = _observe(instance, asset_graph, keys)
    inputs_read = _inputs_read(Path(storage) if storage else Settings.from_env().storage, observed)
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=asset_graph)
    resolver = CachingStaleStatusResolver(instance, asset_graph, loading_context=view)
    check_results = _check_results(instance, asset_graph, keys)

    statuses = []
    for key in keys:
        name = key.to_user_string()
        pending = _pending_runs(instance, key, asset_graph.get(key).is_partitioned, observed)
        for partition in _partitions(asset_graph, key):
            latest = observed.latest.get((name, partition))
            failures = list(check_results.get((name, partition), {}).get("blocking", []))
            warnings = list(check_results.get((name, partition), {}).get("warning", []))
            run_note = pending.get(partition)
            if run_note and run_note[0] == "failed":
                failures.insert(0, run_note[1])
            causes: list[str] = []
            if latest is not None:
                if resolver.get_status(key, partition) == StaleStatus.STALE:
                    causes += [_describe_cause(cause) for cause in resolver.get_stale_root_causes(key, partition)]
                for input_name, read_hash in inputs_read.get((name, partition), {}).items():
                    current = observed.hashes.get(input_name)
                    if current is not None and current != read_hash:
                        causes.append(f"{input_name} has new content since it was read")
            if failures:
                state = "failed"
            elif run_note:
                state = "running"
            elif latest is None:
                state = "missing"
            else:
                state = "stale" if causes else "fresh"
            statuses.append(PartitionStatus(
                asset=name, partition=partition, state=state,
                materialized_at=latest.timestamp if latest else None, run_id=latest.run_id if latest else None,
                content_hash=latest.content_hash if latest else None, stale_causes=tuple(dict.fromkeys(causes)),
                failures=tuple(failures), warnings=tuple(warnings),
            ))
    return statuses


def _partitions(asset_graph, key) -> list[str | None]:
    node = asset_graph.get(key)
    return list(node.partitions_def.get_partition_keys()) if node.is_partitioned else [None]


def _observe(instance, asset_graph, keys) -> _Observed:
    from dagster import AssetRecordsFilter

    from eemo_pipeline.lineage import input_key

    observed = _Observed()
    for key in keys:
        name = key.to_user_string()
        for partition in _partitions(asset_graph, key):
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
            ).records
            if not records:
                continue
            record = records[0]
            content = record.asset_materialization.metadata.get("content_hash") if record.asset_materialization else None
            latest = _Latest(record.timestamp, record.run_id, str(content.value) if content is not None else None)
            observed.latest[(name, partition)] = latest
            if latest.content_hash:
                observed.hashes[input_key(key.to_python_identifier(), partition)] = latest.content_hash
    return observed


def _inputs_read(storage: Path, observed: _Observed) -> dict[tuple[str, str | None], dict[str, str]]:
    """Input content hashes recorded by the lineage record of each latest materialization."""
    from eemo_pipeline.lineage import read_records, records_dir

    if not records_dir(storage).is_dir():
        return {}
    wanted = {(name, partition): latest.run_id for (name, partition), latest in observed.latest.items()}
    found: dict[tuple[str, str | None], dict[str, str]] = {}
    for record in read_records(storage):
        slot = (record.asset, record.partition)
        if wanted.get(slot) == record.run_id:
            found[slot] = dict(record.input_data_versions or {})
    return found


def _pending_runs(instance, key, partitioned: bool, observed: _Observed) -> dict[str | None, tuple[str, str]]:
    """Partitions whose latest planned materialization has not happened: ("failed", why) or ("running", run)."""
    from dagster import DagsterRunStatus

    if partitioned:
        attempts = {partition: run_id for partition, (run_id, _) in instance.event_log_storage
                    .get_latest_asset_partition_materialization_attempts_without_materializations(key).items()}
    else:
        records = instance.get_asset_records([key])
        entry = records[0].asset_entry if records else None
        latest = observed.latest.get((key.to_user_string(), None))
        planned = entry.last_planned_materialization_run_id if entry else None
        attempts = {None: planned} if planned and (latest is None or latest.run_id != planned) else {}
    notes: dict[str | None, tuple[str, str]] = {}
    for partition, run_id in attempts.items():
        run = instance.get_run_by_id(run_id)
        if run is None:
            continue
        if run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            notes[partition] = ("failed", f"run {run_id[:8]} {run.status.value.lower()}")
        elif not run.is_finished:
            notes[partition] = ("running", f"run {run_id[:8]} {run.status.value.lower()}")
    return notes


def _check_results(instance, asset_graph, keys) -> dict[tuple[str, str | None], dict[str, list[str]]]:
    """Failed checks of the latest execution per asset partition, split into blocking and warning."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    check_keys = [check for check in asset_graph.get_check_keys_for_assets(set(keys))]
    results: dict[tuple[str, str | None], dict[str, list[str]]] = {}
    if not check_keys:
        return results
    for info in instance.event_log_storage.get_asset_check_partition_info(check_keys):
        if info.latest_execution_status != AssetCheckExecutionRecordStatus.FAILED:
            continue
        check = info.check_key
        kind = "blocking" if asset_graph.get_check_spec(check).blocking else "warning"
        slot = results.setdefault((check.asset_key.to_user_string(), info.partition_key), {})
        slot.setdefault(kind, []).append(f"check {check.name} failed")
    return results


def _describe_cause(cause) -> str:
    where = cause.key.asset_key.to_user_string() + (f"[{cause.key.partition_key}]" if cause.key.partition_key else "")
    dependency = cause.dependency
    if dependency is not None:
        name = dependency.asset_key.to_user_string() + (f"[{dependency.partition_key}]" if dependency.partition_key else "")
        return f"{where}: {cause.reason} ({name})" if cause.key.asset_key != dependency.asset_key else f"{where}: {cause.reason}"
    return f"{where}: {cause.reason}"


def summary(statuses: Sequence[PartitionStatus]) -> str:
    counts = {state: sum(s.state == state for s in statuses) for state in STATES}
    return f"{len(statuses)} asset partitions: " + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s])


def format_status(statuses: Sequence[PartitionStatus]) -> str:
    """A fixed-width table, one row per asset partition, and a summary line."""
    header = ("asset", "partition", "state", "materialized", "run", "details")
    rows = [header]
    for status in statuses:
        when = datetime.fromtimestamp(status.materialized_at).strftime("%Y-%m-%d %H:%M:%S") if status.materialized_at else "-"
        details = "; ".join((*status.failures, *status.stale_causes, *(f"warning: {w}" for w in status.warnings)))
        rows.append((status.asset, status.partition or "-", status.state, when, (status.run_id or "-")[:8], details))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n\n" + summary(statuses)


def to_json(statuses: Sequence[PartitionStatus]) -> str:
    return json.dumps([status.to_dict() for status in statuses], indent=2)
