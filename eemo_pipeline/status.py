"""``eemo status``: per asset and partition, what is materialized in the instance, what is stale, what fails.

State of one asset partition, most urgent first:

- ``failed``: its latest run failed or was canceled before materializing it, or one of its blocking checks
  failed on the latest materialization;
- ``running``: a run that will materialize it is queued or in progress;
- ``missing``: never materialized, or the file its latest materialization wrote is gone (deleted by hand: the
  lineage record of that materialization names the file);
- ``stale``: materialized, but Dagster's data-version lineage says so (code version changed, a dependency has a
  new data version), or an input it read has different content now: the lineage record of its latest
  materialization (``eemo_pipeline.lineage``) holds the content hash of every input partition it loaded,
  compared with the ``content_hash`` of that input's latest materialization (so a rerun that rewrites
  identical bytes upstream does not make anything stale); or the file it wrote does not read as Parquet or
  was changed by hand since (its sha256 differs from the record's);
- ``fresh``: otherwise.

Non-blocking checks that failed are listed as warnings and do not change the state.

No private ``dagster._`` module is imported (they change on upgrades): ``Definitions`` gives the asset and check
specs; ``DagsterInstance`` the records (``fetch_materializations``, ``fetch_observations`` and ``get_run_by_id`` are
its documented public methods; ``get_latest_planned_materialization_info`` and ``all_logs`` plain methods of the
public class); staleness is read from the data-version tags Dagster writes on every materialization
(``dagster/code_version``, ``dagster/data_version``, ``dagster/input_data_version/<key>``,
``dagster/input_event_pointer/<key>``) by the rules of Dagster's own stale-status resolver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from graphlib import TopologicalSorter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import AssetKey, DagsterInstance, Definitions, EventLogRecord

STATES = ("failed", "running", "missing", "stale", "fresh")

# Dagster's data-version tags on materializations and observations, and its placeholder versions.
CODE_VERSION_TAG = "dagster/code_version"
DATA_VERSION_TAG = "dagster/data_version"
USER_DATA_VERSION_TAG = "dagster/data_version_is_user_provided"
INPUT_VERSION_PREFIX = "dagster/input_data_version/"
INPUT_POINTER_PREFIX = "dagster/input_event_pointer/"
NULL_POINTER = "NULL"
NEVER_VERSION, ASSUMED_VERSION = "NULL", "INITIAL"  # a never-materialized asset; an external one not yet observed
# Like Dagster's resolver: a dependency mapped to this many partitions or more is not checked partition by partition.
MAX_DEPENDENCY_PARTITIONS = 100


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
    missing_file: str | None = None  # the file its latest materialization wrote, when it is gone

    def to_dict(self) -> dict:
        record = asdict(self)
        record["materialized_at"] = (
            datetime.fromtimestamp(self.materialized_at).astimezone().isoformat() if self.materialized_at else None
        )
        return record


def collect_status(instance: DagsterInstance, storage: Path, defs: Definitions | None = None,
                   assets: Sequence[str] | None = None) -> list[PartitionStatus]:
    """The status of every materializable asset partition of ``defs`` (default: the code location) in
    ``instance``, in dependency order. ``storage`` is the output root that holds the lineage records."""
    from eemo_pipeline.lineage import input_key, latest_records, output_problem

    if defs is None:
        from eemo_pipeline.definitions import defs
    graph = _Graph(defs, instance)
    keys = [key for key in graph.order if graph.materializable(key)]
    if assets:
        unknown = sorted(set(assets) - {key.to_user_string() for key in keys})
        if unknown:
            raise KeyError(f"unknown asset(s): {', '.join(unknown)}")
        keys = [key for key in keys if key.to_user_string() in set(assets)]
    # Content hash of the latest materialization of every asset partition (inputs of the ones listed included).
    hashes = {input_key(key.to_python_identifier(), partition): content
              for key in graph.order if graph.materializable(key) for partition in graph.partitions(key)
              if (content := graph.content_hash(key, partition))}
    records = latest_records(storage)

    statuses = []
    for key in keys:
        name = key.to_user_string()
        for partition in graph.partitions(key):
            latest = graph.latest(key, partition)
            failures, warnings = graph.failed_checks(key, partition, latest)
            run_note = graph.pending_run(key, partition, latest)
            if run_note and run_note[0] == "failed":
                failures.insert(0, run_note[1])
            causes: list[str] = []
            gone = None
            if latest is not None:
                causes += graph.stale_causes(key, partition, latest)
                record = records.get((key.to_python_identifier(), partition))
                if record is not None and record.run_id == latest.run_id:
                    for input_name, read_hash in record.input_data_versions.items():
                        current = hashes.get(input_name)
                        if current is not None and current != read_hash:
                            causes.append(f"{input_name} has new content since it was read")
                    if not record.output_path(storage).is_file():
                        gone = record.file
                    elif problem := output_problem(record, storage):
                        causes.append(f"file {record.file} {problem}")
            if failures:
                state = "failed"
            elif run_note:
                state = "running"
            elif latest is None or gone:
                state = "missing"
            else:
                state = "stale" if causes else "fresh"
            statuses.append(PartitionStatus(
                asset=name, partition=partition, state=state,
                materialized_at=latest.timestamp if latest else None, run_id=latest.run_id if latest else None,
                content_hash=graph.content_hash(key, partition),
                stale_causes=() if gone else tuple(dict.fromkeys(causes)),
                failures=tuple(failures), warnings=tuple(warnings), missing_file=gone,
            ))
    return statuses


class _Graph:
    """The asset graph of ``defs`` (from its public asset and check specs) over the records of ``instance``."""

    def __init__(self, defs: Definitions, instance: DagsterInstance) -> None:
        self.instance = instance
        self.specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
        self.definitions = {key: defs.resolve_assets_def(key) for key in self.specs}
        sorter = TopologicalSorter({key: {dep.asset_key for dep in spec.deps if dep.asset_key in self.specs}
                                    for key, spec in self.specs.items()})
        sorter.prepare()
        self.order: list[AssetKey] = []
        while sorter.is_active():  # level by level, each level sorted, as Dagster orders its asset graph
            level = sorted(sorter.get_ready())
            self.order += level
            sorter.done(*level)
        self.latest = cache(self._latest)
        self._run_evaluations = cache(self._evaluations)

    def materializable(self, key: AssetKey) -> bool:
        return self.definitions[key].is_materializable

    def partitions(self, key: AssetKey) -> list[str | None]:
        partitions_def = self.specs[key].partitions_def
        return list(partitions_def.get_partition_keys()) if partitions_def else [None]

    def _latest(self, key: AssetKey, partition: str | None, after: int | None = None,
                before: int | None = None) -> EventLogRecord | None:
        """The newest materialization (an observation for an external asset) of ``key[partition]``, optionally
        only those with a storage id above ``after`` or below ``before``."""
        from dagster import AssetRecordsFilter

        records_filter = AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None,
                                            after_storage_id=after, before_storage_id=before)
        fetch = self.instance.fetch_observations if self.definitions[key].is_external else \
            self.instance.fetch_materializations
        records = fetch(records_filter, limit=1).records
        return records[0] if records else None

    def content_hash(self, key: AssetKey, partition: str | None) -> str | None:
        latest = self.latest(key, partition)
        event = latest.asset_materialization if latest else None
        entry = event.metadata.get("content_hash") if event else None
        return str(entry.value) if entry is not None else None

    def pending_run(self, key: AssetKey, partition: str | None, latest: EventLogRecord | None
                    ) -> tuple[str, str] | None:
        """("failed", why) or ("running", run) when the latest run planned to materialize it has not done so."""
        from dagster import DagsterRunStatus

        planned = self.instance.get_latest_planned_materialization_info(key, partition)
        if planned is None or (latest is not None and latest.storage_id > planned.storage_id):
            return None
        if latest is not None and latest.run_id == planned.run_id:
            return None
        run = self.instance.get_run_by_id(planned.run_id)
        if run is None:
            return None
        if run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            return "failed", f"run {run.run_id[:8]} {run.status.value.lower()}"
        if not run.is_finished:
            return "running", f"run {run.run_id[:8]} {run.status.value.lower()}"
        return None

    def _evaluations(self, run_id: str) -> list:
        from dagster import DagsterEventType

        return [entry.asset_check_evaluation
                for entry in self.instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)]

    def failed_checks(self, key: AssetKey, partition: str | None, latest: EventLogRecord | None
                      ) -> tuple[list[str], list[str]]:
        """Checks that failed on the latest materialization (their last evaluation in its run): blocking ones,
        then the others."""
        if latest is None:
            return [], []
        blocking = {spec.name: spec.blocking for spec in self.definitions[key].check_specs if spec.asset_key == key}
        last = {}
        for evaluation in self._run_evaluations(latest.run_id):
            if evaluation.asset_key == key and evaluation.partition == partition and evaluation.check_name in blocking:
                last[evaluation.check_name] = evaluation
        failed = [name for name, evaluation in last.items() if not evaluation.passed]
        return ([f"check {name} failed" for name in failed if blocking[name]],
                [f"check {name} failed" for name in failed if not blocking[name]])

    # -- staleness: Dagster's data-version rules over its public tags

    def stale_causes(self, key: AssetKey, partition: str | None, latest: EventLogRecord) -> list[str]:
        return [f"{_where(where)}: {reason}" for where, reason in self._stale_causes(key, partition, latest)]

    def _stale_causes(self, key: AssetKey, partition: str | None, latest: EventLogRecord
                      ) -> Iterator[tuple[tuple[AssetKey, str | None], str]]:
        from dagster import AssetKey

        here = (key, partition)
        tags = _tags(latest)
        code_version = tags.get(CODE_VERSION_TAG)
        spec = self.specs[key]
        if code_version is not None:
            if spec.code_version and spec.code_version != code_version:
                yield here, "has a new code version"
            read = {AssetKey.from_user_string(tag[len(INPUT_VERSION_PREFIX):]): value
                    for tag, value in tags.items() if tag.startswith(INPUT_VERSION_PREFIX)}
            pointers = {AssetKey.from_user_string(tag[len(INPUT_POINTER_PREFIX):]):
                        None if value == NULL_POINTER else int(value)
                        for tag, value in tags.items() if tag.startswith(INPUT_POINTER_PREFIX)}
            for removed in sorted(set(read) - {dep.asset_key for dep in spec.deps}):
                yield here, f"removed dependency on {removed.to_user_string()}"
        for dep_key, dep_partition in self._dependencies(key, partition):
            if code_version is None:  # no provenance: compare times, as Dagster does
                if not self.definitions[dep_key].is_external:
                    dep_latest = self.latest(dep_key, dep_partition)
                    if dep_latest is None:
                        yield here, "has a new input"
                    elif dep_latest.timestamp > latest.timestamp:
                        yield (dep_key, dep_partition), "has a new materialization"
            elif dep_key not in read or dep_key not in pointers:
                yield here, f"has a new dependency on {dep_key.to_user_string()}"
            elif self._dependency_updated(dep_key, dep_partition, read[dep_key], pointers[dep_key]):
                versioned = self.specs[dep_key].code_version is not None or self.definitions[dep_key].is_external \
                    or _tags(self.latest(dep_key, dep_partition)).get(USER_DATA_VERSION_TAG) == "true"
                yield (dep_key, dep_partition), "has a new data version" if versioned else "has a new materialization"

    def _dependencies(self, key: AssetKey, partition: str | None) -> list[tuple[AssetKey, str | None]]:
        """The dependency partitions ``key[partition]`` reads, through each dependency's partition mapping."""
        from dagster import AllPartitionMapping, IdentityPartitionMapping

        spec = self.specs[key]
        found = []
        for dep in spec.deps:
            upstream = self.specs.get(dep.asset_key)
            if upstream is None:
                continue
            if upstream.partitions_def is None:
                found.append((dep.asset_key, None))
                continue
            mapping = dep.partition_mapping or (
                IdentityPartitionMapping() if spec.partitions_def else AllPartitionMapping())
            subset = spec.partitions_def.subset_with_partition_keys([partition]) if spec.partitions_def else None
            mapped = mapping.get_upstream_mapped_partitions_result_for_partitions(
                subset, spec.partitions_def, upstream.partitions_def).partitions_subset.get_partition_keys()
            mapped = list(mapped)
            if len(mapped) < MAX_DEPENDENCY_PARTITIONS:
                found += [(dep.asset_key, upstream_partition) for upstream_partition in mapped]
        return found

    def _dependency_updated(self, dep_key: AssetKey, dep_partition: str | None, read_version: str,
                            pointer: int | None) -> bool:
        if dep_partition is None:
            return _differ(read_version, self._version(dep_key, self.latest(dep_key, None)))
        updated = self.latest(dep_key, dep_partition, after=pointer)
        if updated is None:
            return False
        # As Dagster's resolver: without a pointer (nothing was recorded when it was read) "before" is unbounded.
        previous = self.latest(dep_key, dep_partition, before=pointer + 1 if pointer else None)
        return _differ(_tags(previous).get(DATA_VERSION_TAG) if previous else None, _tags(updated).get(DATA_VERSION_TAG))

    def _version(self, key: AssetKey, record: EventLogRecord | None) -> str:
        if record is None:
            return ASSUMED_VERSION if self.definitions[key].is_external else NEVER_VERSION
        return _tags(record).get(DATA_VERSION_TAG) or ASSUMED_VERSION


