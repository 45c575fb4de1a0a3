"""Reader plus contract validation for one source: what the ``raw_annotations`` asset wraps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from eemo_pipeline.sources.base import EXACT_REPEAT, SourceRead, cap_quarantine
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


def reader_faults(read: SourceRead) -> pl.DataFrame | None:
    """``image_id, fault`` of each record the reader rejected whose image it knows (``record_images``); an exact
    repeat dropped beside the record it repeats is no fault."""
    if read.record_images is None or read.rejects.is_empty():
        return None
    rejected = read.rejects.filter(~pl.col("reason").str.starts_with(EXACT_REPEAT))
    return rejected.join(read.record_images.unique(["file", "line"]), on=["file", "line"], how="inner",
                         maintain_order="left").select(
        "image_id", pl.format("{} line {}: {}", "file", "line", "reason").alias("fault"))


def ingest(source: str, root: Path, last_read: Path | None = None) -> Ingested:
    """Read one source's native files under ``root`` and split the rows by the raw_annotations contract.
    ``last_read``: the folder of the files' earlier versions (``reading.remember_files``), evidence of a cut."""
    read = read_source(source, Path(root), last_read)
    kept, bad = split_valid(read.rows.with_columns(pl.lit(source).alias("source")), source, reader_faults(read))
    quarantine = cap_quarantine(pl.concat([read.rejects, bad], how="vertical"))
    return Ingested(kept, quarantine, read.files, read.notes, read.unchecked)
