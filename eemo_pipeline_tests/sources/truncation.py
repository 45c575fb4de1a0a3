"""Byte-offset truncation sweep over a source's sample annotation files, at the reader level.

Each annotation file of the sample is cut at a set of offsets (the rest of the root unchanged) and read
again. A cut may raise ``SourceFormatError`` or quarantine rows; it must never keep a row the full file
does not hold (a value or name shortened by the cut), and never raise anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from eemo_pipeline.sources import SourceFormatError, source_module

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

# The annotation files of each source's sample, relative to its root (images are never cut).
ANNOTATION_FILES: dict[str, tuple[str, ...]] = {
    "affection": ("affection_raw_public_version_0.csv",),
    "abstract8": ("ABSTRACT_groundTruth.csv",),
    "emotic": ("Annotations/Annotations.mat",),
    "emotion6": ("ground_truth.txt",),
    "findingemo": ("annotations_single.ann", "dataset_urls_exploded.json"),
    "gaped": ("A.txt", "H.txt", "N.txt", "P.txt", "Sn.txt", "Sp_with SD.txt"),
    "oasis": ("OASIS.csv",),
}


@dataclass
class SweepCounts:
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
    module = source_module(source)
    (write or module.write_sample)(root)
    full = facts(module.read(root).rows)
    counts = SweepCounts()
    for relative in ANNOTATION_FILES[source]:
        path = root / relative
        data = path.read_bytes()
        try:
            for offset in cut_offsets(data):
                path.write_bytes(data[:offset])
                counts.cuts += 1
                try:
                    read = module.read(root)
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
