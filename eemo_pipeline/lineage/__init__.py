"""Lineage: one JSON record per materialization, and a DuckDB database of lineage tables and Parquet views.

Writers never touch DuckDB. Every materialization drops one small JSON file under
``<storage>/_lineage/records/`` under a name no other writer can pick, so any number of concurrent runs record
without a lock: the IO manager stages it (:func:`stage_record`) and renames it in the same commit as the data and
quarantine it describes (``eemo_pipeline.storage.commit``), last, so a record never names data that is not in place.

:func:`refresh` is the single DuckDB writer. It takes an exclusive ``flock`` on ``<storage>/_lineage/.lock``
(so two refreshes wait for each other instead of failing on DuckDB's own file lock), builds a fresh database
in a temporary file and renames it over ``<storage>/lineage.duckdb``. Readers (:func:`connect`,
:func:`query`, ``eemo sql``) open that file read-only and never take the lock: a reader that opened the old
file keeps reading it, the next one opens the new one. Nothing ever writes into ``lineage.duckdb`` in place.

Database layout:

- ``materializations``: one row per record (asset, partition, run_id, code_version, data_version,
  row_count, file, materialized_at, input_data_versions as JSON, parameters as JSON, record_file);
  ``parameters`` holds what an asset computed from its data and applied to it (e.g. ``vad_scores``'
  normalisation bounds), so that a value can be traced back to the numbers that shaped it.
- ``materialization_inputs``: one row per input of a materialization (input_asset, input_partition,
  input_data_version), parsed from the ``"asset[partition]"`` keys.
- one view per asset over its Parquet output(s), named after the asset (``raw_annotations``,
  ``label_taxonomy``, ...): a partitioned asset is ``read_parquet('<abs>/<asset>/*.parquet',
  union_by_name=true)``, so a partition written after the refresh shows up without one.
- ``generated_text``: the generation stages (``image_descriptions``, ``emotion_reasoning``,
  ``descriptive_answers``) in one view, with an ``asset`` column.
- ``subset_rows``: ``eemodb_qa`` and ``eemodb_assess`` in one view, with a ``subset`` column.
- ``quarantine``: every quarantine file, with ``asset`` and ``partition`` taken from its path.

An asset without output files has no view (and a combined view lacks its part); a query naming it fails
with DuckDB's catalog error. Every view reads Parquet by absolute path, so the database works from any
working directory; a database built for another root (the storage was moved or copied) is rebuilt before use,
as is one older than a record or Parquet output. A Parquet file that does not read (damaged, cut, not a
regular file) is left out of the views and listed in the ``unreadable_files`` table; on a storage root that
cannot be written, :func:`current_database` builds the database in a temporary folder.
A partition whose newest record names a file that is gone (deleted by hand) is listed by
:func:`missing_outputs`: ``eemo sql`` warns that its rows are absent, ``eemo status`` calls it missing.

Modules: ``records`` (the JSON records), ``database`` (the writer: lock, build, views), ``sql`` (read-only
queries: statement classification, the locked-down connection, limits), ``examples`` (``eemo sql --example``).
"""

from eemo_pipeline.lineage.database import (
    DEFAULT_LOCK_TIMEOUT_S,
    GENERATED_TEXT_ASSETS,
    SUBSET_ASSETS,
    DatabaseInfo,
    current_database,
    discover_outputs,
    ensure_database,
    refresh,
    write_lock,
)
from eemo_pipeline.lineage.examples import EXAMPLE_QUERIES, ExampleQuery
from eemo_pipeline.lineage.records import (
    MaterializationRecord,
    database_path,
    file_data_version,
    input_key,
    latest_records,
    lineage_dir,
    missing_outputs,
    output_problem,
    read_records,
    record_materialization,
    records_dir,
    stage_record,
    sweep_record_partials,
)
from eemo_pipeline.lineage.sql import (
    READ_ONLY_HINT,
    QueryResult,
    bounded_query,
    check_read_only,
    connect,
    query,
    run_query,
)

__all__ = [
    "DEFAULT_LOCK_TIMEOUT_S", "EXAMPLE_QUERIES", "GENERATED_TEXT_ASSETS",
    "QueryResult", "READ_ONLY_HINT", "SUBSET_ASSETS", "DatabaseInfo", "ExampleQuery", "MaterializationRecord", "bounded_query",
    "check_read_only", "connect", "current_database",
    "database_path", "discover_outputs", "ensure_database", "file_data_version", "input_key", "latest_records",
    "lineage_dir", "missing_outputs", "output_problem", "query", "read_records", "record_materialization", "records_dir", "refresh",
    "run_query", "stage_record", "sweep_record_partials", "write_lock",
]
