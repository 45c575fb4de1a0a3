"""Byte-offset truncation sweep over a source's sample annotation files, at the reader level.

Every file the reader reads in the full sample (``SourceRead.files``: nothing to list per source) is cut at a
set of offsets (the rest of the root unchanged) and read again, with the full sample's files kept as the
version read before (``reading.remember_files``), as the ``raw_annotations`` asset keeps the last build's. A
cut may raise ``SourceFormatError`` or quarantine rows; it must never keep a row the full file does not hold (a
value or name shortened by the cut), and never raise anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from eemo_pipeline.sources import SourceFormatError, source_module
from eemo_pipeline.sources.reading import read_source, remember_files

# What identifies a kept fact; a shortened value, name or comment changes one of these.
FACT_COLUMNS = (
    "image_id", "image_path", "split", "subject", "annotator", "measure", "label",
    "value", "value_text", "sd", "n_raters", "text",
)
# Files up to this size are cut at every offset; larger ones at every offset near each line end (where a
# cut shortens the last value of a record) and at a stride elsewhere.
EVERY_OFFSET_UP_TO = 2400
NEAR_LINE_END = 24
STRIDE = 5



def annotation_files(source: str, root: Path) -> list[str]:
    """The files the source's reader reads in the sample at ``root``, relative to it (images are never read)."""
    return list(read_source(source, root).files)


@dataclass
class SweepCounts:
    planned: int = 0
    cuts: int = 0
    format_errors: int = 0
    quarantined_rows: int = 0
    kept_but_wrong: int = 0
    other_exceptions: int = 0
    examples: list[str] = field(default_factory=list)


def facts(rows: pl.DataFrame) -> set[tuple]:
    columns = [c for c in FACT_COLUMNS if c in rows.columns]
    return set(rows.select(pl.col(columns).cast(pl.String)).rows())


def cut_offsets(data: bytes) -> Iterator[int]:
    """Offsets ``n`` at which ``data[:n]`` is tried (the full length excluded)."""
    if len(data) <= EVERY_OFFSET_UP_TO:
        yield from range(len(data))
        return
    near_end: set[int] = set()
    start = 0
    while (end := data.find(b"\n", start)) != -1:
        near_end.update(range(max(start, end - NEAR_LINE_END), end + 1))
        start = end + 1
    near_end.update(range(max(0, len(data) - 200), len(data)))  # no line ends in binary files: its tail
    yield from sorted(near_end | set(range(0, len(data), STRIDE)))


def sweep(source: str, root: Path, write: Callable[[Path], None] | None = None) -> SweepCounts:
    """Cut every annotation file of the sample at ``root`` (written here by ``write``, else the source's
    ``write_sample``) and read each cut."""
    (write or source_module(source).write_sample)(root)
    whole = read_source(source, root)
    last_read = root.with_name(f"{root.name}.last_read")
    remember_files(last_read, root, whole.files)
    full = facts(whole.rows)
    counts = SweepCounts()
    for relative in whole.files:
        path = root / relative
        data = path.read_bytes()
        counts.planned += len(list(cut_offsets(data)))
        try:
            for offset in cut_offsets(data):
                path.write_bytes(data[:offset])
                counts.cuts += 1
                try:
                    read = read_source(source, root, last_read)
                except SourceFormatError:
                    counts.format_errors += 1
                    continue
                except Exception as error:  # noqa: BLE001 - counted: the sweep's point
                    counts.other_exceptions += 1
                    counts.examples.append(f"{relative}[:{offset}] raised {type(error).__name__}: {error}")
                    continue
                counts.quarantined_rows += read.rejects.height
                wrong = facts(read.rows) - full
                if wrong:
                    counts.kept_but_wrong += 1
                    counts.examples.append(f"{relative}[:{offset}] kept {sorted(wrong, key=str)[:2]}")
        finally:
            path.write_bytes(data)
    return counts
