"""Reader plus contract validation for one source: what the ``raw_annotations`` asset wraps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from eemo_pipeline.sources import source_module
from eemo_pipeline.sources.validate import split_valid


@dataclass(frozen=True)
class Ingested:
    annotations: pl.DataFrame
    quarantine: pl.DataFrame  # file, line, reason, record

    @property
    def counts(self) -> dict[str, int]:
        kept, quarantined = self.annotations.height, self.quarantine.height
        return {"rows_read": kept + quarantined, "rows_kept": kept, "rows_quarantined": quarantined}


def ingest(source: str, root: Path) -> Ingested:
    """Read one source's native files under ``root`` and split the rows by the raw_annotations contract."""
    read = source_module(source).read(Path(root))
    kept, bad = split_valid(read.rows.with_columns(pl.lit(source).alias("source")), source)
    return Ingested(kept, pl.concat([read.rejects, bad], how="vertical"))
