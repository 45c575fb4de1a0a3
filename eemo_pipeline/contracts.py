"""Data contracts: the YAML files in ``data_contracts/`` read into typed schemas and checks.

Contracts are data so that reviewers can read them without reading code; this module only turns
them into polars schemas and lists of violations (an empty list means the frame honours the contract).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from eemo_pipeline.settings import CONTRACTS_ENV, Settings

_DTYPES: dict[str, pl.DataType] = {
    "String": pl.String(),
    "Int32": pl.Int32(),
    "Int64": pl.Int64(),
    "Float64": pl.Float64(),
    "Boolean": pl.Boolean(),
    "List[String]": pl.List(pl.String()),
}


def contracts_dir() -> Path:
    """Folder of the contract files: ``Settings.contracts_dir`` (``EEMO_CONTRACTS``, else the repository's
    ``data_contracts/``)."""
    return Settings.from_env().contracts_dir


@functools.cache
def _load_yaml(name: str) -> dict[str, Any]:
    path = contracts_dir() / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"data contract {path} not found (set {CONTRACTS_ENV} to the data_contracts folder)")
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType
    nullable: bool
    doc: str


@dataclass(frozen=True)
class TableContract:
    name: str
    version: int
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    rules: dict[str, Any]

    @property
    def schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Select the contract's columns in order, cast to their dtypes, add absent ones as nulls."""
        return frame.select(
            [
                pl.col(c.name).cast(c.dtype) if c.name in frame.columns else pl.lit(None, c.dtype).alias(c.name)
                for c in self.columns
            ]
        )

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.schema)

    def schema_violations(self, frame: pl.DataFrame) -> list[str]:
        """Missing, extra or mistyped columns."""
        problems = []
        for column in self.columns:
            if column.name not in frame.schema:
                problems.append(f"column {column.name!r} is missing")
            elif frame.schema[column.name] != column.dtype:
                problems.append(f"column {column.name!r} is {frame.schema[column.name]}, expected {column.dtype}")
        extra = sorted(set(frame.columns) - set(self.column_names))
        if extra:
            problems.append(f"unexpected columns {extra}")
        return problems

    def null_violations(self, frame: pl.DataFrame) -> list[str]:
        """Nulls in columns the contract declares non-nullable."""
        required = [c.name for c in self.columns if not c.nullable and c.name in frame.columns]
        if not required or frame.is_empty():
            return []
        counts = frame.select(pl.col(required).null_count()).row(0, named=True)
        return [f"{count} null values in non-nullable column {name!r}" for name, count in counts.items() if count]

    def violations(self, frame: pl.DataFrame) -> list[str]:
        """Schema problems; with a sound schema, nulls in non-nullable columns and duplicate keys."""
        return self.schema_violations(frame) or self.null_violations(frame) + self.key_violations(frame)

    def key_violations(self, frame: pl.DataFrame) -> list[str]:
        """Rows sharing the same key."""
        if not self.key or frame.is_empty():
            return []
        duplicated = frame.select(self.key).is_duplicated().sum()
        return [f"{duplicated} rows share a key {list(self.key)} with another row"] if duplicated else []


@functools.cache
def table_contract(name: str) -> TableContract:
    raw = _load_yaml(name)
    columns = tuple(
        Column(c["name"], _DTYPES[c["dtype"]], bool(c["nullable"]), c.get("doc", "")) for c in raw["columns"]
    )
    return TableContract(raw["name"], int(raw["version"]), tuple(raw.get("key", ())), columns, raw.get("rules", {}))


@dataclass(frozen=True)
class SourceFacts:
    """Native vocabulary and rating scales of one source data set."""

    name: str
    labels: frozenset[str]
    ratings: dict[str, tuple[float, float]]


@functools.cache
def source_facts(source: str) -> SourceFacts:
    raw = _load_yaml("sources")["sources"]
    if source not in raw:
        raise KeyError(f"unknown source {source!r}; known: {sorted(raw)}")
    entry = raw[source]
    ratings = {name: (float(lo), float(hi)) for name, (lo, hi) in (entry.get("ratings") or {}).items()}
    return SourceFacts(source, frozenset(entry.get("labels") or ()), ratings)
