"""Reader plus contract validation for one source: what the ``raw_annotations`` asset wraps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from eemo_pipeline.sources.base import cap_quarantine
from eemo_pipeline.sources.reading import FileRead, read_source
from eemo_pipeline.sources.validate import split_valid


@dataclass(frozen=True)
class Ingested:
    annotations: pl.DataFrame
    quarantine: pl.DataFrame  # file, line, reason, record
    files: Mapping[str, FileRead] = field(default_factory=dict)  # what was read: relative path -> size, sha256
    notes: tuple[str, ...] = ()  # how files that end without a line break were judged
    unchecked: tuple[str, ...] = ()  # files whose unterminated last record no evidence could check

    @property
    def counts(self) -> dict[str, int]:
        kept, quarantined = self.annotations.height, self.quarantine.height
        return {"rows_read": kept + quarantined, "rows_kept": kept, "rows_quarantined": quarantined}


def ingest(source: str, root: Path, last_read: Path | None = None) -> Ingested:
    """Read one source's native files under ``root`` and split the rows by the raw_annotations contract.
    ``last_read``: the folder of the files' earlier versions (``reading.remember_files``), evidence of a cut."""
    read = read_source(source, Path(root), last_read)
    kept, bad = split_valid(read.rows.with_columns(pl.lit(source).alias("source")), source)
    quarantine = cap_quarantine(pl.concat([read.rejects, bad], how="vertical"))
    return Ingested(kept, quarantine, read.files, read.notes, read.unchecked)
