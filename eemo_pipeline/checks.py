"""Asset checks and the metadata every asset reports: blocking contract checks, quarantine-share warnings, row
counts, column schema and a Markdown preview."""

from typing import Any

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, TableColumn, TableSchema


def frame_metadata(frame: pl.DataFrame, preview_rows: int = 5) -> dict[str, Any]:
    """Row count, column schema and a Markdown preview, as every asset reports them."""
    schema = TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])
    preview = frame.head(preview_rows).with_columns(pl.col(pl.String).str.slice(0, 60))
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": schema,
        "preview": MetadataValue.md(markdown_table(preview)),
    }


def markdown_table(frame: pl.DataFrame) -> str:
    """The frame as a Markdown table (None as an empty cell, pipes escaped), for metadata previews."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *body])


def contract_check(asset_name: str, problems: list[str], check_name: str = "contract") -> AssetCheckResult:
    """Blocking contract check result: passes when ``problems`` is empty, else lists them."""
    return AssetCheckResult(
        check_name=check_name,
        asset_key=asset_name,
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={"violations": MetadataValue.md("\n".join(f"- {p}" for p in problems[:50]) or "none")},
        description=problems[0] if problems else "all rows honour the contract",
    )


def share_check(check_name: str, asset_name: str, count: int, total: int, limit: float, what: str = "rows quarantined"
                ) -> AssetCheckResult:
    """Warning (non-blocking) when ``count / total`` exceeds ``limit``."""
    share = count / total if total else 0.0
    return AssetCheckResult(
        check_name=check_name,
        asset_key=asset_name,
        passed=share <= limit,
        severity=AssetCheckSeverity.WARN,
        metadata={"count": count, "share": share, "limit": limit},
        description=f"{count} of {total} {what} ({share:.1%})",
    )