def _tags(record: EventLogRecord | None) -> dict[str, str]:
    event = (record.asset_materialization or record.asset_observation) if record else None
    return dict(event.tags or {}) if event else {}


def _differ(previous: str | None, current: str | None) -> bool:
    # An input read as "assumed present" and now "never materialized" has not changed (Dagster's special case).
    return not (previous == ASSUMED_VERSION and current == NEVER_VERSION) and previous != current


def _where(slot: tuple[AssetKey, str | None]) -> str:
    key, partition = slot
    return key.to_user_string() + (f"[{partition}]" if partition else "")


def summary(statuses: Sequence[PartitionStatus]) -> str:
    counts = {state: sum(s.state == state for s in statuses) for state in STATES}
    return f"{len(statuses)} asset partitions: " + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s])


def format_status(statuses: Sequence[PartitionStatus]) -> str:
    """A fixed-width table, one row per asset partition, and a summary line."""
    header = ("asset", "partition", "state", "materialized", "run", "details")
    rows = [header]
    for status in statuses:
        when = datetime.fromtimestamp(status.materialized_at).strftime("%Y-%m-%d %H:%M:%S") if status.materialized_at else "-"
        gone = (f"file {status.missing_file} is gone",) if status.missing_file else ()
        details = "; ".join((*status.failures, *gone, *status.stale_causes, *(f"warning: {w}" for w in status.warnings)))
        rows.append((status.asset, status.partition or "-", status.state, when, (status.run_id or "-")[:8], details))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n\n" + summary(statuses)


def to_json(statuses: Sequence[PartitionStatus]) -> str:
    return json.dumps([status.to_dict() for status in statuses], indent=2)
