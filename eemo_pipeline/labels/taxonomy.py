"""The versioned label mapping (``data_contracts/label_taxonomy.yaml``) as frames."""

from __future__ import annotations

import functools
from typing import Any

import polars as pl
import yaml

from eemo_pipeline.contracts import contracts_dir, source_facts

TARGETS: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p_{t}" for t in TARGETS)


@functools.cache
def taxonomy_document() -> dict[str, Any]:
    with (contracts_dir() / "label_taxonomy.yaml").open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    if tuple(document["targets"]) != TARGETS:
        raise ValueError(f"label_taxonomy.yaml targets {document['targets']} differ from {list(TARGETS)}")
    return document


def taxonomy_version() -> int:
    return int(taxonomy_document()["version"])


def taxonomy_of(source: str) -> str | None:
    """The native taxonomy a source's labels use (declared in sources.yaml), or None for sources without categories."""
    return source_facts(source).taxonomy


def mapping_table() -> pl.DataFrame:
    """Every native label with its target (null = excluded), method and documented reason."""
    rows = [
        {"taxonomy": name, "method": entry["method"], "label": label, "target": spec.get("target"),
         "why": spec.get("why")}
        for name, entry in taxonomy_document()["taxonomies"].items()
        for label, spec in entry["labels"].items()
    ]
    frame = pl.DataFrame(rows, schema={"taxonomy": pl.String, "method": pl.String, "label": pl.String,
                                       "target": pl.String, "why": pl.String})
    unknown = frame.filter(pl.col("target").is_not_null() & ~pl.col("target").is_in(TARGETS))
    if unknown.height:
        raise ValueError(f"label_taxonomy.yaml maps to unknown targets: {unknown.rows()}")
    return frame
