"""Example queries for ``eemo sql --example NAME``: the lineage questions the database is built to answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ExampleQuery:
    description: str
    sql: str
    params: dict[str, str | None]  # parameter -> default (None: required)

    def bind(self, given: Mapping[str, str]) -> dict[str, str | None]:
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; this query takes {sorted(self.params)}")
        bound = {name: given.get(name, default) for name, default in self.params.items()}
        missing = sorted(name for name, value in bound.items() if value is None)
        if missing:
            raise ValueError(f"missing parameter(s) {missing}: pass --param NAME=VALUE")
        return bound


QA_ROW_LINEAGE = """
-- Source rows (raw_annotations) and model calls (generated_text) behind one QA or Assess row.
WITH target AS (
    SELECT subset, row_id, template_id, sources, source_image_ids, provenance
    FROM subset_rows WHERE row_id = $row_id
),
images AS (
    SELECT subset, row_id, UNNEST(sources) AS source, UNNEST(source_image_ids) AS image_id FROM target
),
calls AS (
    SELECT subset, row_id, g.key, g.model, g.template_version
    FROM target, UNNEST(CAST(json_extract(provenance, '$.generated')
        AS STRUCT("key" VARCHAR, model VARCHAR, template_version VARCHAR)[])) AS t(g)
)
SELECT 'source_row' AS kind, i.subset, i.row_id, i.source, i.image_id, r.source_file, r.source_line,
       NULL::VARCHAR AS generated_asset, NULL::VARCHAR AS "key", NULL::VARCHAR AS model,
       NULL::VARCHAR AS template_version
FROM images i JOIN raw_annotations r ON r.source = i.source AND r.image_id = i.image_id
GROUP BY ALL
UNION ALL
SELECT 'model_call', c.subset, c.row_id, g.source, g.image_id, NULL, NULL, g.asset, c.key,
       coalesce(g.model, c.model), coalesce(g.template_version, c.template_version)
FROM calls c LEFT JOIN generated_text g ON g.key = c.key
ORDER BY kind DESC, source, image_id, source_file, source_line, "key"
"""

ROWS_FROM_SOURCE_FILE = """
-- QA and Assess rows with at least one image annotated in the given file of the given source.
WITH images AS (
    SELECT DISTINCT source, image_id FROM raw_annotations WHERE source = $source AND source_file = $source_file
),
row_images AS (
    SELECT subset, row_id, task, sub_task, template_id,
           UNNEST(sources) AS source, UNNEST(source_image_ids) AS image_id
    FROM subset_rows
)
SELECT subset, row_id, task, sub_task, template_id, list_sort(list_distinct(list(image_id))) AS image_ids
FROM row_images JOIN images USING (source, image_id)
GROUP BY ALL
ORDER BY subset, row_id
"""

TEMPLATE_SOURCE_COUNTS = """
-- Rows per subset, template and source (a row with images of two sources counts for both).
SELECT subset, template_id, source, count(DISTINCT row_id) AS "rows"
FROM (SELECT subset, row_id, template_id, UNNEST(list_distinct(sources)) AS source FROM subset_rows)
GROUP BY ALL
ORDER BY subset, template_id, source
"""

MATERIALIZATION_HISTORY = """
-- Every recorded materialization of one asset partition, oldest first ($partition '' = unpartitioned).
SELECT materialized_at, run_id, code_version, row_count, data_version,
       data_version IS DISTINCT FROM lag(data_version) OVER (ORDER BY materialized_at) AS changed,
       file, input_data_versions
FROM materializations
WHERE asset = $asset AND coalesce(partition, '') = coalesce($partition, '')
ORDER BY materialized_at
"""

EXAMPLE_QUERIES: dict[str, ExampleQuery] = {
    "qa_row_lineage": ExampleQuery(
        "Which source rows (raw_annotations source_file, source_line) and which model calls (generated_text key, "
        "model, template_version) produced a QA or Assess row. Parameter: row_id.",
        QA_ROW_LINEAGE,
        {"row_id": None},
    ),
    "rows_from_source_file": ExampleQuery(
        "Which QA and Assess rows depend on a source file, e.g. source=emotion6 source_file=ground_truth.txt. "
        "Parameters: source, source_file (relative to the source root, as in raw_annotations).",
        ROWS_FROM_SOURCE_FILE,
        {"source": None, "source_file": None},
    ),
    "template_source_counts": ExampleQuery(
        "How many rows each template and source contributed to QA and Assess.",
        TEMPLATE_SOURCE_COUNTS,
        {},
    ),
    "materialization_history": ExampleQuery(
        "Materialization history of an asset partition: runs, row counts, data versions and whether the data "
        "changed. Parameters: asset, partition (empty or omitted for an unpartitioned asset).",
        MATERIALIZATION_HISTORY,
        {"asset": None, "partition": ""},
    ),
}
